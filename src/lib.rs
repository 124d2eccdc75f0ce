//! herd: a thread-per-core WebSocket chat load generator and its reference chat server.
//!
//! The binary is a thin shell over this library: `cli` parses, `run::run` drives a load run,
//! `server::main` serves. See docs/ARCHITECTURE.md for the data flow and folder map.

pub mod accounting;
pub mod cli;
pub mod client;
pub mod clock;
pub mod doctor;
pub mod error;
pub mod executor;
pub mod handshake;
pub mod limits;
pub mod marker;
pub mod metrics;
pub mod pacing;
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
    let r = run::run(s, signals, run::Hooks::default())?;
    print!("{}", results::summary(&r));
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
