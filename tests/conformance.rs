//! WebSocket conformance of herd's client, against two strict servers nobody here wrote: one on
//! PyPI `websockets`, one on npm `ws` (tests/peers). Every case runs against both. The cases are
//! what a real server may do to a client: fragment messages, ping in between, close first, send
//! big frames (up to and beyond `--max-frame`), send invalid UTF-8, answer the upgrade with a
//! wrong accept key, or require a subprotocol. Each side's account is checked: herd's results and
//! the server's report of what herd sent it.

mod common;
use common::peers::*;
use serde_json::{json, Value};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `-c 3 -k 3` unless the case says otherwise.
const CONNS: u64 = 9;

fn chat_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--url", url, "-c", "3", "-k", "3", "-d", "1s", "--drain", "3s"];
    a.extend_from_slice(extra);
    a
}

/// A plain relay: exact accounting; herd offers no extension (although the server would accept
/// permessage-deflate) and no subprotocol, never fragments, and closes with 1000.
fn chat_relay(which: Impl) {
    let peer = Peer::ws(which, "chat", &["--compression", "deflate"]);
    let url = peer.url("/conv/{conv}?user={user}");
    let d = tmp();
    let v = herd_ok(d.path(), &chat_args(&url, &["--senders", "2", "--rate", "5"]));
    assert_exact(&v);
    let sent = n(&v, "messages.sent");
    assert_eq!(n(&v, "messages.delivered"), sent * 2);
    assert_eq!(n(&v, "messages.echoed"), 0);
    assert_eq!(errors(&v), vec![]);
    let r = peer.stop();
    assert_eq!(r["text_received"], json!(sent), "{r}");
    assert_eq!(r["offered_extensions"], json!({}), "{r}");
    assert_eq!(r["offered_subprotocols"], json!({"": CONNS}), "{r}");
    assert_eq!(r["close_codes_received"], json!({"1000": CONNS}), "{r}");
}

