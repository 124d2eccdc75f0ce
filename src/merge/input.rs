//! One worker's results file as `herd merge` reads it: the parts that merge, checked to be
//! herd's results.

use super::histos::EncodedHistos;
use crate::shard::{Shard, StartReport};
use crate::wire::WireCounters;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A results file, read.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file's name, for messages.
    pub name: String,
    /// Its shard (`0/1` for a run of the whole scenario).
    pub shard: Shard,
    pub doc: Doc,
    /// The scenario as written, for comparing files and for the merged file.
    pub scenario: serde_json::Value,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Doc {
    pub herd_version: String,
    pub run_id: String,
    pub started_at_unix_s: f64,
    pub target: String,
    pub embedded_server: bool,
    pub outcome: String,
    pub connections: Conns,
    pub messages: Msgs,
    pub errors: BTreeMap<String, u64>,
    #[serde(default)]
    pub websocket: WireCounters,
    pub duration_s: f64,
    pub phases: PhasesIn,
    pub process: ProcessIn,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub start: Option<StartReport>,
    pub histograms: EncodedHistos,
}

// `Conns`, `Msgs`, `PhasesIn` and `ProcessIn` restate what merges of results.rs's `Connections`,
// `Messages`, `Phases` and `ProcessCost`, which derive only `Serialize`: once those derive
// `Deserialize` with `#[serde(default)]` (as `WireCounters` and `StartReport` do, read here
// directly), these four can go and `Doc` can hold them.

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct Conns {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub reconnected: u64,
    pub closed_by_peer: u64,
    pub closed: u64,
    pub peak_open: u64,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct Msgs {
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub unexpected: u64,
    pub echoed: u64,
    pub unsent: u64,
    pub missed_while_away: u64,
    pub holes_evicted: u64,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct PhasesIn {
    pub connect_s: f64,
    pub send_s: f64,
    pub drain_s: f64,
    pub close_s: f64,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct ProcessIn {
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    pub cpu_send_drain_s: f64,
    pub rss_start_bytes: u64,
    pub rss_connected_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_peak_bytes: u64,
}

/// Reads one results document (pure: `text` is the file's content). The error says why the
/// file is not herd's results (the caller prefixes the file name).
pub fn parse(name: &str, text: &str) -> Result<Input, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not herd's results: not JSON ({e})"))?;
    if !v.is_object() || v.get("herd_version").is_none() || v.get("scenario").is_none() {
        return Err("not herd's results (no herd_version or scenario)".into());
    }
    if v.get("histograms").is_none() {
        return Err(format!(
            "herd {} results without histograms: written by a herd that cannot merge; run it again with this herd",
            v["herd_version"].as_str().unwrap_or("?")
        ));
    }
    let doc: Doc = serde_json::from_value(v.clone()).map_err(|e| format!("not herd's results: {e}"))?;
    let scenario = v["scenario"].clone();
    let shard = match &scenario["shard"] {
        serde_json::Value::Null => Shard { index: 0, count: 1 },
        serde_json::Value::String(s) => {
            crate::shard::parse_shard(s).map_err(|e| format!("scenario.shard is not a shard: {e}"))?
        }
        other => return Err(format!("scenario.shard is not a shard: {other}")),
    };
    Ok(Input { name: name.to_string(), shard, doc, scenario })
}
