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
pub mod compare;
pub mod doctor;
pub mod endings;
pub mod error;
pub mod executor;
pub mod handshake;
pub mod headline;
pub mod judging;
pub mod knee;
pub mod limits;
pub mod load;
pub mod marker;
pub mod merge;
pub mod metrics;
pub mod net;
pub mod outfile;
pub mod pacing;
pub mod phase;
pub mod process;
pub mod protocol;
pub mod readfile;
pub mod report;
pub mod reporter;
pub mod results;
pub mod run;
pub mod scenario;
pub mod series;
pub mod server;
pub mod shape;
pub mod shard;
pub mod signal;
pub mod start_when;
pub mod stats;
pub mod template;
pub mod thresholds;
pub mod tls;
pub mod units;
pub mod watchdog;
pub mod windows;
pub mod wire;

use error::{Error, Result};

/// `herd run` from parsed flags: resolves the scenario, runs, prints the summary.
pub fn run_command(args: &scenario::RunArgs) -> Result<results::RunResult> {
    let file = match &args.scenario {
        Some(p) => scenario::load_file(p)?,
        None => scenario::ScenarioFile::default(),
    };
    let s = scenario::resolve(args, &file, &executor::online_cores())?;
    let file_thresholds = match &file.threshold {
        Some(protocol::OneOrMany::One(t)) => vec![t.clone()],
        Some(protocol::OneOrMany::Many(v)) => v.clone(),
        None => vec![],
    };
    let judge = thresholds::resolve(&args.thresholds, &file_thresholds, file.abort_on_fail)?;
    // Created before the run, so a bad path fails before any load is made.
    let report = match args.report.as_ref().or(file.report.as_ref()) {
        Some(p) => Some((p.clone(), report::create(p, "--report")?)),
        None => None,
    };
    let signals = signal::Signals::install()?;
    let shard = s.shard;
    let push = args.metrics.push_config(shard.map(|x| x.index as usize)).map(|mut config| {
        // Workers of one job push to the same Pushgateway: the shard keeps their groups apart.
        config.grouping.extend(shard.map(|x| ("shard".to_string(), x.index.to_string())));
        run::Push { config, prefix: args.metrics.metrics_prefix.clone() }
    });
    let r = match run::run(s, signals, run::Hooks { push, judge, ..Default::default() }) {
        Ok(r) => r,
        Err(e) => {
            // No run, no report: do not leave an empty file behind.
            if let Some((path, _)) = &report {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    out!("{}", results::summary(&r));
    if let Some((path, f)) = report {
        let doc = serde_json::to_value(&r).map_err(|e| Error::Software(format!("results: {e}")))?;
        report::write(f, &doc, None).map_err(|e| Error::Io(format!("--report {}: {e}", path.display())))?;
    }
    if r.scenario.out.as_deref().is_some_and(|p| p.as_os_str() == "-") {
        let line = serde_json::to_string(&r).map_err(|e| Error::Software(format!("--out -: {e}")))?;
        out!(
            "{line}
"
        );
    }
    if r.connections.established == 0 && r.connections.attempted > 0 {
        let errs: Vec<String> = r.errors.iter().filter(|(_, &n)| n > 0).map(|(k, n)| format!("{k} {n}")).collect();
        return Err(Error::Unavailable(format!(
            "no connection to {} could be established ({}); results were written",
            r.target,
            errs.join(", ")
        )));
    }
    if r.scenario.rate > 0.0 && r.messages.sent == 0 && r.outcome == "completed" {
        return Err(Error::Unavailable("nothing was sent (see the notes); results were written".into()));
    }
    let crossed: Vec<&str> = r.judged.thresholds.iter().filter(|v| !v.passed).map(|v| v.threshold.as_str()).collect();
    if !crossed.is_empty() {
        return Err(Error::Crossed(format!("threshold crossed: {}", crossed.join(", "))));
    }
    Ok(r)
}
