//! `herd merge RESULTS.json...`: merges the results of the workers of one sharded scenario
//! (`herd run --shard I/N`) into the result of the whole scenario, exactly.
//!
//! `input.rs` reads a results file, `histos.rs` (de)serializes the HDR histograms every results
//! file carries, `combine.rs` checks the files are the shards of one scenario and adds them up.

mod combine;
mod input;
mod shapes;

pub use crate::outcome::histcodec::{
    decode as decode_histograms, decode_one as decode_histogram, encode as encode_histograms,
    encode_one as encode_histogram, EncodedHistos, ENCODING,
};
pub use combine::{check, combine, shard_lines};
pub use input::{parse, Input};

use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Results files (`herd run --out`) of the shards of one scenario
    #[arg(required = true, value_name = "RESULTS.json")]
    pub files: Vec<PathBuf>,
    /// Merge even when shards are missing (the merged result says which)
    #[arg(long)]
    pub partial: bool,
    /// Write the merged results (JSON, the same schema as `herd run --out`, plus `shards`)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Reads, checks and merges the files; returns the merged result as JSON and the summary text.
pub fn merge_files(files: &[PathBuf], partial: bool) -> Result<(serde_json::Value, String)> {
    let mut inputs = Vec::with_capacity(files.len());
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| Error::Io(format!("{name}: cannot read: {e}")))?;
        inputs.push(parse(&name, &text).map_err(|e| Error::Usage(format!("{name}: {e}")))?);
    }
    let missing = check(&inputs, partial).map_err(Error::Usage)?;
    let r = combine(&inputs, &missing).map_err(Error::Usage)?;
    let summary = format!("{}{}", crate::outcome::results::summary(&r), shard_lines(&inputs));
    let mut doc = serde_json::to_value(&r).map_err(|e| Error::Software(format!("encoding the merged results: {e}")))?;
    // The workers' own scenario (not the summary's reconstruction), without the shard.
    let mut scenario = inputs[0].scenario.clone();
    if let Some(o) = scenario.as_object_mut() {
        o.insert("shard".into(), serde_json::Value::Null);
    }
    doc["scenario"] = scenario;
    let mut sorted: Vec<&Input> = inputs.iter().collect();
    sorted.sort_by_key(|i| i.shard.index);
    doc["shards"] = sorted
        .iter()
        .map(|i| {
            serde_json::json!({
                "shard": i.shard.to_string(),
                "file": i.name,
                "run_id": i.doc.run_id,
                "outcome": i.doc.outcome,
                "late_s": i.doc.start.as_ref().map_or(0.0, |s| s.late_s),
                // Which node was short of CPU (its own note says by how much).
                "starved": i.doc.generator.starved,
                "send_lag_p99_ms": i.doc.generator.send_lag.p99_ms,
                "run_queue_wait_percent": i.doc.generator.cpu.as_ref().map(|c| c.run_queue_wait_percent),
            })
        })
        .collect();
    doc["missing_shards"] = missing.iter().map(|k| format!("{k}/{}", inputs[0].shard.count)).collect();
    Ok((doc, summary))
}

/// `herd merge`: prints the summary, writes `--out`.
pub fn main(a: &MergeArgs) -> Result<()> {
    let (doc, summary) = merge_files(&a.files, a.partial)?;
    if let Some(p) = &a.out {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Software(e.to_string()))?;
        std::fs::write(p, text + "\n").map_err(|e| Error::Io(format!("--out {}: {e}", p.display())))?;
    }
    crate::out!("{summary}");
    Ok(())
}
