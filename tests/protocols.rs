//! The protocols real chat frameworks speak, against real servers (tests/peers): the npm
//! `socket.io` 4.8 server with `--target socketio` across many of its ping cycles, and strict
//! `ws` servers that drop a client sending before their greeting, ping in text and drop a client
//! that does not answer, or refuse upgrades without the right Origin. Each side's account is
//! checked: herd's results and the server's report.

mod common;
use common::peers::*;
use serde_json::{json, Value};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `-c 3 -k 3`.
const CONNS: u64 = 9;

fn args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--url", url, "-c", "3", "-k", "3", "-d", "2s", "--drain", "2s", "--rate", "5"];
    a.extend_from_slice(extra);
    a
}

fn counter(r: &Value, name: &str) -> u64 {
    r["counters"][name].as_u64().unwrap_or_else(|| panic!("{name} missing in {r}"))
}

/// A Socket.IO server pinging every 200 ms (a connection that does not answer is dropped after
/// 1 s more) across a run of about 4 s: many ping cycles per connection.
fn socketio(mode: &str) -> Peer {
    Peer::start(Impl::SocketIo, &["--mode", mode, "--ping-interval-ms", "200", "--ping-timeout-ms", "1000"])
}

const SIO_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// Checks the ping accounting of a Socket.IO run: every pong herd sent reached the server, and
/// every ping but those in flight when herd closed was answered.
fn sio_pings_exact(v: &Value, r: &Value) {
    let (pings, pongs) = (counter(r, "pings_sent"), counter(r, "pongs_received"));
    assert!(pings >= 3 * CONNS, "too few ping cycles to tell: {r}");
    assert_eq!(n(v, "websocket.pongs_sent"), pongs, "{}", v["websocket"]);
    assert_eq!(n(v, "websocket.pings_received"), pongs, "{}", v["websocket"]);
    assert!(pings - pongs <= CONNS, "pings left unanswered beyond the last one each: {r}");
    assert_eq!(r["counters"]["disconnect_reasons"].get("ping timeout"), None, "{r}");
}

/// `socket.to(room)`: the sender does not get its own message back. Exact accounting, frames
/// all understood (`--unmarked error`), the join sequence timed.
#[test]
fn socketio_to_room() {
    let peer = socketio("to");
    let url = peer.url(SIO_PATH);
    let d = tmp();
    let v = herd_ok(d.path(), &args(&url, &["--target", "socketio", "--unmarked", "error"]));
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    let sent = n(&v, "messages.sent");
    assert_eq!((n(&v, "messages.delivered"), n(&v, "messages.echoed")), (sent * 2, 0));
    assert_eq!(n(&v, "connect_phases.join.count"), CONNS);
    let r = peer.stop();
    assert_eq!((counter(&r, "connections"), counter(&r, "joins")), (CONNS, CONNS), "{r}");
    assert_eq!((counter(&r, "messages_received"), counter(&r, "messages_before_join")), (sent, 0), "{r}");
    sio_pings_exact(&v, &r);
}

/// `io.to(room)`: the sender gets its own message back, counted as echoed, never delivered.
#[test]
fn socketio_io_room_echoes() {
    let peer = socketio("io");
    let url = peer.url(SIO_PATH);
    let d = tmp();
    let v = herd_ok(d.path(), &args(&url, &["--target", "socketio", "--unmarked", "error"]));
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    let sent = n(&v, "messages.sent");
    assert_eq!((n(&v, "messages.delivered"), n(&v, "messages.echoed")), (sent * 2, sent));
    let r = peer.stop();
    assert_eq!(counter(&r, "messages_received"), sent, "{r}");
    sio_pings_exact(&v, &r);
}

