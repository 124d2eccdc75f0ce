//! The Prometheus text exposition of a run: counters, gauges and HDR-backed histograms.
//!
//! Each call builds a fresh `prometheus::Registry`: counters and gauges are the crate's own
//! types, set to the merged totals; histograms are built as `prometheus::proto` metric families
//! from the HDR histograms (the crate's `Histogram` records observations one by one and cannot
//! take precomputed buckets). The crate's `TextEncoder` writes the result.
//!
//! Metrics, with the default prefix `herd`:
//!
//! | name | type | meaning |
//! | --- | --- | --- |
//! | `herd_delivery_latency_seconds` | histogram | delivery latency from the intended send time (corrected for coordinated omission) |
//! | `herd_delivery_latency_uncorrected_seconds` | histogram | delivery latency from the actual send time |
//! | `herd_delivery_latency_quantile_seconds{kind,quantile}` | gauge | exact HDR quantiles over the run so far; `quantile` is 0.5, 0.9, 0.99, 0.999 or 1 (the maximum), `kind` is `corrected`, `uncorrected` or `send_lag`; absent while nothing was recorded |
//! | `herd_connect_duration_seconds` | histogram | TCP connect plus WebSocket handshake |
//! | `herd_send_lag_seconds` | histogram | how late messages left against their intended send time (herd's own delay; `kind="send_lag"` in the quantile gauges) |
//! | `herd_read_lag_seconds` | histogram | from the kernel's receive time to herd's read |
//! | `herd_core_cpu_seconds_total{core,state}` | counter | each executor thread's CPU since it started: `busy` on a CPU, `run_queue_wait` ready and waiting for one |
//! | `herd_cpu_quota_cpus` | gauge | the cgroup CPU quota herd runs under, in CPUs (absent without one) |
//! | `herd_connections` | gauge | open now: established − closed by peer − closed by herd |
//! | `herd_core_connections{core}` | gauge | the same, per executor core |
//! | `herd_connections_attempted_total`, `_established_total`, `_failed_total`, `_reconnected_total`, `_closed_by_peer_total`, `_closed_total` | counter | connection outcomes |
//! | `herd_messages_sent_total`, `_expected_total`, `_delivered_total`, `_duplicated_total`, `_reordered_total`, `_unexpected_total`, `_echoed_total` | counter | see [`crate::measure::stats::Counters`] |
//! | `herd_messages_pending` | gauge | expected − delivered now: deliveries still owed |
//! | `herd_stage` | gauge | the `--stage` being sent now, 1-based (0 before any, or without stages) |
//! | `herd_connections_left_total`, `_rejoined_total` | counter | closed mid-run (stages, churn, storm), and joined again |
//! | `herd_messages_missed_total` | counter | expected − delivered once the run is [`Phase::Done`]; 0 before |
//! | `herd_errors_total{category}` | counter | every [`crate::measure::stats::ErrorKind`] name, zeros included |
//! | `herd_handshake_rejected_total{status}` | counter | refused upgrades (`handshake_rejected`) by the HTTP status the server answered |
//! | `herd_close_codes_received_total{code}` | counter | connections the server ended, by the close code it sent (1005: none; 1006: no close frame) |
//! | `herd_invalid_close_codes_total` | counter | close frames from the server with a code RFC 6455 does not allow on the wire |
//! | `herd_run_phase{phase}` | gauge | the phase's number (0 starting … 5 done); the `phase` label names it |
//! | `herd_run_info{run_id,target,conversations,members,senders,rate,size,threads,version,...}` | gauge | always 1; the scenario as labels |
//!
//! Why quantiles are a gauge family and not a summary: a summary's `_sum` and `_count` would
//! repeat the histogram's, and one family carries both kinds through the `kind` label.
//!
//! Why `missed` is not simply expected − delivered during the run: that difference falls each
//! time a late delivery arrives, and a counter that falls is read by `rate()` as a restart. While
//! the run goes on it is exported as the `herd_messages_pending` gauge; what is still pending
//! when the run is done is the missed count.

