//! herd against a real chat server nobody here wrote: nginx with the nchan pub/sub module, one
//! `nchan_pubsub websocket` channel per conversation on a free loopback port (tests/peers/nchan.py
//! writes the config and runs nginx). nchan delivers each message to every member of the
//! conversation, the sender included: that echo must be counted as echoed, never as delivered,
//! and the accounting must still be exact.

mod common;
use common::peers::*;
use serde_json::{json, Value};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// nchan's own view: nothing crashed, nothing went to the error log.
fn assert_nchan_healthy(r: &Value) {
    assert_eq!(r["worker_crashes"], json!(0), "{r}");
    for level in ["emerg", "alert", "crit", "error"] {
        let count = r["error_log_levels"][level].as_u64().unwrap_or(0);
        assert_eq!(count, 0, "nginx logged [{level}]: {r}");
    }
}

#[test]
fn nchan_accounting_is_exact_and_its_echo_is_not_delivery() {
    let nchan = Peer::nchan(&[]);
    let url = nchan.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(
        d.path(),
        &[
            "--target",
            "nchan",
            "--url",
            &url,
            "-c",
            "10",
            "-k",
            "4",
            "--senders",
            "2",
            "--rate",
            "5",
            "-d",
            "2s",
            "--drain",
            "3s",
        ],
    );
    assert_exact(&v);
    let sent = n(&v, "messages.sent");
    assert_eq!(sent, 10 * 2 * 5 * 2);
    assert_eq!(n(&v, "messages.delivered"), sent * 3);
    assert_eq!(n(&v, "messages.echoed"), sent, "nchan sends every message back to its sender once");
    assert_eq!((n(&v, "messages.unexpected"), n(&v, "messages.reordered")), (0, 0));
    assert_eq!(errors(&v), vec![]);
    assert_eq!((n(&v, "connections.established"), n(&v, "connections.closed")), (40, 40));
    assert_eq!(v["scenario"]["protocol"]["target"], "nchan");
    let r = nchan.stop();
    assert_eq!(r["stub_status"]["total_published_messages"], json!(sent), "{r}");
    assert_nchan_healthy(&r);
}

/// A JSON envelope (the marker inside a JSON string) and keep-alive pings through nchan.
#[test]
fn nchan_json_envelope_and_keepalive_pings() {
    let nchan = Peer::nchan(&[]);
    let url = nchan.url("/conv/{conv}?user={user}");
    let d = tmp();
    let send = r#"{"type":"chat","conv":{conv},"from":"user-{user}","seq":{seq},"text":"{payload}"}"#;
    let v = herd_ok(
        d.path(),
        &[
            "--target",
            "nchan",
            "--url",
            &url,
            "-c",
            "5",
            "-k",
            "3",
            "--rate",
            "4",
            "-d",
            "2s",
            "--send",
            send,
            "--ping-interval",
            "200ms",
        ],
    );
    assert_exact(&v);
    assert_eq!(n(&v, "messages.echoed"), n(&v, "messages.sent"));
    assert_eq!(errors(&v), vec![]);
    let (pings, pongs) = (n(&v, "websocket.pings_sent"), n(&v, "websocket.pongs_received"));
    assert!(pings >= 15 * 8, "{}", v["websocket"]);
    assert!(pongs + 15 >= pings && pongs <= pings, "{}", v["websocket"]);
    // A pong slower than the interval counts as missed: rare, but not impossible on a busy host.
    assert!(n(&v, "websocket.pongs_missed") * 10 <= pings, "{}", v["websocket"]);
    assert_nchan_healthy(&nchan.stop());
}

/// nginx stopping closes every WebSocket with 1001: herd counts each as closed by the server.
#[test]
fn nchan_shutdown_closes_are_counted() {
    let nchan = Peer::nchan(&[]);
    let url = nchan.url("/conv/{conv}");
    let d = tmp();
    let dir = d.path().to_path_buf();
    let args = ["--target", "nchan", "--url", &url, "-c", "4", "-k", "3", "--rate", "0", "-d", "4s"].map(String::from);
    let run = std::thread::spawn(move || herd_ok(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    // nginx stops once nchan has all 12 members subscribed (each has had its 101).
    common::wait_for("nchan to report 12 subscribers", std::time::Duration::from_secs(30), || {
        assert!(!run.is_finished(), "herd run ended before nchan had its 12 members");
        let (code, body) = common::http_get(&nchan.addr, "/nchan_status");
        code == 200 && body.lines().any(|l| l.trim() == "subscribers: 12")
    });
    let r = nchan.stop();
    let v = run.join().expect("herd run");
    assert_eq!(n(&v, "connections.established"), 12);
    assert_eq!(n(&v, "connections.closed_by_peer"), 12);
    assert_eq!(v["websocket"]["close_codes_received"], json!({"1001": 12}));
    // Clean closes by the server are lost connections: they count in their own category.
    assert_eq!(errors(&v), vec![("closed_by_peer".to_string(), 12)]);
    assert_nchan_healthy(&r);
}
