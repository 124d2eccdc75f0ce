//! Names and labels of the exported metrics: the run's scenario as `herd_run_info`'s labels, and
//! prefixes and label names made valid for Prometheus.

use serde::Serialize;

/// The scenario of a run, exported as the labels of `herd_run_info`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    /// The target WebSocket URL.
    pub target: String,
    pub conversations: u64,
    /// Members per conversation.
    pub members: u64,
    /// Senders per conversation.
    pub senders: u64,
    /// Messages per second of each sender.
    pub rate: f64,
    /// Message size in bytes.
    pub size: u64,
    /// Executor threads.
    pub threads: u64,
    /// More labels. Names are made valid (other characters become `_`); a name that is reserved
    /// (`job`, `instance`, `le`, `quantile`, `__*`) or already a label of `herd_run_info` gets an
    /// `extra_` prefix; later duplicates are dropped.
    pub extra: Vec<(String, String)>,
    /// A population's room classes (the `room_class` label's values); empty for a grid.
    pub room_classes: Vec<String>,
}

/// A valid metric-name prefix: other characters become `_`, a leading digit gets a `_` before it,
/// trailing `_` are dropped.
pub fn sanitize_prefix(prefix: &str) -> String {
    let p = prefix.trim_end_matches('_');
    let mut out: String =
        p.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

const FIXED_LABELS: [&str; 9] =
    ["run_id", "target", "conversations", "members", "senders", "rate", "size", "threads", "version"];
const RESERVED_LABELS: [&str; 4] = ["job", "instance", "le", "quantile"];

fn sanitize_label_name(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.starts_with("__") || RESERVED_LABELS.contains(&out.as_str()) || FIXED_LABELS.contains(&out.as_str()) {
        out = format!("extra_{}", out.trim_start_matches('_'));
    }
    out
}

pub fn run_info_labels(run: &RunInfo) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = FIXED_LABELS.iter().map(|s| s.to_string()).collect();
    let mut values = vec![
        run.run_id.clone(),
        run.target.clone(),
        run.conversations.to_string(),
        run.members.to_string(),
        run.senders.to_string(),
        run.rate.to_string(),
        run.size.to_string(),
        run.threads.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    ];
    for (k, v) in &run.extra {
        let k = sanitize_label_name(k);
        if !names.contains(&k) {
            names.push(k);
            values.push(v.clone());
        }
    }
    (names, values)
}
