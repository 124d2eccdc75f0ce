//! Figures for parts of a run: per stage (`--stage`, `herd knee`), per room class (a
//! population's direct messages, groups, channels: counted like a stage, by the class of the
//! message's room) and per outage (connections lost and coming back: `--storm`, or a server
//! that drops them under `--reconnect`).
//!
//! A message belongs to the stage that holds its intended send time, on both sides of the
//! account: `expected` counts at send, `delivered` and the latency at receipt, so a stage's
//! missed count is exact even when its last messages arrive during the next stage.
//!
//! An outage on a core starts when one of its connections goes away to come back (lost under
//! `--reconnect`, or closed by a storm) while none was away, and ends when the last of them is
//! back. Deliveries received during an outage also go to the outage histograms. The run's
//! outages are the cores' outages merged where they overlap.
//!
//! Cores keep cumulative counters and the histograms recorded since their last snapshot (taken
//! then, so a core holds histograms only for the stages it is receiving now).

use crate::measure::latency::new_histogram;
use hdrhistogram::Histogram;
use serde::Serialize;

/// One stage's figures on one core (counters cumulative, histograms since the last snapshot).
#[derive(Clone, Debug, Default)]
pub struct StageStats {
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub duplicated: u64,
    /// Messages of the stage that left more than [`LATE_SEND_NS`] after their intended time:
    /// over 1 % of `sent`, the stage's send lag p99 passed that bound.
    pub sent_late: u64,
    pub corrected: Option<Histogram<u64>>,
    pub uncorrected: Option<Histogram<u64>>,
}

/// The send lag bound of the run's note (`outcome/generator.rs`), in ns, for counting a stage's
/// late sends.
pub const LATE_SEND_NS: u64 = 10_000_000;

fn record(h: &mut Option<Histogram<u64>>, ns: u64) {
    h.get_or_insert_with(new_histogram).saturating_record((ns / 1000).max(1));
}

fn add(into: &mut Option<Histogram<u64>>, from: &Option<Histogram<u64>>) {
    if let Some(f) = from {
        let _ = into.get_or_insert_with(new_histogram).add(f);
    }
}

impl StageStats {
    pub fn record_delivery(&mut self, corrected_ns: u64, uncorrected_ns: u64) {
        self.delivered += 1;
        record(&mut self.corrected, corrected_ns);
        record(&mut self.uncorrected, uncorrected_ns);
    }

    /// This stage's snapshot: counters as they are, histograms taken.
    fn take(&mut self) -> StageStats {
        StageStats { corrected: self.corrected.take(), uncorrected: self.uncorrected.take(), ..*self }
    }
}

/// A core's outages so far.
#[derive(Clone, Debug, Default)]
pub struct Outages {
    /// Closed outages, (start, end, connections that went away), oldest first; at most
    /// [`MAX_OUTAGES`] (later ones merge into the last).
    pub closed: Vec<(u64, u64, u64)>,
    /// The open outage: its start and connections gone so far.
    pub open: Option<(u64, u64)>,
    pub corrected: Option<Histogram<u64>>,
    pub uncorrected: Option<Histogram<u64>>,
    /// Deliveries received during outages.
    pub delivered: u64,
}

/// Outages a core remembers one by one.
pub const MAX_OUTAGES: usize = 100;

impl Outages {
    /// A connection went away (to come back) at `now`; `away` is how many are away now.
    pub fn went_away(&mut self, now: u64) {
        match &mut self.open {
            Some((_, lost)) => *lost += 1,
            None => self.open = Some((now, 1)),
        }
    }

    /// A connection came back, or gave up; `away` is how many are still away.
    pub fn came_back(&mut self, now: u64, away: u64) {
        if away > 0 {
            return;
        }
        if let Some((start, lost)) = self.open.take() {
            if self.closed.len() >= MAX_OUTAGES {
                let last = self.closed.last_mut().expect("MAX_OUTAGES > 0");
                last.1 = now;
                last.2 += lost;
            } else {
                self.closed.push((start, now, lost));
            }
        }
    }

    pub fn active(&self) -> bool {
        self.open.is_some()
    }

    pub fn record_delivery(&mut self, corrected_ns: u64, uncorrected_ns: u64) {
        self.delivered += 1;
        record(&mut self.corrected, corrected_ns);
        record(&mut self.uncorrected, uncorrected_ns);
    }

    fn take(&mut self) -> Outages {
        Outages {
            closed: self.closed.clone(),
            open: self.open,
            corrected: self.corrected.take(),
            uncorrected: self.uncorrected.take(),
            delivered: self.delivered,
        }
    }
}

/// What one core records for the windows of a run.
#[derive(Clone, Debug, Default)]
pub struct CoreWindows {
    pub stages: Vec<StageStats>,
    pub outages: Outages,
    /// Per room class of a population (empty in a grid).
    pub classes: Vec<StageStats>,
}

impl CoreWindows {
    pub fn new(stages: usize) -> CoreWindows {
        CoreWindows { stages: vec![StageStats::default(); stages], ..Default::default() }
    }

