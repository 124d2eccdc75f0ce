//! The command line: `herd run`, `herd serve`, `herd doctor`, `herd ceiling`, `herd knee`, `herd merge`, `herd compare`, `herd report`. Parsing only; each subcommand's work lives in its
//! own module.

use crate::cmd::ceiling::CeilingArgs;
use crate::config::args::RunArgs;
use crate::doctor::DoctorArgs;
use crate::server::ServeArgs;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;

#[derive(Parser, Debug)]
#[command(name = "herd", version, about = "A thread-per-core WebSocket chat load generator")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open conversations of WebSocket clients, send at a fixed rate (or in stages), measure delivery
    Run(Box<RunArgs>),
    /// Run the reference chat server
    Serve(ServeArgs),
    /// Check the limits that cap connections on this host, and how to raise them
    Doctor(DoctorArgs),
    /// Find how many connections a target holds: open them in steps until errors or limits
    Ceiling(Box<CeilingArgs>),
    /// Find the knee: the highest send rate whose delivery p99 stays within a bound
    Knee(Box<crate::cmd::knee::KneeArgs>),
    /// Merge the results of the shards of one scenario (`herd run --shard I/N`) exactly
    Merge(crate::merge::MergeArgs),
    /// Compare runs' results: every headline figure side by side, fail on regressions
    Compare(crate::cmd::compare::CompareArgs),
    /// Write the self-contained HTML report of a run's results
    Report(crate::report::ReportArgs),
}

/// Parses the process's command line.
pub fn parse() -> Result<Cli, clap::Error> {
    parse_from(std::env::args_os())
}

/// Parses a command line, keeping what the derived parser loses: the order of `--join` and
/// `--expect` flags of `herd run` relative to each other (the join steps run in that order).
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let m = Cli::command().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&m)?;
    if let (Command::Run(a), Some(rm)) = (&mut cli.command, m.subcommand_matches("run")) {
        a.protocol.expect_after = expect_positions(rm);
    }
    if let (Command::Knee(a), Some(km)) = (&mut cli.command, m.subcommand_matches("knee")) {
        a.run.protocol.expect_after = expect_positions(km);
    }
    Ok(cli)
}

/// For each `--expect`, how many `--join` flags came before it.
fn expect_positions(m: &ArgMatches) -> Vec<usize> {
    let joins: Vec<usize> = m.indices_of("join").map(Iterator::collect).unwrap_or_default();
    m.indices_of("expect").map(|e| e.map(|x| joins.iter().filter(|&&j| j < x).count()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_flags_keep_their_place_among_joins() {
        let cli = parse_from([
            "herd",
            "run",
            "--url",
            "ws://127.0.0.1:1/x",
            "--expect",
            "^0",
            "--join",
            "40",
            "--expect",
            "^40",
            "--join",
            "42",
            "--expect",
            "^43",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else { panic!("not run") };
        assert_eq!(a.protocol.expect_after, vec![0, 1, 2]);
        assert_eq!(a.protocol.join, ["40", "42"]);
    }
}
