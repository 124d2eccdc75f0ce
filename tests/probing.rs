//! Defects found by probing herd as a hostile peer or user would: a close frame without the end
//! of TCP, a second Ctrl-C during the closing handshakes, SIGHUP, a connect phase cut short.
//! Each test fails on the behaviour that was found and passes on the fix.

mod common;
use common::hostile::Hostile;
use common::*;
use std::time::Duration;

#[test]
fn a_close_frame_counts_at_once_though_the_peer_holds_tcp_open() {
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("linger");
    let (_, v) =
        run_herd(dir.path(), &["--url", &url, "-c", "2", "-k", "2", "--rate", "10", "-d", "1s", "--drain", "1s"]);
    // Both receivers were closed by the server with 4321, their sockets never ended: each is a
    // close by the peer with that code, not a connection open until herd's own close.
    assert_eq!(u(&v, "connections.established"), 4, "{v}");
    assert_eq!(u(&v, "connections.closed_by_peer"), 2, "{v}");
    assert_eq!(u(&v, "errors.closed_by_peer"), 2, "{v}");
    assert_eq!(u(&v, "connections.closed"), 2, "herd closed the two senders: {v}");
    assert_eq!(v["websocket"]["close_codes_received"], serde_json::json!({"4321": 2}), "{v}");
}

#[test]
fn with_reconnect_a_close_frame_without_the_end_of_tcp_is_reconnected() {
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("linger");
    let (_, v) = run_herd(
        dir.path(),
        &["--url", &url, "-c", "2", "-k", "2", "--rate", "10", "-d", "2s", "--drain", "1s", "--reconnect"],
    );
    let reconnected = u(&v, "connections.reconnected");
    assert!(reconnected >= 2, "each receiver came back at least once: {v}");
    assert_eq!(u(&v, "connections.established"), 4 + reconnected, "{v}");
    // Every receiver's connection, first or again, ended by the server's close (the last ones
    // may be cut short by the end of the run).
    let by_peer = u(&v, "connections.closed_by_peer");
    assert!(by_peer >= reconnected, "{v}");
    assert_eq!(u(&v, "errors.closed_by_peer"), by_peer, "{v}");
    assert_eq!(u(&v, "websocket.close_codes_received.4321"), by_peer, "{v}");
}

#[test]
fn a_second_sigint_during_the_closing_handshakes_stops_at_once() {
    // A server that never reads: herd's closing handshakes would each wait their full 2 s.
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("deaf");
    let mut run = RunProc::start(dir.path(), &["--url", &url, "-c", "3", "-k", "2", "--rate", "0", "-d", "60s"]);
    assert!(run.wait_line("holding", Duration::from_secs(20)).is_some(), "{:?}", run.seen);
    signal(&run.child, libc::SIGINT);
    assert!(run.wait_line("closing 6 connection(s)", Duration::from_secs(20)).is_some(), "{:?}", run.seen);
    signal(&run.child, libc::SIGINT);
    let (status, stdout, _, v) = run.finish(Duration::from_secs(30));
    assert!(status.success(), "{stdout}");
    let v = v.expect("results written");
    // The second signal came during the close phase: the run stopped without finishing the
    // handshakes, and says so.
    assert_eq!(v["outcome"], "aborted", "{v}");
    assert!(stdout.contains("(aborted)"), "{stdout}");
}

#[test]
fn sighup_stops_like_sigterm_and_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = RunProc::start(dir.path(), &["-c", "4", "-k", "2", "--rate", "5", "-d", "60s"]);
    assert!(run.wait_line("sending for", Duration::from_secs(20)).is_some(), "{:?}", run.seen);
    signal(&run.child, libc::SIGHUP);
    let (status, stdout, _, v) = run.finish(Duration::from_secs(30));
    assert!(status.success(), "{status:?} {stdout}");
    let v = v.expect("results written");
    assert_eq!(v["outcome"], "interrupted", "{v}");
    assert!(stdout.contains("(interrupted)"), "{stdout}");
}

#[test]
fn a_killed_run_leaves_an_earlier_results_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let earlier = "{\"an\": \"earlier run\"}\n";
    std::fs::write(dir.path().join("results.json"), earlier).unwrap();
    let mut run = RunProc::start(dir.path(), &["-c", "2", "-k", "2", "--rate", "5", "-d", "60s"]);
    assert!(run.wait_sent(Duration::from_secs(30)), "{:?}", run.seen);
    signal(&run.child, libc::SIGKILL);
    let _ = run.child.wait();
    assert_eq!(std::fs::read_to_string(dir.path().join("results.json")).unwrap(), earlier);
}

#[test]
fn a_connect_phase_cut_short_leaves_no_connection_behind() {
    // The server never answers the upgrade; --connect-timeout would hold each attempt 60 s.
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("silent");
    let mut run = RunProc::start(
        dir.path(),
        &["--url", &url, "-c", "3", "-k", "2", "--rate", "1", "-d", "60s", "--connect-timeout", "60s"],
    );
    assert!(run.wait_line("connecting 6", Duration::from_secs(20)).is_some(), "{:?}", run.seen);
    signal(&run.child, libc::SIGINT);
    let (status, stdout, _, v) = run.finish(Duration::from_secs(30));
    let v = v.expect("results written");
    assert!(status.code().is_some(), "{status:?}: {stdout}");
    assert_eq!(v["outcome"], "interrupted", "{v}");
    // The attempts were cut short by the close rather than left connecting until the cores gave
    // up on them: none counts as attempted, failed or established.
    assert_eq!(u(&v, "connections.attempted"), 0, "{v}");
    assert_eq!(u(&v, "connections.established"), 0, "{v}");
    assert_eq!(u(&v, "connections.failed"), 0, "{v}");
}

