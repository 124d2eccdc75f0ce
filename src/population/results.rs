//! A population's results: what the population was (users, connections, rooms, rooms per
//! connection, room sizes and fan-out per class) and, per room class, messages sent, owed,
//! delivered, missed and duplicated with their latency, corrected and uncorrected. Each class's
//! histograms are written encoded, so that `herd merge` adds shards exactly.

use super::summary::{summarize, Spread, Summary};
use super::Population;
use crate::measure::latency::{latency, LatencyPair};
use crate::measure::stats::Merged;
use crate::measure::windows::{CoreWindows, MergedWindows, StageStats};
use crate::outcome::histcodec::{decode_one, encode_one};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct ClassResult {
    pub class: String,
    /// Rooms of the class in the whole population.
    pub rooms: u64,
    /// Receiving connections per message, everyone connected (weighted by messages).
    pub fanout: Spread,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub missed: u64,
    pub duplicated: u64,
    pub latency: LatencyPair,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct PopulationResults {
    /// The whole population (the same on every shard of a run).
    pub population: Summary,
    pub classes: Vec<ClassResult>,
    /// Per class: corrected and uncorrected latency histograms, encoded (for `herd merge`).
    pub histograms: Vec<[String; 2]>,
}

/// A class's counters and histograms as results.
fn class_result(
    name: &str,
    s: &Summary,
    k: usize,
    st: &StageStats,
    h: (Option<&Histogram<u64>>, Option<&Histogram<u64>>),
) -> ClassResult {
    let l = |h: Option<&Histogram<u64>>| h.map(latency).unwrap_or_default();
    let c = s.classes.get(k);
    ClassResult {
        class: name.to_string(),
        rooms: c.map_or(0, |c| c.rooms),
        fanout: c.map(|c| c.fanout).unwrap_or_default(),
        sent: st.sent,
        expected: st.expected,
        delivered: st.delivered,
        missed: st.expected.saturating_sub(st.delivered),
        duplicated: st.duplicated,
        latency: LatencyPair { corrected: l(h.0), uncorrected: l(h.1) },
    }
}

fn encode_pair(h: (Option<&Histogram<u64>>, Option<&Histogram<u64>>)) -> [String; 2] {
    let e = |h: Option<&Histogram<u64>>| encode_one(h.unwrap_or(&crate::measure::stats::new_histogram()));
    [e(h.0), e(h.1)]
}

fn from_windows(population: Summary, w: &MergedWindows) -> PopulationResults {
    let names: Vec<String> = population.classes.iter().map(|c| c.name.clone()).collect();
    let classes = names
        .iter()
        .enumerate()
        .map(|(k, n)| class_result(n, &population, k, &w.class(k), w.class_histograms(k)))
        .collect();
    let histograms = (0..names.len()).map(|k| encode_pair(w.class_histograms(k))).collect();
    PopulationResults { population, classes, histograms }
}

/// A run's population results from its merged statistics.
pub fn build(pop: &Population, m: &Merged) -> PopulationResults {
    from_windows(summarize(pop), &m.windows)
}

/// Shards' population results merged: counters add, histograms add bucket by bucket. `name` of
/// each input is for errors.
pub fn merge(inputs: &[(&str, &PopulationResults)]) -> Result<Option<PopulationResults>, String> {
    let Some((_, first)) = inputs.first() else { return Ok(None) };
    let mut w = MergedWindows::default();
    for (i, (name, r)) in inputs.iter().enumerate() {
        if r.classes.iter().map(|c| &c.class).ne(first.classes.iter().map(|c| &c.class)) {
            return Err(format!("{name}: its room classes differ from the first file's"));
        }
        let mut core = CoreWindows::with_classes(0, r.classes.len());
        for (k, c) in r.classes.iter().enumerate() {
            let s = &mut core.classes[k];
            (s.sent, s.expected, s.delivered, s.duplicated) = (c.sent, c.expected, c.delivered, c.duplicated);
            let [hc, hu] = r.histograms.get(k).ok_or_else(|| format!("{name}: population.histograms[{k}] missing"))?;
            s.corrected = Some(decode_one(&format!("{name}: class {} corrected", c.class), hc)?);
            s.uncorrected = Some(decode_one(&format!("{name}: class {} uncorrected", c.class), hu)?);
        }
        w.fold(i, &core.take());
    }
    Ok(Some(from_windows(first.population.clone(), &w)))
}

fn spread(s: &Spread) -> String {
    format!("{:.1}/{}/{}", s.mean, s.p99, s.max)
}

/// The summary's population lines: what it was, then a line per room class.
pub fn summary_lines(r: &PopulationResults) -> String {
    let p = &r.population;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "population   {} users, {} connections, {} rooms in {} communities, {} memberships; rooms per connection \
         mean/p99/max {}",
        p.users,
        p.connections,
        p.rooms,
        p.communities,
        p.memberships,
        spread(&p.rooms_per_connection)
    );
    let _ = writeln!(
        s,
        "room class   {:<10} {:>8} {:>16} {:>9} {:>10} {:>10} {:>7} {:>5} {:>9} {:>9}",
        "", "rooms", "fan-out m/p99/max", "sent", "expected", "delivered", "missed", "dup", "p50 ms", "p99 ms"
    );
    for c in &r.classes {
        let l = &c.latency.corrected;
        let _ = writeln!(
            s,
            "             {:<10} {:>8} {:>16} {:>9} {:>10} {:>10} {:>7} {:>5} {:>9.3} {:>9.3}",
            c.class,
            c.rooms,
            spread(&c.fanout),
            c.sent,
            c.expected,
            c.delivered,
            c.missed,
            c.duplicated,
            l.p50_ms,
            l.p99_ms
        );
    }
    s
}
