//! Whether herd itself was the bottleneck: its send lag, read lag and the CPU its executor
//! threads got during the send phase, the `generator` part of the results, and the note (which
//! makes the verdict `attention`) when they pass the bounds below.
//!
//! Corrected latency counts from the intended send time, so a message herd sends late carries
//! herd's own delay into the target's figures. Send lag measures that delay directly; the
//! run-queue wait says whether a CPU shortage caused it.

use crate::measure::cpu::CpuShare;
use crate::measure::latency::{latency, Latency};
use crate::measure::stats::Histos;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Send lag p99 above which a run gets a note (with at least [`MIN_LATE_SENDS`] messages that
/// late): 1 % of messages left 10 ms or more late, and corrected latency carries that. On a core
/// of its own herd sends within tens of microseconds of the intended time; on a 2-core host
/// shared with other builds, debug runs measured p99 of 0.5 to 4 ms (README, "Is herd the
/// bottleneck?").
pub const SEND_LAG_P99_BOUND_MS: f64 = crate::measure::windows::LATE_SEND_NS as f64 / 1e6;

/// Run-queue wait, as a share of the send phase per executor thread, above which herd counts as
/// short of CPU. A thread that gets a CPU whenever it needs one waits under 1 %; on a 2-core host
/// shared with other builds, 3 to 16 % (50 % at the busiest); beside three or four busy loops on
/// its core, 49 % and 83 %.
pub const RUN_QUEUE_WAIT_BOUND_PERCENT: f64 = 20.0;

/// The executor threads' CPU over the send phase.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct GeneratorCpu {
    /// Executor threads measured.
    pub threads: u64,
    /// The span measured: the send phase, at the reporter's interval.
    pub span_ms: f64,
    /// `span_ms` times `threads`: what the shares are of.
    pub thread_ms: f64,
    /// Time on a CPU, summed over the threads.
    pub busy_ms: f64,
    /// Time ready to run but waiting for a CPU, summed over the threads.
    pub run_queue_wait_ms: f64,
    pub busy_percent: f64,
    pub run_queue_wait_percent: f64,
    /// The CPU quota (cgroup `cpu.max`, or v1 CFS quota) herd ran under, in CPUs; absent without
    /// one.
    pub quota_cpus: Option<f64>,
}

/// herd's own delays (`generator` in the results).
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct Generator {
    /// How late messages left against their intended send times.
    pub send_lag: Latency,
    /// From the kernel's receive time to herd's read (includes reads deferred to the core's
    /// next wake); not part of latency, which counts to the kernel's time.
    pub read_lag: Latency,
    /// Absent where the kernel gives no per-thread scheduler statistics.
    pub cpu: Option<GeneratorCpu>,
    /// Messages sent more than [`SEND_LAG_P99_BOUND_MS`] late.
    pub sent_late: u64,
    /// Send lag or run-queue wait past their bounds: herd's figures include herd's own delay.
    pub starved: bool,
}

/// The CPU figures of a span.
pub fn cpu(share: &CpuShare, quota_cpus: Option<f64>) -> GeneratorCpu {
    GeneratorCpu {
        threads: share.threads,
        span_ms: share.wall_s * 1e3,
        thread_ms: share.wall_s * 1e3 * share.threads as f64,
        busy_ms: share.run_s * 1e3,
        run_queue_wait_ms: share.wait_s * 1e3,
        busy_percent: share.busy_share() * 100.0,
        run_queue_wait_percent: share.wait_share() * 100.0,
        quota_cpus,
    }
}

/// The generator figures of a run from its histograms and its send phase's CPU.
pub fn build(total: &Histos, cpu: Option<GeneratorCpu>) -> Generator {
    let h = &total.send_lag;
    let bound_us = crate::measure::windows::LATE_SEND_NS / 1000;
    let sent_late = h.len().saturating_sub(h.count_between(0, bound_us));
    let (send_lag, read_lag) = (latency(h), latency(&total.read_lag));
    let mut g = Generator { send_lag, read_lag, cpu, sent_late, starved: false };
    g.starved = short_of_cpu(&g) || sent_late_past_bound(&g);
    g
}

/// Fewest late messages that count as herd sending late: in a short run one message out of 50
/// is its p99, and one late wake is not a generator short of CPU.
pub const MIN_LATE_SENDS: u64 = 10;

/// Whether herd sent a run, or a part of one (a `herd knee` step), late past the bound: more
/// than 1 % of its `sent` messages (and at least [`MIN_LATE_SENDS`]) left over
/// [`SEND_LAG_P99_BOUND_MS`] late, so its send lag p99 passed it.
pub fn part_sent_late(sent: u64, sent_late: u64) -> bool {
    sent_late >= MIN_LATE_SENDS && sent_late * 100 > sent
}

fn short_of_cpu(g: &Generator) -> bool {
    g.cpu.as_ref().is_some_and(|c| c.run_queue_wait_percent > RUN_QUEUE_WAIT_BOUND_PERCENT)
}

fn sent_late_past_bound(g: &Generator) -> bool {
    part_sent_late(g.send_lag.count, g.sent_late)
}

