//! The results of a shaped run: per-stage figures, outages (storms, and losses brought back by
//! `--reconnect`), churn; and their lines in the summary.

use super::{Shape, Storm};
use crate::measure::latency::{latency, LatencyPair};
use crate::measure::stats::Merged;
use crate::measure::windows::{OutageResult, StageResult};
use crate::outcome::histcodec::encode_one;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct ShapeResults {
    /// One entry per `--stage` (empty without stages).
    pub stages: Vec<StageResult>,
    /// Periods with connections away to come back, from the start of sending.
    pub outages: Vec<OutageResult>,
    /// Deliveries received during outages, and their latency.
    pub outage_deliveries: u64,
    pub outage_latency: LatencyPair,
    /// `--storm`, as asked.
    pub storm: Option<Storm>,
    /// `--churn`, per second, as asked.
    pub churn_per_s: Option<f64>,
    /// Connections closed mid-run (ramp downs, churn, storm) and joins after churn or a storm.
    pub left: u64,
    pub rejoined: u64,
    /// Per stage and for outages, (corrected, uncorrected) serialized as `histograms` is, so
    /// that `herd merge` adds them exactly.
    pub histograms: ShapeHistos,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct ShapeHistos {
    pub stages: Vec<[String; 2]>,
    pub outages: [String; 2],
}

fn encode_pair(c: Option<&Histogram<u64>>, u: Option<&Histogram<u64>>) -> [String; 2] {
    let e = |h: Option<&Histogram<u64>>| match h {
        Some(h) => encode_one(h),
        None => encode_one(&crate::measure::stats::new_histogram()),
    };
    [e(c), e(u)]
}

fn pair(c: Option<&hdrhistogram::Histogram<u64>>, u: Option<&hdrhistogram::Histogram<u64>>) -> LatencyPair {
    let l = |h: Option<&hdrhistogram::Histogram<u64>>| h.map(latency).unwrap_or_default();
    LatencyPair { corrected: l(c), uncorrected: l(u) }
}

/// The per-stage figures of a run that had stages; `sent_for_ns` is how long the send phase
/// actually lasted (a run stopped early cuts its last stage short, and its rates count only
/// the time it ran).
pub fn stages(shape: &Shape, m: &Merged, sent_for_ns: u64) -> Vec<StageResult> {
    (0..shape.stages().len())
        .map(|i| {
            let st = m.windows.stage(i);
            let (a, b) = shape.span(i);
            let secs = (b.min(sent_for_ns).saturating_sub(a)) as f64 / 1e9;
            StageResult {
                stage: i + 1,
                start_s: a as f64 / 1e9,
                end_s: b as f64 / 1e9,
                connections: shape.stages()[i].connections,
                rate: shape.stages()[i].rate,
                sent: st.sent,
                expected: st.expected,
                delivered: st.delivered,
                missed: st.expected.saturating_sub(st.delivered),
                duplicated: st.duplicated,
                sent_late: st.sent_late,
                deliveries_per_s: if secs > 0.0 { st.delivered as f64 / secs } else { 0.0 },
                latency: {
                    let (c, u) = m.windows.stage_histograms(i);
                    pair(c, u)
                },
            }
        })
        .collect()
}

/// The shape part of a run's results: `None` for a run with no stages, churn, storm or outage.
pub fn build(
    shape: Option<&Shape>,
    storm: Option<Storm>,
    churn: Option<f64>,
    m: &Merged,
    send_start_ns: u64,
    send_end_ns: u64,
    end_ns: u64,
) -> Option<ShapeResults> {
    let outages: Vec<OutageResult> = m
        .windows
        .outages(end_ns)
        .into_iter()
        .map(|(s, e, n)| OutageResult {
            start_s: s.saturating_sub(send_start_ns) as f64 / 1e9,
            recovery_s: (e - s) as f64 / 1e9,
            connections_lost: n,
            unfinished: e >= end_ns,
        })
        .collect();
    if shape.is_none() && storm.is_none() && churn.is_none() && outages.is_empty() {
        return None;
    }
    let (c, u) = m.windows.outage_histograms();
    let stage_count = shape.map_or(0, |s| s.stages().len());
    let histograms = ShapeHistos {
        stages: (0..stage_count)
            .map(|i| {
                let (c, u) = m.windows.stage_histograms(i);
                encode_pair(c, u)
            })
            .collect(),
        outages: encode_pair(c, u),
    };
    Some(ShapeResults {
        stages: shape.map(|s| stages(s, m, send_end_ns.saturating_sub(send_start_ns))).unwrap_or_default(),
        outages,
        outage_deliveries: m.windows.outage_deliveries(),
        outage_latency: pair(c, u),
        storm,
        churn_per_s: churn,
        left: m.counters.conns_left,
        rejoined: m.counters.conns_rejoined,
        histograms,
    })
}

/// The summary's lines for stages, outages and churn.
pub fn summary_lines(r: &ShapeResults) -> String {
    let mut s = String::new();
    if !r.stages.is_empty() {
        let _ = writeln!(
            s,
            "stages       {:>3} {:>15} {:>7} {:>9} {:>8} {:>9} {:>7} {:>9} {:>9}",
            "#", "time (s)", "conns", "rate/s", "sent", "delivered", "missed", "p50 ms", "p99 ms"
        );
        for st in &r.stages {
            let conns = st.connections.map(|c| c.to_string()).unwrap_or_else(|| "all".into());
            let _ = writeln!(
                s,
                "             {:>3} {:>7.1}-{:<7.1} {:>7} {:>9} {:>8} {:>9} {:>7} {:>9.3} {:>9.3}",
                st.stage,
                st.start_s,
                st.end_s,
                conns,
                st.rate,
                st.sent,
                st.delivered,
                st.missed,
                st.latency.corrected.p50_ms,
                st.latency.corrected.p99_ms
            );
        }
    }
    if let Some(st) = &r.storm {
        let _ = writeln!(
            s,
            "storm        at {:.1}s: {:.0}% of connections closed, back over {:?}",
            st.at.as_secs_f64(),
            st.fraction * 100.0,
            st.over
        );
    }
    for o in r.outages.iter().take(10) {
        let _ = writeln!(
            s,
            "outage       at {:.3}s: {} connection(s) away, all back after {:.3}s{}",
            o.start_s,
            o.connections_lost,
            o.recovery_s,
            if o.unfinished { " (NOT all back when the run ended)" } else { "" }
        );
    }
    if r.outages.len() > 10 {
        let _ = writeln!(s, "             ... {} outages in all (see the results JSON)", r.outages.len());
    }
    if r.outage_deliveries > 0 {
        let l = &r.outage_latency.corrected;
        let _ = writeln!(
            s,
            "             during outages: {} deliveries, corrected p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            r.outage_deliveries, l.p50_ms, l.p99_ms, l.max_ms
        );
    }
    if r.left + r.rejoined > 0 || r.churn_per_s.is_some() {
        let churn = r.churn_per_s.map(|c| format!("churn {c}/s: ")).unwrap_or_default();
        let _ = writeln!(s, "left/joined  {churn}left {}  joined again {}", r.left, r.rejoined);
    }
    s
}
