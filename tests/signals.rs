//! Signals to herd run: SIGINT, and SIGTERM like it, stop sending and drain; a second SIGINT
//! stops at once. Results are written in every case.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// A 60 s run stopped by `sig` once messages are going out: it drains, delivers everything in
/// flight, and reports the run as interrupted.
fn stops_sending_drains_and_reports(sig: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let mut run = RunProc::start(dir.path(), &["-c", "20", "-k", "3", "--rate", "5", "-d", "60s"]);
    // A progress line shows messages going out: the send phase is under way, not only announced.
    assert!(run.wait_sent(Duration::from_secs(30)), "never started sending: {:?}", run.seen);
    signal(&run.child, sig);
    let (status, stdout, took, v) = run.finish(Duration::from_secs(30));
    assert!(status.success());
    assert!(took < Duration::from_secs(20), "took {took:?} to stop");
    assert!(stdout.contains("(interrupted)"), "{stdout}");
    let v = v.expect("results written");
    assert_eq!(v["outcome"], "interrupted");
    let sent = u(&v, "messages.sent");
    assert!(sent > 0 && sent < 20 * 5 * 60);
    assert_eq!(u(&v, "messages.delivered"), sent * 2, "the drain delivered everything in flight");
}

#[test]
fn sigint_stops_sending_drains_and_still_reports() {
    stops_sending_drains_and_reports(libc::SIGINT);
}

#[test]
fn sigterm_stops_sending_drains_and_reports_like_sigint() {
    stops_sending_drains_and_reports(libc::SIGTERM);
}

#[test]
fn a_second_sigint_stops_at_once_and_still_writes_results() {
    // Deliveries held 30 s by the server: the drain would wait its full 60 s.
    let srv = ServeProc::start(&["--delay", "30s"]);
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    let mut run = RunProc::start(
        dir.path(),
        &["--url", &url, "-c", "10", "-k", "3", "--rate", "5", "-d", "60s", "--drain", "60s"],
    );
    assert!(run.wait_sent(Duration::from_secs(30)), "never started sending: {:?}", run.seen);
    signal(&run.child, libc::SIGINT);
    // The first SIGINT has been counted and the drain has begun: the second one ends it.
    assert!(run.wait_line("interrupted", Duration::from_secs(10)).is_some(), "{:?}", run.seen);
    let t = Instant::now();
    signal(&run.child, libc::SIGINT);
    let (status, stdout, _, v) = run.finish(Duration::from_secs(30));
    assert!(t.elapsed() < Duration::from_secs(15), "took {:?} after the second SIGINT", t.elapsed());
    assert!(status.success());
    assert!(stdout.contains("(aborted)"), "{stdout}");
    let v = v.expect("results written");
    assert_eq!(v["outcome"], "aborted");
    let (sent, expected) = (u(&v, "messages.sent"), u(&v, "messages.expected"));
    assert!(sent > 0);
    assert_eq!(expected, sent * 2);
    assert_eq!(u(&v, "messages.missed"), expected, "nothing arrived: the server held every delivery");
}
