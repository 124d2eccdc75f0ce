//! herd run when the target fails: killed mid-run (SIGKILL), killed and restarted (with
//! --reconnect), a listener that never answers the handshake, a server that stops reading.
//! Every run must finish on its own, count each loss, and write its results.

mod common;
use common::hostile::Hostile;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether process `pid` ignores or catches SIGPIPE (signal 13: bit 12 of `SigIgn`/`SigCgt`).
fn sigpipe_not_default(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().filter(|l| l.starts_with("SigIgn:") || l.starts_with("SigCgt:")).any(|l| {
        u64::from_str_radix(l.split_whitespace().nth(1).unwrap_or("0"), 16).is_ok_and(|mask| mask & (1 << 12) != 0)
    })
}

/// Sockets process `pid` holds open.
fn socket_fds(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.to_string_lossy().starts_with("socket:"))
        .count()
}

/// The sum of the categories a lost established connection can end in.
fn losses(v: &serde_json::Value) -> u64 {
    ["closed_by_peer", "reset", "io", "protocol"].iter().map(|k| u(v, &format!("errors.{k}"))).sum()
}

#[test]
fn a_server_killed_mid_run_is_counted_and_the_run_finishes() {
    let mut srv = ServeProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    let mut run = RunProc::start(
        dir.path(),
        &["--url", &url, "-c", "20", "-k", "3", "--rate", "10", "-d", "4s", "--drain", "1s"],
    );
    assert!(run.wait_sent(Duration::from_secs(30)), "never started sending: {:?}", run.seen);
    srv.child.kill().unwrap();
    let (status, stdout, took, v) = run.finish(Duration::from_secs(60));
    assert!(status.success(), "{stdout}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let v = v.expect("results written");
    assert_eq!(v["outcome"], "completed");
    assert_eq!(u(&v, "connections.established"), 60);
    assert_eq!(u(&v, "connections.closed_by_peer"), 60, "every connection's loss is counted");
    assert_eq!(losses(&v), 60, "each loss in exactly one category: {}", v["errors"]);
    let (sent, expected, delivered) = (u(&v, "messages.sent"), u(&v, "messages.expected"), u(&v, "messages.delivered"));
    assert!(sent > 0 && sent < 20 * 10 * 4, "{}", v["messages"]);
    // Every message the schedule made due (20 senders x 10/s x 4 s) was either sent or unsent.
    assert_eq!(sent + u(&v, "messages.unsent"), 20 * 10 * 4, "{}", v["messages"]);
    assert!(delivered <= expected);
    // Each message sent was owed to its 2 receivers, but for the last ones in flight as the
    // connections died (at most one per sender at 10/s), and only those can be missed.
    assert!(expected <= 2 * sent && expected + 2 * 20 >= 2 * sent, "{}", v["messages"]);
    assert!(expected - delivered <= 2 * 20, "{}", v["messages"]);
    // Roughly three seconds of 20 senders at 10/s could not be sent at all.
    assert!(u(&v, "messages.unsent") > 100, "{}", v["messages"]);
    assert!(stdout.contains("unsent"), "{stdout}");
}

#[test]
fn with_reconnect_a_restarted_server_gets_every_connection_back() {
    let srv = ServeProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    let addr = srv.addr.clone();
    let mut run = RunProc::start(
        dir.path(),
        &["--url", &url, "-c", "10", "-k", "3", "--rate", "10", "-d", "10s", "--drain", "2s", "--reconnect"],
    );
    assert!(run.wait_sent(Duration::from_secs(30)), "never started sending: {:?}", run.seen);
    let mut srv = srv;
    srv.child.kill().unwrap();
    let _ = srv.child.wait();
    // herd has seen every connection go (reconnect attempts are refused meanwhile).
    assert!(run.wait_line("conns 0 open", Duration::from_secs(30)).is_some(), "{:?}", run.seen);
    // The same port again (the listener sets SO_REUSEADDR).
    let again = ServeProc::start_on(&addr, &[]);
    let (status, _, _, v) = run.finish(Duration::from_secs(60));
    assert!(status.success());
    let v = v.expect("results written");
    assert_eq!(u(&v, "connections.reconnected"), 30, "{}", v["connections"]);
    assert_eq!(u(&v, "connections.established"), 60);
    assert_eq!(u(&v, "connections.closed_by_peer"), 30);
    assert!(u(&v, "errors.connect_refused") > 0, "attempts while the server was down fail");
    let (expected, delivered) = (u(&v, "messages.expected"), u(&v, "messages.delivered"));
    assert!(delivered <= expected);
    // The restarted server relayed what was sent after the reconnect.
    let m = again.metrics();
    assert!(m["herd_server_messages_delivered_total"] > 0.0);
    // Messages due during the outage went out late: corrected latency shows the outage.
    assert!(f(&v, "latency.corrected.max_ms") > 500.0, "{}", v["latency"]);
    assert_eq!(u(&v, "messages.unsent"), 0, "the senders caught up once back");
    // So every message due was sent: 10 senders x 10/s x 10 s.
    assert_eq!(u(&v, "messages.sent"), 10 * 10 * 10, "{}", v["messages"]);
    // The restarted server got part of what was sent, never more.
    let received = m["herd_server_messages_received_total"] as u64;
    assert!(received > 0 && received <= 1000, "{received}");
}

#[test]
fn a_listener_that_never_answers_times_out_and_the_stall_is_shown() {
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("silent");
    let mut run =
        RunProc::start(dir.path(), &["--url", &url, "-c", "3", "-k", "2", "--connect-timeout", "3s", "-d", "1s"]);
    let line = run.wait_line("connecting 6", Duration::from_secs(20));
    assert!(line.is_some(), "no progress line showed the stalled connects: {:?}", run.seen);
    let (status, _, took, v) = run.finish(Duration::from_secs(60));
    assert_eq!(status.code(), Some(69), "nothing could be established");
    assert!(took < Duration::from_secs(30));
    let v = v.expect("results written");
    assert_eq!(u(&v, "errors.connect_timeout"), 6);
    assert_eq!(u(&v, "connections.failed"), 6);
}

#[test]
fn a_server_that_stops_reading_leaves_herd_bounded_and_counting() {
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("deaf");
    // 2 senders x 500/s x 64 KiB = 64 MiB/s for 4 s: far more than socket buffers hold.
    let mut run = RunProc::start(
        dir.path(),
        &[
            "--url",
            &url,
            "-c",
            "1",
            "-k",
            "3",
            "--senders",
            "2",
            "--rate",
            "500",
            "--size",
            "64k",
            "-d",
            "4s",
            "--drain",
            "1s",
        ],
    );
    let line = run.wait_line("unsent", Duration::from_secs(20));
    assert!(line.is_some(), "no progress line showed the unsent backlog: {:?}", run.seen);
    let (status, _, took, v) = run.finish(Duration::from_secs(120));
    assert!(status.success());
    assert!(took < Duration::from_secs(40), "took {took:?}");
    let v = v.expect("results written");
    let (sent, unsent) = (u(&v, "messages.sent"), u(&v, "messages.unsent"));
    eprintln!("messages {} phases {} process {}", v["messages"], v["phases"], v["process"]);
    assert!(unsent > 1000, "{}", v["messages"]);
    assert!(sent < 2000, "{}", v["messages"]);
    // Nothing is queued in herd beyond one frame per connection.
    let peak = u(&v, "process.rss_peak_bytes");
    assert!(peak < 200 << 20, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn sigpipe_does_not_stop_a_run_nor_do_closed_output_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    // stdout and stderr are pipes whose reading ends are closed at once.
    let mut child = Command::new(herd_bin())
        .args(["run", "-c", "5", "-k", "2", "--rate", "5", "-d", "2s", "-o", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    // The signal goes in while the run is under way: herd no longer has SIGPIPE's default
    // disposition and all 10 connections are open (10 client ends and the embedded server's 10).
    let pid = child.id();
    wait_for("herd run to set up SIGPIPE handling and open its 10 connections", Duration::from_secs(30), || {
        assert!(child.try_wait().unwrap().is_none(), "herd run ended before its connections were open");
        sigpipe_not_default(pid) && socket_fds(pid) >= 20
    });
    signal(&child, libc::SIGPIPE);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "herd run did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(u(&v, "messages.delivered"), u(&v, "messages.sent"));
}
