//! One worker's results file as `herd merge` reads it: the parts that merge, checked to be
//! herd's results.

use crate::config::shard::Shard;
use crate::outcome::histcodec::EncodedHistos;
use crate::outcome::results::{Connections, Messages, Phases, ProcessCost};
use crate::outcome::start::StartReport;
use crate::ws::wire::WireCounters;
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
    pub connections: Connections,
    pub messages: Messages,
    pub errors: BTreeMap<String, u64>,
    #[serde(default)]
    pub websocket: WireCounters,
    pub duration_s: f64,
    #[serde(default)]
    pub phases: Phases,
    #[serde(default)]
    pub process: ProcessCost,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub start: Option<StartReport>,
    pub histograms: EncodedHistos,
    #[serde(default)]
    pub shape: Option<crate::shape::results::ShapeResults>,
    /// herd's own delays on that node (absent from results of herd versions before them).
    #[serde(default)]
    pub generator: crate::outcome::generator::Generator,
    pub population: Option<crate::population::results::PopulationResults>,
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
            crate::config::shard::parse_shard(s).map_err(|e| format!("scenario.shard is not a shard: {e}"))?
        }
        other => return Err(format!("scenario.shard is not a shard: {other}")),
    };
    Ok(Input { name: name.to_string(), shard, doc, scenario })
}
