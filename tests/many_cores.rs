//! More executors than this host has cores: the server's and the generator's startup, routing
//! across cores (past 64, where a 64-bit core mask would wrap) and shutdown, with exact
//! accounting. Every count is checked against what the scenario makes it (senders x rate x
//! duration, times the other members), not against herd's own `expected`.

mod common;

use common::{run_herd, signal, u, ServeProc};
use std::time::{Duration, Instant};

/// Messages a run sends: every sender sends `rate` per second for the whole duration.
fn sent_by(conversations: u64, rate: u64, secs: u64) -> u64 {
    conversations * rate * secs
}

#[test]
fn serve_with_16_executors_relays_exactly() {
    let srv = ServeProc::start(&["--threads", "16"]);
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(dir.path(), &["--url", &srv.url(), "-c", "60", "-k", "4", "--rate", "5", "-d", "2s"]);
    let sent = sent_by(60, 5, 2);
    assert_eq!(u(&v, "messages.sent"), sent);
    assert_eq!(u(&v, "messages.delivered"), sent * 3);
    assert_eq!(u(&v, "messages.missed") + u(&v, "messages.duplicated") + u(&v, "messages.reordered"), 0);
    let m = srv.metrics();
    assert_eq!(m["herd_server_messages_received_total"], sent as f64);
    assert_eq!(m["herd_server_messages_delivered_total"], (sent * 3) as f64);
}

#[test]
fn run_with_16_generator_and_16_server_executors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(
        dir.path(),
        &["--threads", "16", "--server-threads", "16", "-c", "64", "-k", "4", "--rate", "4", "-d", "2s"],
    );
    let sent = sent_by(64, 4, 2);
    assert_eq!(u(&v, "messages.sent"), sent);
    assert_eq!(u(&v, "messages.delivered"), sent * 3);
    assert_eq!(u(&v, "server.messages_delivered"), sent * 3);
    assert_eq!(u(&v, "connections.established"), 256);
    assert_eq!(v["scenario"]["cores"].as_array().map(|c| c.len()), Some(16));
    // The results say how many executors ran and why; beyond the CPUs this process may use (an
    // oversubscribed run: here more than the host's cores) they carry a note.
    let why = v["scenario"]["executors"].as_str().unwrap_or_default();
    assert!(why.starts_with("16 executor(s) from --threads"), "{why}");
    let usable = herd::cpu::Budget::detect().limit();
    let noted = v["notes"].as_array().unwrap().iter().any(|n| n.as_str() == Some(why));
    assert_eq!(noted, usable < 16, "{why} / {}", v["notes"]);
}

/// 70 server executors: SO_REUSEPORT spreads each room's members over cores numbered up to 69,
/// so relays to cores 64-69 must reach them (a `1u64 << core` mask sent those to cores 0-5).
#[test]
fn more_than_64_server_executors_route_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(
        dir.path(),
        &["--threads", "2", "--server-threads", "70", "-c", "200", "-k", "4", "--rate", "2", "-d", "2s"],
    );
    let sent = sent_by(200, 2, 2);
    assert_eq!(u(&v, "messages.sent"), sent);
    assert_eq!(u(&v, "messages.delivered"), sent * 3);
    assert_eq!(u(&v, "server.messages_received"), sent);
    assert_eq!(u(&v, "server.messages_delivered"), sent * 3);
    assert_eq!(u(&v, "server.connections_opened"), 800);
}

#[test]
fn run_with_70_executors_each_side_completes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (_, v) = run_herd(
        dir.path(),
        &["--threads", "70", "--server-threads", "70", "-c", "140", "-k", "3", "--rate", "2", "-d", "2s"],
    );
    // 140 executors on a loaded two-core host may write a message after the drain ends: then
    // it is counted unsent, never lost. Every message sent reaches both other members.
    let sent = u(&v, "messages.sent");
    assert_eq!(sent + u(&v, "messages.unsent"), sent_by(140, 2, 2), "{} {}", v["outcome"], v["notes"]);
    assert_eq!(u(&v, "messages.delivered"), sent * 2);
    assert_eq!(u(&v, "messages.missed"), 0);
    assert_eq!(u(&v, "connections.failed"), 0);
    // No core was left behind: every figure came from a core that stopped.
    let notes = v["notes"].as_array().unwrap();
    assert!(!notes.iter().any(|n| n.as_str().unwrap_or("").contains("did not stop")), "{notes:?}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn serve_with_70_executors_answers_and_stops_on_sigterm() {
    let mut srv = ServeProc::start(&["--threads", "70"]);
    assert_eq!(common::http_get(&srv.addr, "/healthz").0, 200);
    signal(&srv.child, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "herd serve --threads 70 did not stop within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// What `herd doctor` says of RLIMIT_MEMLOCK: above glommio's 512 KiB floor it does not bound the
/// executor count. 32 server executors start under a 1 MiB limit and relay exactly.
#[test]
fn memlock_of_1_mib_starts_32_executors() {
    use std::io::BufRead;
    let mut child = std::process::Command::new("prlimit")
        .args(["--memlock=1048576:1048576", "--", common::herd_bin(), "serve", "--listen", "127.0.0.1:0"])
        .args(["--threads", "32"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) runs herd serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split_whitespace().find(|w| w.starts_with("127.0.0.1:")).map(str::to_string);
    let result = addr.map(|addr| {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("ws://{addr}/conv/{{conv}}");
        run_herd(dir.path(), &["--url", &url, "-c", "40", "-k", "3", "--rate", "2", "-d", "2s"]).1
    });
    signal(&child, libc::SIGTERM);
    let _ = child.wait();
    let v = result.unwrap_or_else(|| panic!("herd serve --threads 32 under memlock 1 MiB did not listen: {line:?}"));
    assert_eq!(u(&v, "messages.sent"), sent_by(40, 2, 2));
    assert_eq!(u(&v, "messages.delivered"), sent_by(40, 2, 2) * 2);
}