use prometheus::{
    Encoder as _, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use crate::client::phase::Phase;

use super::buckets::{Precomputed, DEFAULT_BOUNDS_SECONDS};
pub use super::labels::RunInfo;
use super::labels::{run_info_labels, sanitize_prefix};
use crate::measure::stats::{ErrorKind, Merged};

/// Exported quantiles, and their `quantile` label values.
const QUANTILES: [(f64, &str); 5] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999"), (1.0, "1")];

/// The text exposition of a run, with the default histogram bounds
/// ([`DEFAULT_BOUNDS_SECONDS`]). `prefix` is joined to every name with `_` (`herd` gives
/// `herd_connections`); an empty prefix leaves the bare names.
pub fn encode(prefix: &str, run: &RunInfo, phase: Phase, merged: &Merged) -> String {
    encode_with_bounds(prefix, run, phase, merged, &DEFAULT_BOUNDS_SECONDS)
}

/// [`encode`] with other histogram bounds (seconds, ascending; non-finite ones are left out).
/// Never fails: should encoding fail, the text is a single comment saying why, which the
/// Pushgateway accepts as an empty group.
pub fn encode_with_bounds(
    prefix: &str,
    run: &RunInfo,
    phase: Phase,
    merged: &Merged,
    bounds_seconds: &[f64],
) -> String {
    match try_encode(prefix, run, phase, merged, bounds_seconds, crate::measure::cpu::quota_cores()) {
        Ok(text) => text,
        Err(e) => format!("# herd could not encode its metrics: {}\n", e.to_string().replace('\n', " ")),
    }
}

fn try_encode(
    prefix: &str,
    run: &RunInfo,
    phase: Phase,
    merged: &Merged,
    bounds_seconds: &[f64],
    quota_cpus: Option<f64>,
) -> prometheus::Result<String> {
    let prefix = sanitize_prefix(prefix);
    let name = |base: &str| {
        if prefix.is_empty() {
            base.to_string()
        } else {
            format!("{prefix}_{base}")
        }
    };
    let reg = Registry::new();
    let c = &merged.counters;

    for (base, help, value) in [
        ("connections_attempted_total", "Connections herd tried to open.", c.conns_attempted),
        ("connections_established_total", "Connections that completed the WebSocket handshake.", c.conns_established),
        ("connections_failed_total", "Connections that failed before or during the handshake.", c.conns_failed),
        (
            "connections_reconnected_total",
            "Connections established again after a loss (--reconnect).",
            c.conns_reconnected,
        ),
        (
            "connections_closed_by_peer_total",
            "Established connections the peer closed before herd did.",
            c.conns_closed_by_peer,
        ),
        ("connections_closed_total", "Connections herd closed itself (at the end, or mid-run).", c.conns_closed),
        (
            "connections_left_total",
            "Connections herd closed mid-run after all owed to them arrived (stages ramping down, --churn, --storm).",
            c.conns_left,
        ),
        ("connections_rejoined_total", "Members that left (--churn, --storm) and connected again.", c.conns_rejoined),
        ("messages_sent_total", "Messages written to a socket.", c.msgs_sent),
        (
            "messages_expected_total",
            "Deliveries owed: each sent message times the other connected members of its conversation.",
            c.msgs_expected,
        ),
        ("messages_delivered_total", "First receipts of expected messages.", c.msgs_delivered),
        ("messages_duplicated_total", "Receipts of a message the receiver already had.", c.msgs_duplicated),
        (
            "messages_reordered_total",
            "First receipts of a message after a later message of the same sender.",
            c.msgs_reordered,
        ),
        (
            "messages_unexpected_total",
            "Receipts of messages sent before the receiver was connected.",
            c.msgs_unexpected,
        ),
        ("messages_echoed_total", "Senders receiving their own message back.", c.msgs_echoed),
        (
            "invalid_close_codes_total",
            "Close frames from the server with a code RFC 6455 does not allow on the wire.",
            c.wire.invalid_close_codes,
        ),
        (
            "messages_missed_total",
            "Deliveries still owed when the run was done (0 until then).",
            if phase == Phase::Done { c.pending() } else { 0 },
        ),
    ] {
        let m = IntCounter::with_opts(Opts::new(name(base), help))?;
        m.inc_by(value);
        reg.register(Box::new(m))?;
    }

    for (base, help, value) in [
        ("connections", "Connections open now: established minus closed by either side.", c.open()),
        ("messages_pending", "Deliveries owed that have not arrived (yet).", c.pending()),
        (
            "stage",
            "The --stage being sent now (1-based; 0: none yet, or a run without stages).",
            merged.windows.current_stage(),
        ),
    ] {
        let m = IntGauge::with_opts(Opts::new(name(base), help))?;
        m.set(to_i64(value));
        reg.register(Box::new(m))?;
    }

    let per_core =
        IntGaugeVec::new(Opts::new(name("core_connections"), "Connections open now, per executor core."), &["core"])?;
    for (i, core) in merged.per_core().iter().enumerate() {
        per_core.with_label_values(&[i.to_string()]).set(to_i64(core.open()));
    }
    reg.register(Box::new(per_core))?;

    // herd's own CPU: whether herd itself is the bottleneck (see `outcome/generator.rs`).
    let core_cpu = prometheus::CounterVec::new(
        Opts::new(
            name("core_cpu_seconds_total"),
            "CPU time of each executor thread since it started: on a CPU (state=busy) or ready and waiting for one (state=run_queue_wait).",
        ),
        &["core", "state"],
    )?;
    for (i, core) in merged.per_core().iter().enumerate().filter(|(_, c)| c.cpu_threads > 0) {
        core_cpu.with_label_values(&[i.to_string().as_str(), "busy"]).inc_by(core.cpu_run_ns as f64 / 1e9);
        core_cpu.with_label_values(&[i.to_string().as_str(), "run_queue_wait"]).inc_by(core.cpu_wait_ns as f64 / 1e9);
    }
    reg.register(Box::new(core_cpu))?;
    if let Some(q) = quota_cpus {
        let g = prometheus::Gauge::with_opts(Opts::new(
            name("cpu_quota_cpus"),
            "The CPU quota herd runs under (cgroup cpu.max), in CPUs; absent without one.",
        ))?;
        g.set(q);
        reg.register(Box::new(g))?;
    }

    let errors =
        IntCounterVec::new(Opts::new(name("errors_total"), "Per-connection errors by category."), &["category"])?;
    for kind in ErrorKind::ALL {
        errors.with_label_values(&[kind.name()]).inc_by(c.errors_of(kind));
    }
    reg.register(Box::new(errors))?;

    let rejected = IntCounterVec::new(
        Opts::new(name("handshake_rejected_total"), "Refused WebSocket upgrades by the HTTP status answered."),
        &["status"],
    )?;
    for (status, n) in &c.wire.handshake_statuses {
        rejected.with_label_values(&[status.to_string()]).inc_by(*n);
    }
    reg.register(Box::new(rejected))?;

    let closes = IntCounterVec::new(
        Opts::new(name("close_codes_received_total"), "Connections the server ended, by the close code it sent."),
        &["code"],
    )?;
    for (code, n) in &c.wire.close_codes_received {
        closes.with_label_values(&[code.to_string()]).inc_by(*n);
    }
    reg.register(Box::new(closes))?;

    let phase_gauge = IntGaugeVec::new(
        Opts::new(
            name("run_phase"),
            "Phase of the run: 0 starting, 1 connecting, 2 sending, 3 draining, 4 closing, 5 done.",
        ),
        &["phase"],
    )?;
    phase_gauge.with_label_values(&[phase.name()]).set(i64::from(phase.number()));
    reg.register(Box::new(phase_gauge))?;

    let (label_names, label_values) = run_info_labels(run);
    let names: Vec<&str> = label_names.iter().map(String::as_str).collect();
    let info = IntGaugeVec::new(Opts::new(name("run_info"), "The run's scenario, as labels; always 1."), &names)?;
    info.with_label_values(&label_values).set(1);
    reg.register(Box::new(info))?;

    let quantiles = GaugeVec::new(
        Opts::new(
            name("delivery_latency_quantile_seconds"),
            "Exact delivery latency quantiles over the run so far (HDR histogram, 0.1% resolution).",
        ),
        &["quantile", "kind"],
    )?;
    for (kind, h) in [
        ("corrected", &merged.total.corrected),
        ("uncorrected", &merged.total.uncorrected),
        ("send_lag", &merged.total.send_lag),
    ] {
        if h.is_empty() {
            continue;
        }
        for (q, label) in QUANTILES {
            quantiles.with_label_values(&[label, kind]).set(h.value_at_quantile(q) as f64 / 1e6);
        }
    }
    reg.register(Box::new(quantiles))?;
    super::classes::register(&reg, &name, &run.room_classes, merged)?;

    let bounds: Vec<f64> = bounds_seconds.iter().copied().filter(|b| b.is_finite()).collect();
    let mut histograms = Precomputed::default();
    for (base, help, h) in [
        (
            "delivery_latency_seconds",
            "Delivery latency from the intended send time (corrected for coordinated omission).",
            &merged.total.corrected,
        ),
        (
            "delivery_latency_uncorrected_seconds",
            "Delivery latency from the actual send time.",
            &merged.total.uncorrected,
        ),
        ("connect_duration_seconds", "TCP connect plus WebSocket handshake.", &merged.total.connect),
        (
            "send_lag_seconds",
            "How late messages left against their intended send time: herd's own delay, which corrected latency includes.",
            &merged.total.send_lag,
        ),
        (
            "read_lag_seconds",
            "From the kernel's receive time of bytes to herd's read of them (not part of latency).",
            &merged.total.read_lag,
        ),
    ] {
        histograms.add(&name(base), help, h, &bounds)?;
    }
    reg.register(Box::new(histograms))?;

    let mut buf = Vec::new();
    TextEncoder::new().encode(&reg.gather(), &mut buf)?;
    String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_class_gets_its_series_and_a_grid_none() {
        let mut a = crate::measure::stats::CoreStats {
            windows: crate::measure::windows::CoreWindows::with_classes(0, 2),
            ..Default::default()
        };
        a.windows.class_sent(0, 1, false);
        a.windows.class_sent(1, 40, false);
        a.windows.classes[0].record_delivery(2_000_000, 1_000_000);
        for i in 0..40 {
            a.windows.classes[1].record_delivery(80_000_000 + i * 100_000, 70_000_000);
        }
        let mut m = crate::measure::stats::Merged::new(1);
        m.fold(&a.snapshot(0, 1, false));
        let run = crate::metrics::RunInfo { room_classes: vec!["dm".into(), "channel".into()], ..Default::default() };
        let t = crate::metrics::encode("herd", &run, crate::metrics::Phase::Sending, &m);
        let value = |series: &str| -> f64 {
            let line = t.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in\n{t}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert_eq!(value("herd_class_messages_expected_total{room_class=\"channel\"}"), 40.0);
        assert_eq!(value("herd_class_messages_delivered_total{room_class=\"dm\"}"), 1.0);
        let p99 = value(
            "herd_class_delivery_latency_quantile_seconds{kind=\"corrected\",quantile=\"0.99\",room_class=\"channel\"}",
        );
        assert!((0.08..0.085).contains(&p99), "{p99}");
        let grid =
            crate::metrics::encode("herd", &crate::metrics::RunInfo::default(), crate::metrics::Phase::Sending, &m);
        assert!(!grid.contains("room_class"), "{grid}");
    }

    use super::*;
    use crate::measure::stats::CoreStats;

    fn sample() -> Merged {
        let mut a = CoreStats::default();
        a.counters.conns_attempted = 12;
        a.counters.conns_established = 10;
        a.counters.conns_failed = 2;
        a.counters.conns_closed_by_peer = 1;
        a.counters.msgs_sent = 100;
        a.counters.msgs_expected = 300;
        a.counters.msgs_delivered = 290;
        a.counters.error(ErrorKind::ConnectRefused);
        a.counters.error(ErrorKind::ConnectRefused);
        a.counters.error(ErrorKind::HandshakeRejected);
        a.counters.wire.handshake_rejected(403, b"Forbidden");
        let code =
            a.counters.wire.close_frame(Some(crate::ws::frames::CloseSeen::Code(999)), 1002, "Protocol violation");
        a.counters.wire.close_received(code);
        a.counters.wire.close_received(4001);
        for i in 0..290u64 {
            a.record_delivery(200_000 + i * 1_000, 150_000 + i * 1_000);
        }
        for _ in 0..10 {
            a.record_connect(1_200_000);
        }
        for i in 0..100u64 {
            a.record_send_lag(i * 100_000); // 0 .. 9.9 ms
        }
        let mut m = Merged::new(2);
        let mut s = a.snapshot(0, 1, false);
        (s.counters.cpu_run_ns, s.counters.cpu_wait_ns, s.counters.cpu_threads) = (2_500_000_000, 500_000_000, 1);
        m.fold(&s);
        let mut b = CoreStats::default();
        b.counters.conns_established = 3;
        m.fold(&b.snapshot(1, 1, false));
        m
    }

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn encodes_every_metric() {
        let run = RunInfo {
            run_id: "r1".into(),
            target: "ws://127.0.0.1:9000/chat".into(),
            conversations: 10,
            members: 3,
            senders: 1,
            rate: 0.5,
            size: 64,
            threads: 2,
            extra: vec![
                ("git sha".into(), "abc\"d".into()),
                ("job".into(), "x".into()),
                ("run_id".into(), "y".into()),
                ("git_sha".into(), "dropped".into()),
            ],
            room_classes: vec![],
        };
        let t = encode("herd", &run, Phase::Sending, &sample());
        assert_eq!(value(&t, "herd_connections"), 12.0);
        assert_eq!(value(&t, "herd_core_connections{core=\"0\"}"), 9.0);
        assert_eq!(value(&t, "herd_core_connections{core=\"1\"}"), 3.0);
        assert_eq!(value(&t, "herd_connections_attempted_total"), 12.0);
        assert_eq!(value(&t, "herd_messages_pending"), 10.0);
        assert_eq!(value(&t, "herd_messages_missed_total"), 0.0);
        assert_eq!(value(&t, "herd_errors_total{category=\"connect_refused\"}"), 2.0);
        assert_eq!(value(&t, "herd_handshake_rejected_total{status=\"403\"}"), 1.0);
        assert_eq!(value(&t, "herd_close_codes_received_total{code=\"999\"}"), 1.0);
        assert_eq!(value(&t, "herd_close_codes_received_total{code=\"4001\"}"), 1.0);
        assert_eq!(value(&t, "herd_invalid_close_codes_total"), 1.0);
        for k in ErrorKind::ALL {
            assert!(t.contains(&format!("herd_errors_total{{category=\"{}\"}}", k.name())));
        }
        assert_eq!(value(&t, "herd_run_phase{phase=\"sending\"}"), 2.0);
        assert_eq!(value(&t, "herd_delivery_latency_seconds_count"), 290.0);
        assert_eq!(value(&t, "herd_delivery_latency_seconds_bucket{le=\"+Inf\"}"), 290.0);
        assert_eq!(value(&t, "herd_delivery_latency_seconds_bucket{le=\"0.0003\"}"), 101.0);
        assert_eq!(value(&t, "herd_delivery_latency_uncorrected_seconds_bucket{le=\"0.0002\"}"), 51.0);
        assert_eq!(value(&t, "herd_connect_duration_seconds_bucket{le=\"0.0015\"}"), 10.0);
        assert_eq!(value(&t, "herd_connect_duration_seconds_bucket{le=\"0.001\"}"), 0.0);
        let p50 = value(&t, "herd_delivery_latency_quantile_seconds{kind=\"corrected\",quantile=\"0.5\"}");
        assert!((p50 - 0.000344).abs() < 1e-6, "p50 {p50}");
        assert_eq!(value(&t, "herd_send_lag_seconds_count"), 100.0);
        assert_eq!(value(&t, "herd_send_lag_seconds_bucket{le=\"0.005\"}"), 51.0);
        let lag99 = value(&t, "herd_delivery_latency_quantile_seconds{kind=\"send_lag\",quantile=\"0.99\"}");
        assert!((lag99 - 0.0098).abs() < 2e-5, "send lag p99 {lag99}");
        assert_eq!(value(&t, "herd_read_lag_seconds_count"), 0.0);
        assert_eq!(value(&t, "herd_core_cpu_seconds_total{core=\"0\",state=\"busy\"}"), 2.5);
        assert_eq!(value(&t, "herd_core_cpu_seconds_total{core=\"0\",state=\"run_queue_wait\"}"), 0.5);
        let max = value(&t, "herd_delivery_latency_quantile_seconds{kind=\"uncorrected\",quantile=\"1\"}");
        assert!((max - 0.000439).abs() < 1e-6, "max {max}");
        let info = t.lines().find(|l| l.starts_with("herd_run_info{")).unwrap();
        assert!(info.ends_with("} 1"), "{info}");
        assert!(info.contains("target=\"ws://127.0.0.1:9000/chat\""), "{info}");
        assert!(info.contains("rate=\"0.5\""), "{info}");
        assert!(info.contains("git_sha=\"abc\\\"d\""), "{info}");
        assert!(info.contains("extra_job=\"x\""), "{info}");
        assert!(info.contains("extra_run_id=\"y\""), "{info}");
        assert!(!info.contains("dropped"), "{info}");
        assert!(!t.contains("# herd could not encode"));

        for p in Phase::ALL {
            assert_eq!(Phase::from_number(p.number()), p);
        }
        assert_eq!(Phase::from_number(9), Phase::Done);

        let done = encode("herd", &run, Phase::Done, &sample());
        assert_eq!(value(&done, "herd_messages_missed_total"), 10.0);
        assert_eq!(value(&done, "herd_run_phase{phase=\"done\"}"), 5.0);
    }

    #[test]
    fn prefix_and_empty_histograms() {
        let m = Merged::new(1);
        let t = encode("load_test_", &RunInfo::default(), Phase::Starting, &m);
        assert!(t.contains("\nload_test_connections 0\n"), "{t}");
        assert!(!t.contains("quantile_seconds{"), "no quantiles without deliveries");
        assert_eq!(value(&t, "load_test_delivery_latency_seconds_count"), 0.0);
        assert!(!t.lines().any(|l| l.starts_with("herd_")));
        let bare = encode("", &RunInfo::default(), Phase::Starting, &m);
        assert!(bare.contains("\nconnections 0\n"), "{bare}");
        let odd = encode("9 bad-prefix", &RunInfo::default(), Phase::Starting, &m);
        assert!(odd.contains("\n_9_bad_prefix_connections 0\n"), "{odd}");
    }
}