    /// With `classes` room classes as well.
    pub fn with_classes(stages: usize, classes: usize) -> CoreWindows {
        CoreWindows { classes: vec![StageStats::default(); classes], ..CoreWindows::new(stages) }
    }

    /// A message sent in a room of class `k`, owed to `owed` connections (`undo`: its write
    /// failed, it was not sent after all).
    pub fn class_sent(&mut self, k: usize, owed: u64, undo: bool) {
        if let Some(c) = self.classes.get_mut(k) {
            if undo {
                c.sent -= 1;
                c.expected -= owed;
            } else {
                c.sent += 1;
                c.expected += owed;
            }
        }
    }

    /// The counters, without histograms.
    fn counters_only(&self) -> CoreWindows {
        let stage = |s: &StageStats| StageStats { corrected: None, uncorrected: None, ..*s };
        let o = &self.outages;
        CoreWindows {
            stages: self.stages.iter().map(stage).collect(),
            classes: self.classes.iter().map(stage).collect(),
            outages: Outages {
                closed: o.closed.clone(),
                open: o.open,
                corrected: None,
                uncorrected: None,
                delivered: o.delivered,
            },
        }
    }

    /// A snapshot: cumulative counters, histograms since the previous one.
    pub fn take(&mut self) -> CoreWindows {
        CoreWindows {
            stages: self.stages.iter_mut().map(StageStats::take).collect(),
            outages: self.outages.take(),
            classes: self.classes.iter_mut().map(StageStats::take).collect(),
        }
    }
}

/// Corrected and uncorrected latency, allocated once something is recorded.
type Pair = (Option<Histogram<u64>>, Option<Histogram<u64>>);

/// The run's windows, folded from the cores' snapshots on the reporter thread.
#[derive(Default)]
pub struct MergedWindows {
    per_core: Vec<CoreWindows>,
    stage_hist: Vec<Pair>,
    outage_hist: Pair,
    class_hist: Vec<Pair>,
}

/// Adds the histograms of `from` into `hist`, one pair per window.
fn fold_hist(hist: &mut Vec<Pair>, from: &[StageStats]) {
    if hist.len() < from.len() {
        hist.resize(from.len(), (None, None));
    }
    for (h, s) in hist.iter_mut().zip(from) {
        add(&mut h.0, &s.corrected);
        add(&mut h.1, &s.uncorrected);
    }
}

/// Window `i`'s counters summed over cores.
fn sum(per_core: &[CoreWindows], pick: impl Fn(&CoreWindows) -> Option<&StageStats>) -> StageStats {
    let mut s = StageStats::default();
    for c in per_core.iter().filter_map(pick) {
        s.sent += c.sent;
        s.expected += c.expected;
        s.delivered += c.delivered;
        s.duplicated += c.duplicated;
        s.sent_late += c.sent_late;
    }
    s
}

impl MergedWindows {
    pub fn fold(&mut self, core: usize, w: &CoreWindows) {
        if self.per_core.len() <= core {
            self.per_core.resize(core + 1, CoreWindows::default());
        }
        fold_hist(&mut self.stage_hist, &w.stages);
        fold_hist(&mut self.class_hist, &w.classes);
        add(&mut self.outage_hist.0, &w.outages.corrected);
        add(&mut self.outage_hist.1, &w.outages.uncorrected);
        // Keep counters only: the histograms were folded above.
        self.per_core[core] = w.counters_only();
    }

    /// Stage `i`'s counters summed over cores (no histograms: see [`Self::stage_histograms`]).
    pub fn stage(&self, i: usize) -> StageStats {
        sum(&self.per_core, |c| c.stages.get(i))
    }

    /// Room class `k`'s counters summed over cores.
    pub fn class(&self, k: usize) -> StageStats {
        sum(&self.per_core, |c| c.classes.get(k))
    }

    /// Room class `k`'s merged histograms (corrected, uncorrected), if it recorded any.
    pub fn class_histograms(&self, k: usize) -> (Option<&Histogram<u64>>, Option<&Histogram<u64>>) {
        self.class_hist.get(k).map_or((None, None), |(a, b)| (a.as_ref(), b.as_ref()))
    }

    pub fn class_count(&self) -> usize {
        self.per_core.iter().map(|c| c.classes.len()).max().unwrap_or(0)
    }

    /// Stage `i`'s merged histograms (corrected, uncorrected), if it recorded any.
    pub fn stage_histograms(&self, i: usize) -> (Option<&Histogram<u64>>, Option<&Histogram<u64>>) {
        self.stage_hist.get(i).map_or((None, None), |(a, b)| (a.as_ref(), b.as_ref()))
    }

    /// The latest stage with messages sent, 1-based; 0 before any.
    pub fn current_stage(&self) -> u64 {
        (0..self.stage_count()).rev().find(|&i| self.stage(i).sent > 0).map_or(0, |i| i as u64 + 1)
    }

    pub fn stage_count(&self) -> usize {
        self.per_core.iter().map(|c| c.stages.len()).max().unwrap_or(0)
    }