/// The join sequence from a scenario file, waiting for the server's acknowledgement of the join
/// event (a Socket.IO ack, `431[...]`) so that no message is sent before the server has the
/// client in the room.
#[test]
fn socketio_acked_join_from_a_scenario_file() {
    let peer = socketio("to");
    let d = tmp();
    let file = d.path().join("sio.toml");
    let toml = format!(
        "target = \"socketio\"\nurl = \"{}\"\njoin = [{{ expect = '^0\\{{' }}, \"40\", {{ expect = \"^40\" }}, \
         '421[\"join\",\"room-{{conv}}\"]', {{ expect = '^431\\[\"joined\"\\]$' }}]\n",
        peer.url(SIO_PATH)
    );
    std::fs::write(&file, toml).unwrap();
    let f = file.to_str().unwrap();
    let v = herd_ok(d.path(), &["--scenario", f, "-c", "3", "-k", "3", "-d", "1s", "--drain", "2s", "--rate", "5"]);
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    assert_eq!(n(&v, "connect_phases.join.count"), CONNS);
    let r = peer.stop();
    assert_eq!((counter(&r, "joins"), counter(&r, "messages_received")), (CONNS, n(&v, "messages.sent")), "{r}");
}

/// Without the preset's answer to the server's pings (`--reply ''`), Socket.IO drops every
/// connection for a ping timeout, and herd says so.
#[test]
fn socketio_unanswered_pings_drop_connections() {
    let peer = socketio("to");
    let url = peer.url(SIO_PATH);
    let d = tmp();
    let (_, v) = herd(d.path(), &args(&url, &["--target", "socketio", "--reply", ""]));
    assert_eq!(n(&v, "connections.closed_by_peer"), CONNS, "{}", v["connections"]);
    assert_eq!(n(&v, "websocket.pongs_sent"), 0);
    let r = peer.stop();
    assert_eq!(r["counters"]["disconnect_reasons"]["ping timeout"], json!(CONNS), "{r}");
    assert_eq!(counter(&r, "pongs_received"), 0, "{r}");
}

