//! `herd doctor`: checks whether this host's limits allow a target number of client connections.
//!
//! [`HostLimits::read`] reads the host, [`evaluate`] turns the readings and a target into a
//! [`Report`] without touching the host, and [`main`] prints it and picks the exit code.
//! The knobs checked here are the ones `tuning/` sets ([`checked_knobs`]).

mod check;
mod cpu;
mod host;
mod knobs;
pub mod parse;
mod render;
mod report;

pub use check::{evaluate, fmt_bytes};
pub use host::{HostLimits, Reading, UNLIMITED};
pub use knobs::*;
pub use render::text;
pub use report::{Allows, Check, Report, Status, EXIT_OK, EXIT_SOFTWARE, EXIT_UNAVAILABLE};

/// Options of `herd doctor`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct DoctorArgs {
    /// Target number of client connections (plain or with a suffix: 10k, 1m, 2.5m).
    #[arg(long, value_name = "N", value_parser = count)]
    pub connections: Option<u64>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Source addresses the connections are spread over; the port range applies per source
    /// address and destination ip:port.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = count)]
    pub source_ips: u64,
}

fn count(text: &str) -> Result<u64, String> {
    match crate::config::units::parse_count(text)? {
        0 => Err("the count must be at least 1".into()),
        n => Ok(n),
    }
}

/// Runs `herd doctor`: reads the host, prints the report on stdout and returns the exit code of
/// its verdict: 0 when the target is reachable (or none was given), 69 when some limit binds
/// below it, 70 when a limit could not be read. A report that cannot be written is an error
/// (exit 70).
pub fn main(args: &DoctorArgs) -> crate::error::Result<i32> {
    use crate::error::Error;
    let host = HostLimits::read();
    let mut report = evaluate(&host, args.connections, args.source_ips);
    // The executor count caps no connection count: it joins the checks after the verdict.
    report.checks.push(cpu::executors(&crate::cpu::Budget::detect()));
    let out = if args.json {
        serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Software(format!("herd doctor: cannot write the report as JSON: {e}")))?
            + "\n"
    } else {
        text(&report)
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::Software(format!("herd doctor: cannot write the report: {e}")))?;
    Ok(report.exit_code)
}