#[test]
fn the_drain_ends_once_no_connection_is_left_open() {
    // Deliveries held 30 s, then the server killed: everything sent is owed, and no connection
    // is left to bring it. The drain (100 s) must not wait for what cannot arrive.
    let mut srv = ServeProc::start(&["--delay", "30s"]);
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    let mut run = RunProc::start(
        dir.path(),
        &["--url", &url, "-c", "3", "-k", "2", "--rate", "10", "-d", "60s", "--drain", "100s"],
    );
    assert!(run.wait_line("sending for", Duration::from_secs(20)).is_some(), "{:?}", run.seen);
    // Until a progress line shows deliveries owed.
    let owed = |l: &str| l.split(" pending ").nth(1).and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok());
    while owed(&run.wait_line(" pending ", Duration::from_secs(20)).expect("progress lines")).unwrap_or(0) == 0 {}
    srv.child.kill().unwrap();
    let _ = srv.child.wait();
    signal(&run.child, libc::SIGINT);
    let (status, stdout, _, v) = run.finish(Duration::from_secs(90));
    assert!(status.success(), "{stdout}");
    let v = v.expect("results written");
    assert_eq!(u(&v, "connections.closed_by_peer"), 6, "{v}");
    assert!(u(&v, "messages.missed") > 0, "owed deliveries were pending: {v}");
    // Compared with the drain's length, not a speed: the drain did not wait it out.
    assert!(f(&v, "phases.drain_s") < 50.0, "{v}");
}

#[test]
fn endless_tokens_and_scenario_files_are_refused_at_their_limit() {
    for (flag, path) in [("--tokens", "/dev/zero"), ("--scenario", "/dev/zero")] {
        let (code, err) = herd_fails(&[flag, path, "-c", "1", "-k", "2", "-d", "1s"]);
        assert_eq!(code, Some(64), "{flag}: {err}");
        assert!(err.contains(&format!("{flag} /dev/zero: larger than the limit")), "{err}");
    }
}

#[test]
fn a_tokens_fifo_that_never_ends_does_not_outlive_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("tokens");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let child = std::process::Command::new(herd_bin())
        .args(["run", "--tokens", fifo.to_str().unwrap(), "-c", "1", "-k", "2", "-d", "1s", "-q"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A writer that holds the FIFO open and never writes: opening it waits for herd's reader.
    let _writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    signal(&child, libc::SIGINT);
    let o = output_within(child, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("--tokens") && err.contains("interrupted"), "{err}");
}

#[test]
fn connection_counts_that_overflow_are_refused_as_usage_errors() {
    // 2147549185 x 4294836226 wrapped the fd estimate to 68 and aborted in an allocation.
    let (code, err) = herd_fails(&["-c", "2147549185", "-k", "4294836226", "-d", "1s"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--members") && err.contains("--conversations x --members"), "{err}");
}

/// `herd run ARGS -q` to its end; its exit code and stderr.
fn herd_fails(args: &[&str]) -> (Option<i32>, String) {
    let child = std::process::Command::new(herd_bin())
        .arg("run")
        .args(args)
        .arg("-q")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = output_within(child, Duration::from_secs(60));
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn urls_that_would_inject_into_the_request_are_usage_errors() {
    for url in [
        "ws://127.0.0.1:9/a\r\nX-Evil: 1\r\nY: /{conv}",
        "ws://127.0.0.1:9/conv/a b{conv}",
        "ws://127.0.0.1:0/conv/{conv}",
    ] {
        let (code, err) = herd_fails(&["--url", url, "-c", "1", "-k", "2", "-d", "1s"]);
        assert_eq!(code, Some(64), "{url:?}: {err}");
        assert!(err.contains("--url"), "{err}");
    }
}

#[test]
fn a_tls_client_hello_to_a_plain_server_is_answered_400_at_once() {
    use std::io::{Read, Write};
    // A long handshake timeout: the answer must come from recognising the bytes, not the timer.
    let srv = ServeProc::start(&["--handshake-timeout", "120s"]);
    let mut s = std::net::TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The start of a TLS record carrying a ClientHello (content type 22, TLS 1.0 record version).
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00]).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("an answer and the end of the connection, before the read timeout");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

#[test]
fn herd_ceiling_takes_the_protocol_and_socket_flags_of_herd_run() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "alpha\nbeta\n").unwrap();
    let out = dir.path().join("ceiling.json");
    let child = std::process::Command::new(herd_bin())
        .args(["ceiling", "--step", "20", "--max", "40", "--hold", "200ms", "--target", "herd", "--sndbuf", "64KiB"])
        .args(["--rcvbuf", "64KiB", "--tokens", tokens.to_str().unwrap(), "--header", "X-Token: {token}", "-q", "-o"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = output_within(child, Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["stopped_by"], "max", "{v}");
    assert_eq!(u(&v, "highest_stable"), 40, "{v}");
    // A bad value is refused naming the flag, as herd run does.
    let child = std::process::Command::new(herd_bin())
        .args(["ceiling", "--tokens", "/dev/zero", "-q"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = output_within(child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "{err}");
    assert!(err.contains("--tokens /dev/zero"), "{err}");
}
