//! How a process started sending, against `--start-at` or `--start-when`: part of its results
//! (`drive::shard` fills it in).

use serde::{Deserialize, Serialize};

/// When a sharded (or any) process started sending, against `--start-at` or `--start-when`.
/// Read back by `herd merge` (missing fields default).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct StartReport {
    /// `--start-at`, unix seconds.
    pub start_at_unix_s: Option<f64>,
    /// `--start-when`: how many shards it waited for, and how many were connected at the start.
    pub start_when: Option<u32>,
    pub shards_ready: Option<usize>,
    /// When this process was connected, and when it started sending (unix seconds).
    pub connected_at_unix_s: f64,
    pub sending_at_unix_s: f64,
    /// How long it waited once connected.
    pub waited_s: f64,
    /// How late the process was connected after `--start-at` (0: on time).
    pub late_s: f64,
}
