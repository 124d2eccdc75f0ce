//! The resolved scenario: everything a run needs, checked, as plain data. Every core, the
//! reporter and the results read it (as an `Arc`); it imports only value types, never the flags
//! that produce it (`config::args`).

use crate::config::protocol::Protocol;
use crate::config::units;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a run needs, resolved and checked.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    /// `None`: the embedded reference server.
    pub url: Option<String>,
    pub conversations: u32,
    pub members: u32,
    pub senders: u32,
    /// Messages per second per sender (a population's: its classes' highest).
    pub rate: f64,
    /// Message size in bytes (a population's: its classes' largest).
    pub size: usize,
    /// Largest message or frame accepted from the server.
    pub max_frame: usize,
    /// `--deflate`: what permessage-deflate herd offers.
    pub deflate: crate::ws::deflate::Mode,
    pub connect_rate: f64,
    #[serde(with = "units::secs")]
    pub duration: Duration,
    #[serde(with = "units::secs")]
    pub drain: Duration,
    #[serde(with = "units::secs")]
    pub connect_timeout: Duration,
    /// Messages due this soon after a send go out with it (see `client::core`).
    #[serde(with = "units::secs")]
    pub send_window: Duration,
    /// Source addresses, used round-robin; empty: the kernel chooses.
    pub source_ips: Vec<std::net::IpAddr>,
    /// Socket buffer sizes (`None`: the kernel's autotuning).
    pub sndbuf: Option<usize>,
    pub rcvbuf: Option<usize>,
    pub reconnect: bool,
    /// The cores executors are pinned to, one executor each.
    pub cores: Vec<usize>,
    /// How many executors run and why (`crate::cpu::resolve`: the affinity mask, the cgroup CPU
    /// quota, or `--threads`/`--cores`).
    pub executors: String,
    pub server_threads: u32,
    pub out: Option<PathBuf>,
    pub hdr_log: Option<PathBuf>,
    pub seed: u64,
    pub quiet: bool,
    pub protocol: Protocol,
    /// This process's shard (`--shard`, `--shards`); `None`: the whole scenario.
    pub shard: Option<crate::config::shard::Shard>,
    /// `--start-at`, unix seconds.
    pub start_at: Option<f64>,
    /// `--start-when`: the shards to wait for.
    pub start_when: Option<u32>,
    /// How long `--start-when` waits at most.
    #[serde(with = "units::secs")]
    pub start_when_timeout: Duration,
    /// wss:// settings (and the embedded server's TLS).
    pub tls: crate::tls::ClientOptions,
    /// `--stage`: the send phase's targets over time (`duration` is their total, `rate` their
    /// highest rate).
    pub shape: Option<crate::shape::Shape>,
    /// `--churn`: receivers leaving and joining again per second, across the scenario.
    pub churn: Option<f64>,
    pub storm: Option<crate::shape::Storm>,
    /// A population of users in rooms (`[population]`, `--users`) instead of the grid.
    pub population: Option<crate::population::PopulationSpec>,
    /// That population, generated from the seed (the same on every node).
    #[serde(skip)]
    pub generated: Option<crate::population::Shared>,
}

impl Scenario {
    /// The connections this process opens (its shard's, when sharded).
    pub fn connections(&self) -> u64 {
        if let Some(p) = &self.generated {
            return p.connections_of(self.communities());
        }
        let convs = self.shard.map_or(self.conversations, |s| s.len_of(self.conversations));
        convs as u64 * self.members as u64
    }
}

impl Scenario {
    /// A population's communities this process runs (its shard's: `c % N == I`).
    pub fn communities(&self) -> Vec<u32> {
        let Some(p) = &self.generated else { return vec![] };
        let (index, count) = self.shard.map_or((0, 1), |s| (s.index, s.count));
        crate::population::place::shard_communities(p, index, count)
    }
}

/// The most connections one process may be asked for (2^30: above any fd limit Linux allows).
pub const MAX_CONNECTIONS: u64 = 1 << 30;
