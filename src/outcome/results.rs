//! A run's results: the JSON document written with `--out` and the summary table on stdout.
//! Both are built from the merged statistics by pure functions.

use crate::config::scenario::Scenario;
pub use crate::measure::latency::{latency, Latency, LatencyPair};
use crate::measure::stats::{ConnectPhase, Counters, ErrorKind, Merged};
use crate::server::metrics::ServerTotals;
use crate::ws::wire::WireCounters;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct StalledCore {
    pub core: usize,
    pub last_seen_s: f64,
}

#[derive(Serialize, Debug, Clone)]
pub struct RunResult {
    pub herd_version: &'static str,
    pub run_id: String,
    /// Unix time the run started, in seconds.
    pub started_at_unix_s: f64,
    pub scenario: Scenario,
    pub target: String,
    pub embedded_server: bool,
    /// `completed`, `interrupted` (Ctrl-C/SIGTERM: stopped sending early, drained), `aborted`
    /// (second Ctrl-C: no drain) or `stalled` (a core stopped beating: the run was ended).
    pub outcome: String,
    /// Cores whose executor stopped running (no heartbeat for 5 s), with when they were last
    /// seen, in seconds from the start of the run.
    pub stalled_cores: Vec<StalledCore>,
    pub connections: Connections,
    pub messages: Messages,
    pub latency: LatencyPair,
    pub connect: ConnectTimes,
    /// `connect` broken down: `tcp_connect`, `tls_handshake` (wss:// only), `ws_upgrade`.
    pub connect_phases: BTreeMap<String, ConnectTimes>,
    /// wss:// only.
    pub tls: Option<TlsSummary>,
    pub errors: BTreeMap<String, u64>,
    /// Pings, pongs, unmarked frames and close codes (see [`WireCounters`]).
    pub websocket: WireCounters,
    /// Wall time from start to the end of closing.
    pub duration_s: f64,
    pub phases: Phases,
    pub process: ProcessCost,
    /// The embedded reference server's own counters (absent with --url).
    pub server: Option<ServerTotals>,
    /// What happened to the Pushgateway pushes (absent without --pushgateway).
    pub push: Option<crate::metrics::PushReport>,
    /// herd's own delays: send lag, read lag and its threads' CPU while sending.
    pub generator: crate::outcome::generator::Generator,
    /// Anything a reader of these figures should know (limits reached, outputs that failed).
    pub notes: Vec<String>,
    /// When sending started against `--start-at` (absent without it).
    pub start: Option<crate::outcome::start::StartReport>,
    /// The latency and connect histograms, serialized, for `herd merge`.
    pub histograms: crate::outcome::histcodec::EncodedHistos,
    /// Verdict, thresholds and the run over time (see [`crate::outcome::thresholds::Judged`]).
    #[serde(flatten)]
    pub judged: crate::outcome::thresholds::Judged,
    /// Stages, outages, churn (absent for a plain run without outages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<crate::shape::results::ShapeResults>,
    /// A population's figures and its results per room class (absent for a grid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub population: Option<crate::population::results::PopulationResults>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct Connections {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    /// How many of `established` were reconnects after a loss (`--reconnect`).
    pub reconnected: u64,
    pub closed_by_peer: u64,
    pub closed: u64,
    pub open_at_end: u64,
    pub peak_open: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct Messages {
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub missed: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub unexpected: u64,
    pub echoed: u64,
    /// Due by the schedule but never written: the sender's connection was down or the target
    /// stopped reading. Not owed to anyone, so not part of `missed`.
    pub unsent: u64,
    /// With `--reconnect`: deliveries members missed while their connection was down and being
    /// opened again (each sent message times the members away at that moment). Not owed, so
    /// not part of `expected` or `missed`.
    pub missed_while_away: u64,
    /// Holes the loss trackers gave up (more than 64 per stream): later receipts of those
    /// messages count as late deliveries (reordered), at most this many.
    pub holes_evicted: u64,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct ConnectTimes {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct TlsSummary {
    /// `--insecure`: server certificates were NOT verified.
    pub insecure: bool,
    /// Session resumption offered on reconnects (off with `--no-tls-resume`).
    pub resumption: bool,
    pub handshakes: u64,
    /// Handshakes that resumed an earlier session.
    pub resumed: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct Phases {
    pub connect_s: f64,
    pub send_s: f64,
    pub drain_s: f64,
    pub close_s: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
#[serde(default)]
pub struct ProcessCost {
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    /// CPU (user + system) spent from the start of sending to the end of the drain.
    pub cpu_send_drain_s: f64,
    pub rss_start_bytes: u64,
    pub rss_connected_bytes: u64,
    /// RSS at the end of the drain (after returning freed heap to the kernel): what connections
    /// hold once messages have gone through them (a kept compression history, a connection's
    /// buffers), before the closes.
    pub rss_drained_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_peak_bytes: u64,
    /// (RSS once connected - RSS at start) / connections established. Only with --url: with the
    /// embedded server the process holds both ends.
    pub rss_per_connection_bytes: Option<f64>,
    /// cpu_send_drain_s / delivered, in microseconds. Only with --url, as above.
    pub cpu_per_delivery_us: Option<f64>,
}

pub fn connect_times(h: &Histogram<u64>) -> ConnectTimes {
    let l = latency(h);
    ConnectTimes { count: l.count, p50_ms: l.p50_ms, p99_ms: l.p99_ms, max_ms: l.max_ms, mean_ms: l.mean_ms }
}

pub fn connections(c: &Counters, peak_open: u64) -> Connections {
    Connections {
        attempted: c.conns_attempted,
        established: c.conns_established,
        failed: c.conns_failed,
        reconnected: c.conns_reconnected,
        closed_by_peer: c.conns_closed_by_peer,
        closed: c.conns_closed,
        open_at_end: c.open(),
        peak_open,
    }
}

/// Message counts; at the end of a run every owed delivery that did not arrive is missed.
pub fn messages(c: &Counters) -> Messages {
    Messages {
        sent: c.msgs_sent,
        expected: c.msgs_expected,
        delivered: c.msgs_delivered,
        missed: c.pending(),
        duplicated: c.msgs_duplicated,
        reordered: c.msgs_reordered,
        unexpected: c.msgs_unexpected,
        echoed: c.msgs_echoed,
        unsent: c.msgs_unsent,
        missed_while_away: c.msgs_missed_away,
        holes_evicted: c.msgs_holes_evicted,
    }
}

/// Every category, zeros included, so the schema is stable.
pub fn errors(c: &Counters) -> BTreeMap<String, u64> {
    ErrorKind::ALL.iter().map(|k| (k.name().to_string(), c.errors_of(*k))).collect()
}

/// Fills the statistics parts of a result from the merged view.
pub fn fill_stats(r: &mut RunResult, m: &Merged, peak_open: u64) {
    r.connections = connections(&m.counters, peak_open);
    r.messages = messages(&m.counters);
    r.latency = LatencyPair { corrected: latency(&m.total.corrected), uncorrected: latency(&m.total.uncorrected) };
    r.connect = connect_times(&m.total.connect);
    r.connect_phases =
        ConnectPhase::ALL.iter().map(|p| (p.name().to_string(), connect_times(&m.total.phases[*p as usize]))).collect();
    if let Some(t) = r.tls.as_mut() {
        t.handshakes = m.counters.tls_handshakes;
        t.resumed = m.counters.tls_resumed;
    }
    r.errors = errors(&m.counters);
    r.websocket = m.counters.wire.clone();
    r.websocket.deflate.offered = r.scenario.deflate.offer().map(str::to_string);
    r.histograms = crate::outcome::histcodec::encode(&m.total);
    r.generator = crate::outcome::generator::build(&m.total, r.generator.cpu.take());
}

/// The summary table printed on stdout at the end of a run.
pub fn summary(r: &RunResult) -> String {
    let mut s = String::new();
    let c = &r.connections;
    let m = &r.messages;
    let _ = write!(s, "herd run {} — {} ({})", r.run_id, r.target, r.outcome);
    match r.judged.verdict.as_str() {
        "failed" => s.push_str(" — FAILED: threshold crossed"),
        "attention" => s.push_str(" — attention: see the notes"),
        _ => {}
    }
    s.push('\n');
    if r.tls.as_ref().is_some_and(|t| t.insecure) {
        let _ = writeln!(s, "WARNING      --insecure: server certificates were NOT verified");
    }
    match &r.population {
        Some(p) => s.push_str(&crate::population::results::summary_lines(p)),
        None => {
            let _ = writeln!(
                s,
                "scenario     {} conversations x {} members, {} sender(s) at {}/s, {} B, {:.1}s sending",
                r.scenario.conversations,
                r.scenario.members,
                r.scenario.senders,
                r.scenario.rate,
                r.scenario.size,
                r.phases.send_s
            );
        }
    }
    if let (Some(sh), Some(_)) = (r.scenario.shard, &r.population) {
        let _ = writeln!(s, "shard        {sh}: the communities c with c % {} == {}", sh.count, sh.index);
    } else if let Some(sh) = r.scenario.shard {
        let all = r.scenario.conversations;
        let _ = writeln!(s, "shard        {sh}: {} of the {all} conversations", sh.len_of(all));
    }
    let _ = writeln!(
        s,
        "connections  attempted {}  established {}  failed {}  closed by peer {}  peak open {}",
        c.attempted, c.established, c.failed, c.closed_by_peer, c.peak_open
    );
    let _ = writeln!(
        s,
        "messages     sent {}  expected {}  delivered {}  missed {}  duplicated {}  reordered {}",
        m.sent, m.expected, m.delivered, m.missed, m.duplicated, m.reordered
    );
    if c.reconnected + m.missed_while_away > 0 {
        let _ = writeln!(s, "             reconnected {}  missed while away {}", c.reconnected, m.missed_while_away);
    }
    if m.unexpected + m.echoed + m.unsent > 0 {
        let _ =
            writeln!(s, "             unexpected {}  echoed to sender {}  unsent {}", m.unexpected, m.echoed, m.unsent);
    }
    if let Some(sh) = &r.shape {
        s.push_str(&crate::shape::results::summary_lines(sh));
    }
    let _ = writeln!(s, "latency (ms)         p50      p90      p99    p99.9      max     mean");
    for (name, l) in [("corrected", &r.latency.corrected), ("uncorrected", &r.latency.uncorrected)] {
        let _ = writeln!(
            s,
            "  {:<13} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            name, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms
        );
    }
    // The lags are rows of the latency table, and connect times too; herd's CPU follows them.
    s.push_str(&crate::outcome::generator::lag_lines(&r.generator));
    let k = &r.connect;
    let _ = writeln!(
        s,
        "  {:<13} {:>8.3}          {:>8.3}          {:>8.3} {:>8.3}",
        "connect", k.p50_ms, k.p99_ms, k.max_ms, k.mean_ms
    );
    for (name, k) in r.connect_phases.iter().filter(|(_, k)| k.count > 0) {
        let _ = writeln!(
            s,
            "   {:<12} {:>8.3}          {:>8.3}          {:>8.3} {:>8.3}",
            name, k.p50_ms, k.p99_ms, k.max_ms, k.mean_ms
        );
    }
    s.push_str(&crate::outcome::generator::cpu_line(&r.generator));
    if let Some(t) = &r.tls {
        let _ = writeln!(
            s,
            "tls          handshakes {}  resumed {}  resumption {}{}",
            t.handshakes,
            t.resumed,
            if t.resumption { "on" } else { "off" },
            if t.insecure { "  certificates NOT verified (--insecure)" } else { "" }
        );
    }
    let errs: Vec<String> = r
        .errors
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, n)| match k.as_str() {
            "handshake_rejected" if !r.websocket.handshake_statuses.is_empty() => {
                let by: Vec<String> = r.websocket.handshake_statuses.iter().map(|(s, n)| format!("{s} x{n}")).collect();
                format!("{k} {n} (HTTP {})", by.join(" "))
            }
            _ => format!("{k} {n}"),
        })
        .collect();
    let _ = writeln!(s, "errors       {}", if errs.is_empty() { "none".to_string() } else { errs.join(", ") });
    // (Compression has its own line.)
    let ws_line = websocket_line(&r.websocket);
    if !ws_line.is_empty() {
        let _ = writeln!(s, "websocket    {ws_line}");
    }
    if r.scenario.deflate != crate::ws::deflate::Mode::Off {
        let _ = writeln!(s, "deflate      {}", r.websocket.deflate.line(r.scenario.deflate));
    }
    let p = &r.process;
    let _ = write!(
        s,
        "process      cpu {:.2}s user {:.2}s sys, peak rss {:.1} MiB",
        p.cpu_user_s,
        p.cpu_sys_s,
        p.rss_peak_bytes as f64 / 1048576.0
    );
    if let Some(b) = p.rss_per_connection_bytes {
        let _ = write!(s, ", {b:.0} B/connection");
    }
    if let Some(us) = p.cpu_per_delivery_us {
        let _ = write!(s, ", {us:.2} µs CPU/delivery");
    }
    let _ = writeln!(s);
    if let Some(sv) = &r.server {
        let _ = writeln!(
            s,
            "server       received {}  delivered {}  dropped (fault) {}  duplicated (fault) {}  slow consumers {}",
            sv.messages_received,
            sv.messages_delivered,
            sv.messages_dropped_fault,
            sv.messages_duplicated_fault,
            sv.slow_consumers_closed
        );
    }
    s.push_str(&crate::outcome::thresholds::summary_lines(&r.judged.thresholds));
    for n in &r.notes {
        let _ = writeln!(s, "note         {n}");
    }
    s
}

/// The non-zero WebSocket-level counts, e.g. `pings received 12, closed by server 4001 x3`.
fn websocket_line(w: &WireCounters) -> String {
    let mut parts = vec![];
    for (name, n) in [
        ("pings received", w.pings_received),
        ("pings sent", w.pings_sent),
        ("pongs received", w.pongs_received),
        ("pongs missed", w.pongs_missed),
        ("pongs sent", w.pongs_sent),
        ("unmarked frames", w.unmarked_frames),
        ("invalid close codes", w.invalid_close_codes),
    ] {
        if n > 0 {
            parts.push(format!("{name} {n}"));
        }
    }
    for (name, codes) in [("closed by server", &w.close_codes_received), ("failed by herd", &w.close_codes_sent)] {
        if !codes.is_empty() {
            let list: Vec<String> = codes.iter().map(|(c, n)| format!("{c} x{n}")).collect();
            parts.push(format!("{name} {}", list.join(" ")));
        }
    }
    if !w.close_reasons_received.is_empty() {
        let list: Vec<String> = w.close_reasons_received.iter().map(|(r, n)| format!("\"{r}\" x{n}")).collect();
        parts.push(format!("close reasons {}", list.join(" ")));
    }
    parts.join(", ")
}

/// The figures known while a run goes on, as a results-shaped document for live threshold
/// judging (`missed` and the per-run cost figures are absent: they are known only at the end).
pub fn live_doc(m: &Merged) -> serde_json::Value {
    let mut messages = serde_json::to_value(messages(&m.counters)).unwrap_or_default();
    if let Some(o) = messages.as_object_mut() {
        o.remove("missed");
    }
    serde_json::json!({
        "connections": connections(&m.counters, m.counters.open()),
        "messages": messages,
        "latency": {
            "corrected": latency(&m.total.corrected),
            "uncorrected": latency(&m.total.uncorrected),
        },
        "connect": connect_times(&m.total.connect),
        "generator": {"send_lag": latency(&m.total.send_lag), "read_lag": latency(&m.total.read_lag)},
        "errors": errors(&m.counters),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::stats::new_histogram;
    use crate::measure::stats::{test_snapshot as snap, Merged};

    #[test]
    fn latency_figures_are_in_milliseconds() {
        let mut h = new_histogram();
        for us in 1..=1000 {
            h.record(us * 20).unwrap(); // 20 µs .. 20 ms
        }
        let l = latency(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50_ms - 10.0).abs() < 0.02, "{l:?}");
        assert!((l.max_ms - 20.0).abs() < 0.02, "{l:?}");
        assert!((l.mean_ms - 10.01).abs() < 0.02, "{l:?}");
        assert_eq!(latency(&new_histogram()).count, 0);
    }

    #[test]
    fn missed_is_expected_minus_delivered() {
        let c = Counters { msgs_expected: 30, msgs_delivered: 27, ..Default::default() };
        assert_eq!(messages(&c).missed, 3);
        let e = errors(&c);
        assert_eq!(e.len(), ErrorKind::COUNT);
        assert!(e.values().all(|&v| v == 0));
    }

    #[test]
    fn websocket_line_lists_what_happened() {
        let mut w = WireCounters { pings_received: 12, pongs_missed: 1, ..Default::default() };
        w.close_received(4001);
        w.close_received(4001);
        w.close_sent(1009);
        assert_eq!(
            websocket_line(&w),
            "pings received 12, pongs missed 1, closed by server 4001 x2, failed by herd 1009 x1"
        );
        let mut bad = w.clone();
        let code = bad.close_frame(Some(crate::ws::frames::CloseSeen::Code(999)), 1002, "Protocol violation");
        bad.close_received(code);
        assert_eq!(
            websocket_line(&bad),
            "pings received 12, pongs missed 1, invalid close codes 1, closed by server 999 x1 4001 x2, \
             failed by herd 1009 x1"
        );
        w.pongs_sent = 12;
        w.close_reason(4001, "room full");
        w.close_reason(4001, "room full");
        assert_eq!(
            websocket_line(&w),
            "pings received 12, pongs missed 1, pongs sent 12, closed by server 4001 x2, failed by herd 1009 x1, \
             close reasons \"4001 room full\" x2"
        );
    }

    #[test]
    fn live_doc_omits_missed() {
        let mut m = Merged::new(1);
        m.fold(&snap(0, 3, &[1000]));
        let d = live_doc(&m);
        assert!(d.pointer("/messages/missed").is_none());
        assert_eq!(d.pointer("/messages/delivered").and_then(|v| v.as_u64()), Some(3));
        assert_eq!(d.pointer("/latency/corrected/count").and_then(|v| v.as_u64()), Some(1));
    }
}