/// A server that drops clients sending before its greeting: joins sent at once are refused with
/// the server's close code and reason (both in the results); waiting for the greeting and for
/// the join's answer (`--expect`) gives exact accounting.
#[test]
fn joins_wait_for_a_strict_server() {
    let peer = Peer::ws(Impl::Strict, "greet", &["--after-ms", "150"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let (_, v) = herd(d.path(), &args(&url, &["--join", r#"{"type":"join"}"#]));
    assert_eq!(n(&v, "connections.closed_by_peer"), CONNS, "{}", v["connections"]);
    assert_eq!(v["websocket"]["close_codes_received"], json!({"4000": CONNS}), "{}", v["websocket"]);
    assert_eq!(v["websocket"]["close_reasons_received"], json!({"4000 sent before welcome": CONNS}));
    assert_eq!(counter(&peer.stop(), "closed_early"), CONNS);

    let peer = Peer::ws(Impl::Strict, "greet", &["--after-ms", "150"]);
    let url = peer.url("/conv/{conv}");
    let steps = ["--expect", "welcome", "--join", r#"{"type":"join"}"#, "--expect", r#"^\{"type":"joined"\}$"#];
    let v = herd_ok(d.path(), &args(&url, &steps));
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    assert_eq!(n(&v, "connect_phases.join.count"), CONNS);
    let r = peer.stop();
    assert_eq!((counter(&r, "closed_early"), counter(&r, "closed_bad_join")), (0, 0), "{r}");
    assert_eq!((counter(&r, "joins"), counter(&r, "relayed")), (CONNS, n(&v, "messages.sent")), "{r}");
}

/// A step whose frame never comes fails each connection with join_timeout.
#[test]
fn a_join_step_that_never_matches_times_out() {
    let peer = Peer::ws(Impl::Strict, "greet", &["--after-ms", "50"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let (o, v) = herd(d.path(), &args(&url, &["--expect", "^never$", "--expect-timeout", "300ms"]));
    assert!(!o.status.success());
    assert_eq!(errors(&v), vec![("join_timeout".to_string(), CONNS)]);
    assert_eq!((n(&v, "connections.failed"), n(&v, "connections.established")), (CONNS, 0));
    drop(peer);
}

/// A server pinging in text and dropping clients that miss an answer: `--reply` keeps every
/// connection through many pings, each answer counted on both sides.
#[test]
fn text_pings_are_answered() {
    let peer = Peer::ws(Impl::Strict, "textping", &["--ping-interval-ms", "100"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(d.path(), &args(&url, &["--reply", r#""type":"ping"={"type":"pong"}"#]));
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    let r = peer.stop();
    let (pings, pongs) = (counter(&r, "pings_sent"), counter(&r, "pongs_received"));
    assert!(pings >= 10 * CONNS, "{r}");
    assert_eq!(counter(&r, "closed_missed_pong"), 0, "{r}");
    assert_eq!(n(&v, "websocket.pongs_sent"), pongs);
    assert_eq!(n(&v, "websocket.pings_received"), pongs);
    assert!(pings - pongs <= CONNS, "{r}");

    // Unanswered, the pings are unmarked frames and the server drops every connection.
    let peer = Peer::ws(Impl::Strict, "textping", &["--ping-interval-ms", "100"]);
    let url = peer.url("/conv/{conv}");
    let (_, v) = herd(d.path(), &args(&url, &["--unmarked", "ignore"]));
    assert_eq!(v["websocket"]["close_reasons_received"], json!({"4002 missed pong": CONNS}), "{}", v["websocket"]);
    assert_eq!(counter(&peer.stop(), "closed_missed_pong"), CONNS);
}

/// `--ping-frame` keep-alives with a declared answer (`--pong-frame`): pongs counted; with an
/// answer that never comes, every keep-alive after a connection's first is a missed pong.
#[test]
fn ping_frames_count_their_pongs() {
    let peer = Peer::ws(Impl::Strict, "origin", &["--origin", "http://herd.test"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let keepalive = ["--origin", "http://herd.test", "--ping-interval", "300ms", "--ping-frame", "PING"];
    let mut a = args(&url, &keepalive);
    a.extend_from_slice(&["--pong-frame", "^PONG$"]);
    let v = herd_ok(d.path(), &a);
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    let (sent, got) = (n(&v, "websocket.pings_sent"), n(&v, "websocket.pongs_received"));
    let r = peer.stop();
    assert!(sent >= 3 * CONNS, "{}", v["websocket"]);
    assert_eq!(counter(&r, "ping_frames_received"), sent, "{r}");
    assert!(got <= sent && sent - got <= CONNS, "{}", v["websocket"]);

    let peer = Peer::ws(Impl::Strict, "origin", &["--origin", "http://herd.test"]);
    let url = peer.url("/conv/{conv}");
    let mut a = args(&url, &keepalive);
    a.extend_from_slice(&["--pong-frame", "^NEVER$", "--unmarked", "ignore"]);
    let v = herd_ok(d.path(), &a);
    let sent = n(&v, "websocket.pings_sent");
    assert_eq!(n(&v, "websocket.pongs_received"), 0);
    assert_eq!(n(&v, "websocket.pongs_missed"), sent - CONNS, "{}", v["websocket"]);
    drop(peer);
}

/// An origin check refusing upgrades: the status, the body's first line and a hint about
/// --origin reach the results; with the Origin it wants, the run is exact.
#[test]
fn refused_upgrades_show_their_status() {
    let peer = Peer::ws(Impl::Strict, "origin", &["--origin", "http://herd.test"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let (o, v) = herd(d.path(), &args(&url, &[]));
    assert!(!o.status.success());
    assert_eq!(errors(&v), vec![("handshake_rejected".to_string(), CONNS)]);
    assert_eq!(v["websocket"]["handshake_statuses"], json!({"403": CONNS}), "{}", v["websocket"]);
    assert_eq!(v["websocket"]["handshake_body"], json!("origin not allowed"));
    let notes = v["notes"].to_string();
    assert!(notes.contains("HTTP 403") && notes.contains("--origin"), "{notes}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("handshake_rejected 9 (HTTP 403 x9)"), "{stdout}");

    let v = herd_ok(d.path(), &args(&url, &["--origin", "http://herd.test"]));
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    assert_eq!(counter(&peer.stop(), "rejected"), CONNS);
}