/// The server echoes each message to its sender: counted as echoed, never as delivered.
fn echo_is_not_delivery(which: Impl) {
    let peer = Peer::ws(which, "chat-echo", &[]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(d.path(), &chat_args(&url, &["--rate", "5"]));
    assert_exact(&v);
    let sent = n(&v, "messages.sent");
    assert_eq!((n(&v, "messages.delivered"), n(&v, "messages.echoed")), (sent * 2, sent));
    assert_eq!(errors(&v), vec![]);
    assert_eq!(peer.stop()["echoes"], json!(sent));
}

/// Fragmented messages (continuation frames) are reassembled, also when the fragments cut UTF-8
/// code points in half.
fn fragments(which: Impl, extra: &[&str]) {
    let peer = Peer::ws(which, "fragment", extra);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let send = r#"{"text":"grüße, ✓ ünïcödé: {payload}"}"#;
    let v = herd_ok(d.path(), &chat_args(&url, &["--rate", "5", "--size", "300", "--send", send]));
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    let r = peer.stop();
    assert_eq!(r["fragmented_messages_sent"], json!(n(&v, "messages.delivered")), "{r}");
}

/// Server pings between data frames: herd answers each with a matching pong and keeps its
/// accounting exact.
fn server_pings(which: Impl) {
    let peer = Peer::ws(which, "ping", &["--ping-interval-ms", "50"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(d.path(), &chat_args(&url, &["--rate", "20"]));
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    let r = peer.stop();
    let (pings, matched) = (r["pings_sent"].as_u64().unwrap(), r["pongs_matched"].as_u64().unwrap());
    assert!(pings >= CONNS * 10, "{r}");
    // Pings sent while herd was closing may go unanswered (RFC 6455: no pong after a close).
    assert!(matched + 2 * CONNS >= pings && matched <= pings, "{r}");
    assert_eq!(r["pongs_unmatched"], json!(0), "{r}");
    let received = n(&v, "websocket.pings_received");
    assert!(received >= matched && received <= pings, "herd saw {received} pings: {r}");
}

/// herd's own keep-alive pings (`--ping-interval`) are answered by the server.
fn client_pings(which: Impl) {
    let peer = Peer::ws(which, "chat", &[]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(d.path(), &chat_args(&url, &["--rate", "2", "--ping-interval", "200ms"]));
    assert_exact(&v);
    let (sent, pongs) = (n(&v, "websocket.pings_sent"), n(&v, "websocket.pongs_received"));
    assert!(sent >= CONNS * 3, "{}", v["websocket"]);
    // Every ping is answered; only the last of each connection may still be in flight at close.
    assert!(pongs + CONNS >= sent && pongs <= sent, "{}", v["websocket"]);
    // A pong slower than the interval counts as missed: rare, but not impossible on a busy host.
    assert!(n(&v, "websocket.pongs_missed") * 10 <= sent, "{}", v["websocket"]);
    assert_eq!(peer.stop()["client_pings_received"], json!(sent));
}

/// The server closes first (4001 "herd-test"): herd echoes code and reason, and counts it.
fn server_close(which: Impl) {
    let peer = Peer::ws(which, "close", &["--after-ms", "300"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(d.path(), &chat_args(&url, &["--rate", "0"]));
    assert_eq!(n(&v, "connections.closed_by_peer"), CONNS);
    assert_eq!(v["websocket"]["close_codes_received"], json!({"4001": CONNS}));
    // A clean close by the server is still a lost connection: it counts in its own category.
    assert_eq!(errors(&v), vec![("closed_by_peer".to_string(), CONNS)]);
    let r = peer.stop();
    assert_eq!((r["close_echoed"].clone(), r["close_reason_echoed"].clone()), (json!(CONNS), json!(CONNS)), "{r}");
}

/// A frame of exactly `--max-frame` bytes is accepted; chat goes on after it.
fn big_frame_at_the_limit(which: Impl) {
    let peer = Peer::ws(which, "bigframe", &["--bytes", "200000"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(d.path(), &chat_args(&url, &["--rate", "5", "--max-frame", "200000", "--unmarked", "ignore"]));
    assert_exact(&v);
    assert_eq!(n(&v, "websocket.unmarked_frames"), CONNS, "the big frames carry no marker");
    assert_eq!((n(&v, "connections.closed_by_peer"), errors(&v)), (0, vec![]));
    assert_eq!(peer.stop()["close_codes_received"], json!({"1000": CONNS}));
}

/// One byte beyond `--max-frame`: herd fails each connection with 1009.
fn big_frame_beyond_the_limit(which: Impl) {
    let peer = Peer::ws(which, "bigframe", &["--bytes", "200001"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(d.path(), &chat_args(&url, &["--rate", "0", "--max-frame", "200000"]));
    assert_eq!(n(&v, "connections.closed_by_peer"), CONNS);
    assert_eq!(errors(&v), vec![("frame_too_large".to_string(), CONNS)]);
    assert_eq!(v["websocket"]["close_codes_sent"], json!({"1009": CONNS}));
    assert_eq!(peer.stop()["close_codes_received"], json!({"1009": CONNS}));
}

/// A text frame with invalid UTF-8: herd fails the connection with 1007.
fn invalid_utf8(which: Impl) {
    let peer = Peer::ws(which, "badutf8", &[]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(d.path(), &chat_args(&url, &["--rate", "0"]));
    assert_eq!(errors(&v), vec![("invalid_utf8".to_string(), CONNS)]);
    assert_eq!(v["websocket"]["close_codes_sent"], json!({"1007": CONNS}));
    let r = peer.stop();
    assert_eq!(r["closed_with_1007"], json!(CONNS), "{r}");
}

/// A 101 answer with a wrong Sec-WebSocket-Accept: the handshake fails and herd drops the TCP
/// connection without sending a single frame.
fn wrong_accept(which: Impl) {
    let peer = Peer::ws(which, "badaccept", &[]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let (o, v) = herd(d.path(), &chat_args(&url, &["--rate", "1"]));
    assert_eq!(o.status.code(), Some(69), "no connection could be established");
    assert_eq!((n(&v, "connections.established"), n(&v, "connections.failed")), (0, CONNS));
    assert_eq!(errors(&v), vec![("handshake_invalid".to_string(), CONNS)]);
    let r = peer.stop();
    assert_eq!(r["clients_dropped_without_frames"], json!(CONNS), "{r}");
    assert_eq!(r["clients_sent_frames_after_bad_accept"], json!(0), "{r}");
}

/// `--subprotocol`: offered in the upgrade, the server's choice accepted; without it the server
/// refuses the upgrade.
fn subprotocol(which: Impl) {
    let peer = Peer::ws(which, "subprotocol", &["--subprotocol", "chat.herd"]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v =
        herd_ok(d.path(), &chat_args(&url, &["--rate", "5", "--subprotocol", "chat.v0", "--subprotocol", "chat.herd"]));
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    let (_, without) = herd(d.path(), &chat_args(&url, &["--rate", "1"]));
    assert_eq!(errors(&without), vec![("handshake_rejected".to_string(), CONNS)]);
    let r = peer.stop();
    assert_eq!(r["subprotocol_negotiated"], json!(CONNS), "{r}");
    assert_eq!(r["offered_subprotocols"], json!({"chat.v0, chat.herd": CONNS, "": CONNS}), "{r}");
}

/// `--binary`: messages go out as binary frames and binary receipts are no error.
fn binary(which: Impl) {
    let peer = Peer::ws(which, "chat", &[]);
    let url = peer.url("/conv/{conv}");
    let d = tmp();
    let v = herd_ok(d.path(), &chat_args(&url, &["--rate", "5", "--binary"]));
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    let r: Value = peer.stop();
    assert_eq!((r["binary_received"].clone(), r["text_received"].clone()), (json!(n(&v, "messages.sent")), json!(0)));
}

macro_rules! against {
    ($($name:ident => $body:expr;)*) => {
        mod python_websockets {
            use super::*;
            $(#[test] fn $name() { ($body)(Impl::Py) })*
        }
        mod node_ws {
            use super::*;
            $(#[test] fn $name() { ($body)(Impl::Js) })*
        }
    };
}

against! {
    chat_relay_accounts_exactly => chat_relay;
    echo_to_the_sender_is_not_delivery => echo_is_not_delivery;
    fragmented_messages_are_reassembled => |w| fragments(w, &[]);
    fragments_cutting_code_points_are_reassembled => |w| fragments(w, &["--fragments", "7", "--fragment-split", "bytes"]);
    server_pings_are_answered => server_pings;
    client_keepalive_pings_are_answered => client_pings;
    server_close_is_echoed_and_counted => server_close;
    a_frame_of_max_frame_bytes_is_accepted => big_frame_at_the_limit;
    a_frame_beyond_max_frame_fails_with_1009 => big_frame_beyond_the_limit;
    invalid_utf8_fails_with_1007 => invalid_utf8;
    a_wrong_accept_key_fails_the_handshake => wrong_accept;
    subprotocols_are_offered_and_checked => subprotocol;
    binary_messages_are_supported => binary;
}
