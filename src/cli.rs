//! The command line: `herd run`, `herd serve`, `herd doctor`, `herd ceiling`, `herd merge`. Parsing only; each subcommand's work lives in its
//! own module.

use crate::ceiling::CeilingArgs;
use crate::doctor::DoctorArgs;
use crate::scenario::RunArgs;
use crate::server::ServeArgs;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "herd", version, about = "A thread-per-core WebSocket chat load generator")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open conversations of WebSocket clients, send at a fixed rate, measure delivery
    Run(Box<RunArgs>),
    /// Run the reference chat server
    Serve(ServeArgs),
    /// Check the limits that cap connections on this host, and how to raise them
    Doctor(DoctorArgs),
    /// Find how many connections a target holds: open them in steps until errors or limits
    Ceiling(Box<CeilingArgs>),
    /// Merge the results of the shards of one scenario (`herd run --shard I/N`) exactly
    Merge(crate::merge::MergeArgs),
    /// Compare runs' results: every headline figure side by side, fail on regressions
    Compare(crate::compare::CompareArgs),
    /// Write the self-contained HTML report of a run's results
    Report(crate::report::ReportArgs),
}
