//! herd: a thread-per-core WebSocket chat load generator and its reference chat server.
//!
//! The binary is a thin shell over this library: `cli` parses, and each subcommand has a
//! `main(&Args)` (`cmd::run::main`, `server::main`, `cmd::ceiling::main`, ...). See
//! docs/ARCHITECTURE.md for the data flow and the folder map.
//!
//! Layout, from the top of the house down (a module imports only from its own level or below):
//! - `cli`, `cmd/` (run, knee, ceiling, compare), `server/`, `doctor/`, `merge/`, `report/`,
//!   `collect/` (and the workers' side of it, `collect::post`), `kube/`: the subcommands;
//! - `cpu/`: the default executor count (affinity mask, cgroup CPU quota);
//! - `drive/`: starting, phasing and finishing a load; the reporter; shards;
//! - `client/`: the generator's cores and connections;
//! - `outcome/`: results, verdicts, notes, the series; `metrics/`: Prometheus;
//! - `config/`: flags, scenario file and presets resolved into the plain-data `Scenario`;
//!   `shape/`: stages, churn and storms; `tls/`;
//! - `ws/` (the WebSocket wire), `measure/` (pure measurement), `runtime/` (executors, reactor,
//!   signals), `error`.

#[macro_use]
mod macros;

pub mod cli;
pub mod client;
pub mod cmd;
pub mod collect;
pub mod config;
pub mod cpu;
pub mod doctor;
pub mod drive;
pub mod error;
pub mod kube;
pub mod measure;
pub mod merge;
pub mod metrics;
pub mod outcome;
pub mod population;
pub mod report;
pub mod runtime;
pub mod server;
pub mod shape;
#[cfg(test)]
mod testrand;
pub mod tls;
pub mod ws;
