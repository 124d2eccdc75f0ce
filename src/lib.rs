//! herd: a thread-per-core WebSocket chat load generator and its reference chat server.
//!
//! The binary is a thin shell over this library: `cli` parses, `run::run` drives a load run,
//! `server::main` serves. See docs/ARCHITECTURE.md for the data flow and folder map.

/// `eprintln!` that never panics: a closed or broken stderr (a pipe whose reader left) must not
/// stop a run or lose its results.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}

/// `print!` that never panics, for the same reason.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut o = ::std::io::stdout().lock();
        let _ = ::std::write!(o, $($arg)*);
        let _ = o.flush();
    }};
}

pub mod accounting;
pub mod addrs;
pub mod ceiling;
pub mod cli;
pub mod client;
pub mod clock;
pub mod doctor;
pub mod error;
pub mod executor;
pub mod handshake;
pub mod limits;
pub mod load;
pub mod marker;
pub mod metrics;
pub mod pacing;
pub mod phase;
pub mod process;
pub mod protocol;
pub mod reporter;
pub mod results;
pub mod run;
pub mod scenario;
pub mod server;
pub mod signal;
pub mod stats;
pub mod template;
pub mod tls;
pub mod units;
pub mod wire;

use error::{Error, Result};

/// `herd run` from parsed flags: resolves the scenario, runs, prints the summary.
pub fn run_command(args: &scenario::RunArgs) -> Result<results::RunResult> {
    let file = match &args.scenario {
        Some(p) => scenario::load_file(p)?,
        None => scenario::ScenarioFile::default(),
    };
    let s = scenario::resolve(args, &file, &executor::online_cores())?;
    let signals = signal::Signals::install()?;
    let push =
        args.metrics.push_config(None).map(|config| run::Push { config, prefix: args.metrics.metrics_prefix.clone() });
    let r = run::run(s, signals, run::Hooks { push, ..Default::default() })?;
    out!("{}", results::summary(&r));
    if r.connections.established == 0 && r.connections.attempted > 0 {
        let errs: Vec<String> = r.errors.iter().filter(|(_, &n)| n > 0).map(|(k, n)| format!("{k} {n}")).collect();
        return Err(Error::Unavailable(format!(
            "no connection to {} could be established ({}); results were written",
            r.target,
            errs.join(", ")
        )));
    }
    Ok(r)
}