    /// The run's outages: every core's, merged where they overlap, with `now` closing any still
    /// open. (start, end, connections that went away.)
    pub fn outages(&self, now: u64) -> Vec<(u64, u64, u64)> {
        let mut all: Vec<(u64, u64, u64)> = self
            .per_core
            .iter()
            .flat_map(|c| c.outages.closed.iter().copied().chain(c.outages.open.map(|(s, n)| (s, now, n))))
            .collect();
        merge_overlapping(&mut all);
        all
    }

    pub fn outage_deliveries(&self) -> u64 {
        self.per_core.iter().map(|c| c.outages.delivered).sum()
    }

    pub fn outage_histograms(&self) -> (Option<&Histogram<u64>>, Option<&Histogram<u64>>) {
        (self.outage_hist.0.as_ref(), self.outage_hist.1.as_ref())
    }
}

/// Sorts intervals and merges those that overlap or touch, adding their counts.
pub fn merge_overlapping(v: &mut Vec<(u64, u64, u64)>) {
    v.sort_unstable();
    let mut out: Vec<(u64, u64, u64)> = Vec::with_capacity(v.len());
    for &(s, e, n) in v.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1 => {
                last.1 = last.1.max(e);
                last.2 += n;
            }
            _ => out.push((s, e, n)),
        }
    }
    *v = out;
}

/// One stage in the results.
#[derive(Serialize, serde::Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct StageResult {
    pub stage: usize,
    pub start_s: f64,
    pub end_s: f64,
    /// The stage's targets.
    pub connections: Option<u64>,
    pub rate: f64,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub missed: u64,
    pub duplicated: u64,
    /// Of `sent`, those herd sent more than 10 ms late (its own delay, inside this stage's
    /// corrected latency).
    #[serde(default)]
    pub sent_late: u64,
    /// Deliveries of this stage's messages per second of the stage.
    pub deliveries_per_s: f64,
    pub latency: crate::measure::latency::LatencyPair,
}

/// One outage in the results.
#[derive(Serialize, serde::Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct OutageResult {
    /// From the start of sending.
    pub start_s: f64,
    /// How long until every connection that went away was back (or the run ended).
    pub recovery_s: f64,
    /// Connections that went away during it.
    pub connections_lost: u64,
    /// Still open when the run ended.
    pub unfinished: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_open_and_close_with_the_away_count() {
        let mut o = Outages::default();
        o.went_away(100);
        o.went_away(150);
        assert!(o.active());
        o.came_back(200, 1);
        assert!(o.active(), "one still away");
        o.came_back(300, 0);
        assert!(!o.active());
        assert_eq!(o.closed, vec![(100, 300, 2)]);
    }

    #[test]
    fn cores_outages_merge_where_they_overlap() {
        let mut v = vec![(10, 20, 1), (15, 30, 2), (40, 50, 1), (30, 35, 1), (60, 61, 4)];
        merge_overlapping(&mut v);
        assert_eq!(v, vec![(10, 35, 4), (40, 50, 1), (60, 61, 4)]);
    }

    #[test]
    fn stage_counters_sum_and_histograms_add_across_snapshots() {
        let mut core0 = CoreWindows::new(2);
        let mut core1 = CoreWindows::new(2);
        core0.stages[0].sent = 2;
        core0.stages[0].expected = 4;
        core0.stages[0].record_delivery(1_000_000, 500_000);
        core1.stages[1].sent = 1;
        core1.stages[1].expected = 3;
        core1.stages[1].record_delivery(2_000_000, 2_000_000);
        core1.stages[1].duplicated = 1;
        let mut m = MergedWindows::default();
        m.fold(0, &core0.take());
        m.fold(1, &core1.take());
        // A later snapshot of core 0: counters replace, histograms add.
        core0.stages[0].record_delivery(3_000_000, 1_000_000);
        m.fold(0, &core0.take());
        let s0 = m.stage(0);
        assert_eq!((s0.sent, s0.expected, s0.delivered), (2, 4, 2));
        assert_eq!(m.stage_histograms(0).0.unwrap().len(), 2);
        assert_eq!(m.stage_histograms(1).1.unwrap().len(), 1);
        let s1 = m.stage(1);
        assert_eq!((s1.sent, s1.expected, s1.delivered, s1.duplicated), (1, 3, 1, 1));
        assert_eq!(m.stage_count(), 2);
        assert!(core0.stages[0].corrected.is_none(), "taken by the snapshot");
    }

    #[test]
    fn many_outages_fold_into_the_last() {
        let mut o = Outages::default();
        for i in 0..(MAX_OUTAGES as u64 + 5) {
            o.went_away(i * 10);
            o.came_back(i * 10 + 5, 0);
        }
        assert_eq!(o.closed.len(), MAX_OUTAGES);
        let last = o.closed.last().unwrap();
        assert_eq!(last.2, 6);
        assert_eq!(last.1, (MAX_OUTAGES as u64 + 4) * 10 + 5);
    }
}