/// The note for a run whose figures include herd's own delay, if they do.
pub fn note(g: &Generator) -> Option<String> {
    let lag = format!("send lag p99 {:.2} ms, max {:.2} ms", g.send_lag.p99_ms, g.send_lag.max_ms);
    let quota =
        |c: &GeneratorCpu| c.quota_cpus.map(|q| format!(", under a CPU quota of {q:.2} CPUs")).unwrap_or_default();
    match &g.cpu {
        Some(c) if short_of_cpu(g) => Some(format!(
            "herd was short of CPU for {:.0} % of the send phase (its threads' run-queue wait; busy {:.0} %{}): \
             corrected latency includes up to {:.1} ms of herd's own delay ({lag}); use more cores or fewer \
             connections per node",
            c.run_queue_wait_percent,
            c.busy_percent,
            quota(c),
            g.send_lag.max_ms
        )),
        _ if sent_late_past_bound(g) => {
            let cpu = match &g.cpu {
                Some(c) => format!(
                    "its threads waited for a CPU {:.1} % of the send phase{}, so look at a target slow to read \
                     (full send buffers) or a busy core",
                    c.run_queue_wait_percent,
                    quota(c)
                ),
                None => "this kernel gives no run-queue figures to say why".to_string(),
            };
            Some(format!(
                "herd sent late ({lag} against the intended times): corrected latency includes up to {:.1} ms of \
                 herd's own delay; {cpu}",
                g.send_lag.max_ms
            ))
        }
        _ => None,
    }
}

/// The send and read lag rows of the summary's latency table.
pub fn lag_lines(g: &Generator) -> String {
    let mut s = String::new();
    for (name, l) in [("send lag", &g.send_lag), ("read lag", &g.read_lag)] {
        if l.count > 0 {
            let _ = writeln!(
                s,
                "  {:<13} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                name, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
            );
        }
    }
    s
}

/// The summary's line on herd's own CPU while sending (empty when not measured).
pub fn cpu_line(g: &Generator) -> String {
    let mut s = String::new();
    if let Some(c) = &g.cpu {
        let _ = write!(
            s,
            "herd cpu     {} executor thread(s) over {:.1}s of sending: busy {:.1} %, waiting for a CPU {:.1} %",
            c.threads,
            c.span_ms / 1e3,
            c.busy_percent,
            c.run_queue_wait_percent
        );
        if let Some(q) = c.quota_cpus {
            let _ = write!(s, ", quota {q:.2} CPUs");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histos(lags_us: &[u64]) -> Histos {
        let mut h = Histos::default();
        for &v in lags_us {
            h.send_lag.record(v).unwrap();
        }
        h
    }

    fn share(wait_s: f64) -> GeneratorCpu {
        cpu(&CpuShare { threads: 2, wall_s: 10.0, run_s: 4.0, wait_s }, None)
    }

    #[test]
    fn a_run_on_time_with_its_cpu_has_no_note() {
        let g = build(&histos(&[20, 40, 60, 900]), Some(share(0.1)));
        assert!(!g.starved);
        assert_eq!(note(&g), None);
        assert!((g.cpu.as_ref().unwrap().run_queue_wait_percent - 0.5).abs() < 1e-9);
    }

    #[test]
    fn run_queue_wait_past_the_bound_names_the_share_and_the_delay() {
        let g = build(&histos(&[50; 99]), Some(share(7.6)));
        assert!(g.starved);
        let n = note(&g).unwrap();
        assert!(n.starts_with("herd was short of CPU for 38 % of the send phase"), "{n}");
        assert!(n.contains("busy 20 %") && n.contains("use more cores or fewer connections per node"), "{n}");
        let quota = GeneratorCpu { quota_cpus: Some(1.5), ..share(7.6) };
        assert!(note(&build(&histos(&[50]), Some(quota))).unwrap().contains("CPU quota of 1.50 CPUs"));
    }

    #[test]
    fn late_sends_alone_are_noted_with_the_cpu_figure() {
        let mut lags = vec![30; 90];
        lags.extend([20_000; 10]);
        let g = build(&histos(&lags), Some(share(0.0)));
        assert!(g.starved);
        let n = note(&g).unwrap();
        assert!(n.starts_with("herd sent late (send lag p99 20.02 ms, max 20.02 ms"), "{n}");
        assert!(n.contains("waited for a CPU 0.0 %"), "{n}");
        let g = build(&histos(&lags), None);
        assert!(note(&g).unwrap().contains("no run-queue figures"), "without schedstat: said so");
    }

    #[test]
    fn a_part_is_late_past_one_percent() {
        assert!(!part_sent_late(1000, 10), "1 % late: p99 is on the bound, not past it");
        assert!(part_sent_late(1000, 11));
        assert!(!part_sent_late(0, 0));
        assert!(!part_sent_late(50, 1), "one late wake in a short run is not herd short of CPU");
        let mut lags = vec![30; 49];
        lags.push(40_000);
        let g = build(&histos(&lags), None);
        assert!(g.send_lag.p99_ms > SEND_LAG_P99_BOUND_MS && g.sent_late == 1 && !g.starved);
        assert!(note(&g).is_none());
    }

    #[test]
    fn nothing_sent_is_nothing_late() {
        let g = build(&Histos::default(), None);
        assert!(!g.starved && note(&g).is_none());
        assert_eq!((lag_lines(&g), cpu_line(&g)), (String::new(), String::new()));
    }
}
