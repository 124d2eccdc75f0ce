//! herd: a thread-per-core WebSocket chat load generator and its reference chat server.
//!
//! The binary is a thin shell over this library: `cli` parses, and each subcommand's module has
//! `main(&Args)` (`run::main`, `server::main`, `ceiling::main`, ...). See docs/ARCHITECTURE.md for the data flow and folder map.

#[macro_use]
mod macros;

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
pub mod frames;
pub mod handshake;
pub mod headline;
pub mod histcodec;
pub mod judging;
pub mod knee;
pub mod latency;
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
pub mod scenario_file;
pub mod series;
pub mod server;
pub mod shape;
pub mod shard;
pub mod signal;
pub mod start_when;
pub mod stats;
pub mod template;
#[cfg(test)]
mod testrand;
pub mod thresholds;
pub mod tls;
pub mod units;
pub mod watchdog;
pub mod windows;
pub mod wire;
