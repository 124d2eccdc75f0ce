//! Exact accounting against the reference server, run as separate processes on loopback: healthy
//! runs, injected drops and duplicates (checked against the server's own /metrics), and injected
//! delay measured as latency.

mod common;
use common::*;

#[test]
fn healthy_run_delivers_every_message_exactly_once() {
    let srv = ServeProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (o, v) = run_herd(
        dir.path(),
        &["--url", &srv.url(), "-c", "50", "-k", "4", "--senders", "2", "--rate", "5", "-d", "2s"],
    );
    assert_eq!(u(&v, "connections.established"), 200);
    assert_eq!(u(&v, "connections.failed"), 0);
    let sent = u(&v, "messages.sent");
    // 50 conversations x 2 senders x 5/s x 2 s.
    assert_eq!(sent, 1000);
    assert_eq!(u(&v, "messages.expected"), sent * 3);
    assert_eq!(u(&v, "messages.delivered"), sent * 3);
    assert_eq!(u(&v, "messages.missed"), 0);
    assert_eq!(u(&v, "messages.duplicated"), 0);
    assert_eq!(u(&v, "latency.corrected.count"), sent * 3);
    let m = srv.metrics();
    assert_eq!(m["herd_server_messages_received_total"], sent as f64);
    assert_eq!(m["herd_server_messages_delivered_total"], (sent * 3) as f64);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("missed 0"), "{summary}");
}

#[test]
fn injected_drops_are_counted_as_missed_exactly() {
    let srv = ServeProc::start(&["--drop-every", "7"]);
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(dir.path(), &["--url", &srv.url(), "-c", "40", "-k", "5", "--rate", "10", "-d", "2s"]);
    let dropped = srv.metrics()["herd_server_messages_dropped_total{reason=\"fault\"}"] as u64;
    let expected = u(&v, "messages.expected");
    assert_eq!(expected, u(&v, "messages.sent") * 4);
    // Each server core drops every 7th of its own deliveries.
    assert!(dropped > 0 && dropped <= expected / 7 && dropped + 2 >= expected / 7, "dropped {dropped} of {expected}");
    assert_eq!(u(&v, "messages.missed"), dropped);
    assert_eq!(u(&v, "messages.delivered"), expected - dropped);
    assert_eq!(u(&v, "messages.duplicated"), 0);
}

#[test]
fn injected_duplicates_are_counted_exactly() {
    let srv = ServeProc::start(&["--duplicate-every", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(dir.path(), &["--url", &srv.url(), "-c", "40", "-k", "3", "--rate", "10", "-d", "2s"]);
    let dups = srv.metrics()["herd_server_messages_duplicated_total"] as u64;
    assert!(dups > 0);
    assert_eq!(u(&v, "messages.duplicated"), dups);
    assert_eq!(u(&v, "messages.missed"), 0);
    assert_eq!(u(&v, "messages.delivered"), u(&v, "messages.expected"));
}

#[test]
fn injected_delay_shows_up_as_latency() {
    let srv = ServeProc::start(&["--delay", "20ms"]);
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(dir.path(), &["--url", &srv.url(), "-c", "20", "-k", "3", "--rate", "10", "-d", "3s"]);
    let p50 = f(&v, "latency.corrected.p50_ms");
    assert!((20.0..25.0).contains(&p50), "p50 {p50} ms for a 20 ms delay");
    let min_like = f(&v, "latency.uncorrected.p50_ms");
    assert!(min_like >= 20.0, "uncorrected p50 {min_like} below the injected delay");
    assert_eq!(u(&v, "messages.missed"), 0);
}

#[test]
fn messages_sent_early_in_a_wide_send_window_are_timed_from_their_send() {
    // At 5/s per sender (200 ms apart) an 80 ms window sends many messages up to 80 ms before
    // their intended time. Timed from the intended time they would show less than the server's
    // 20 ms delay; every latency must still include it, and the accounting stays exact.
    let srv = ServeProc::start(&["--delay", "20ms"]);
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(
        dir.path(),
        &["--url", &srv.url(), "-c", "20", "-k", "3", "--rate", "5", "-d", "3s", "--send-window", "80ms"],
    );
    assert_eq!(f(&v, "scenario.send_window"), 0.08);
    let sent = u(&v, "messages.sent");
    assert_eq!(sent, 20 * 5 * 3);
    assert_eq!(u(&v, "messages.delivered"), sent * 2);
    assert_eq!(u(&v, "messages.missed"), 0);
    let (p50, raw) = (f(&v, "latency.corrected.p50_ms"), f(&v, "latency.uncorrected.p50_ms"));
    assert!((20.0..25.0).contains(&p50), "corrected p50 {p50} ms for a 20 ms delay");
    assert!((20.0..25.0).contains(&raw), "uncorrected p50 {raw} ms for a 20 ms delay");
}

#[test]
fn embedded_server_run_accounts_exactly_and_reports_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(dir.path(), &["-c", "30", "-k", "4", "--rate", "4", "-d", "2s"]);
    assert_eq!(v["embedded_server"], true);
    let sent = u(&v, "messages.sent");
    assert_eq!(sent, 30 * 4 * 2);
    assert_eq!(u(&v, "messages.delivered"), sent * 3);
    assert_eq!(u(&v, "server.messages_received"), sent);
    assert_eq!(u(&v, "server.messages_delivered"), sent * 3);
    assert_eq!(u(&v, "connections.closed"), 120);
}

#[test]
fn idle_run_holds_connections_without_sending() {
    let srv = ServeProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(dir.path(), &["--url", &srv.url(), "-c", "100", "-k", "5", "--rate", "0", "-d", "1s"]);
    assert_eq!(u(&v, "connections.peak_open"), 500);
    assert_eq!(u(&v, "messages.sent"), 0);
    assert!(v["process"]["rss_per_connection_bytes"].as_f64().is_some());
}
