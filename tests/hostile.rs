//! herd run against a hostile server (tests/common/hostile.rs): binary frames, invalid UTF-8,
//! oversized frames, forged, truncated and out-of-range markers, bad handshakes, close storms
//! and history replays. Each is counted in its category; none crashes herd or bends the
//! accounting.

mod common;
use common::hostile::Hostile;
use common::*;

#[test]
fn hostile_frames_are_counted_and_the_accounting_holds() {
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("mix");
    let (o, v) = run_herd(
        dir.path(),
        &["--url", &url, "-c", "7", "-k", "2", "--rate", "20", "-d", "2s", "--drain", "1s", "--max-frame", "64k"],
    );
    let e = |k: &str| u(&v, &format!("errors.{k}"));
    // 7 senders x 20/s x 2 s.
    assert_eq!(u(&v, "messages.sent"), 280);
    // Conversations 0-2 get all 40 of their sender's messages (1 as binary frames), 3 and 4 the
    // first two; forged markers, junk and replays of nothing count as deliveries nowhere.
    assert_eq!(u(&v, "messages.delivered"), 40 * 3 + 2 + 2, "{v}");
    assert!(u(&v, "messages.delivered") <= u(&v, "messages.expected"));
    assert_eq!(u(&v, "messages.duplicated"), 0);
    assert_eq!(u(&v, "messages.unexpected"), 0);
    assert_eq!(e("binary_frame"), 80, "40 junk + 40 relayed as binary");
    assert_eq!(e("marker_missing"), 80, "40 junk binary + 40 text without a marker");
    assert_eq!(e("marker_foreign"), 40);
    assert_eq!(e("marker_out_of_range"), 120, "conversation, sender and sequence, 40 each");
    assert_eq!(e("marker_malformed"), 40, "the truncated marker");
    assert_eq!(e("invalid_utf8"), 1);
    assert_eq!(e("frame_too_large"), 1);
    assert_eq!(e("handshake_invalid"), 1);
    assert_eq!(e("closed_by_peer"), 1, "the receiver closed at once");
    assert_eq!(u(&v, "connections.established"), 13);
    assert_eq!(u(&v, "connections.failed"), 1);
    assert_eq!(u(&v, "connections.closed_by_peer"), 3);
    assert_eq!(u(&v, "connections.reconnected"), 0, "no --reconnect");
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("frame_too_large 1"), "{summary}");
}

#[test]
fn a_close_storm_is_reconnected_with_backoff() {
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("storm");
    let (_, v) = run_herd(
        dir.path(),
        &["--url", &url, "-c", "4", "-k", "2", "--rate", "10", "-d", "3s", "--drain", "1s", "--reconnect"],
    );
    let reconnected = u(&v, "connections.reconnected");
    // Four receivers closed at once, each time: backoff 100 ms doubling (never reset, since no
    // connection lives 5 s) allows about five attempts each in 3-5 s, never hundreds.
    assert!(reconnected >= 4, "{v}");
    assert!(reconnected <= 4 * 10, "backoff did not damp the storm: {reconnected} reconnects");
    assert_eq!(u(&v, "connections.established"), 8 + reconnected);
    // Every receiver connection was ended by the server's close 1000 (each counted once, with
    // its code), every sender's by herd at the end.
    let by_peer = u(&v, "connections.closed_by_peer");
    assert!(by_peer >= reconnected);
    assert_eq!(u(&v, "errors.closed_by_peer"), by_peer, "{v}");
    assert_eq!(u(&v, "websocket.close_codes_received.1000"), by_peer, "{v}");
    assert_eq!(by_peer + u(&v, "connections.closed"), u(&v, "connections.established"), "{v}");
    // The senders were never closed: all 4 x 10/s x 3 s went out.
    assert_eq!(u(&v, "messages.sent"), 120, "{v}");
    assert!(u(&v, "messages.delivered") <= u(&v, "messages.expected"));
    assert_eq!(u(&v, "messages.duplicated"), 0);
    assert!(u(&v, "messages.missed_while_away") > 0, "the receivers were away most of the time: {v}");
}

#[test]
fn replayed_history_after_a_reconnect_is_unexpected_not_delivered() {
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url("replay");
    let (_, v) = run_herd(
        dir.path(),
        &["--url", &url, "-c", "2", "-k", "3", "--rate", "20", "-d", "3s", "--drain", "1s", "--reconnect"],
    );
    let reconnected = u(&v, "connections.reconnected");
    assert!(reconnected >= 2, "{v}");
    // Both senders sent all 20/s x 3 s; every receiver connection lost was closed with 1001.
    assert_eq!(u(&v, "messages.sent"), 120, "{v}");
    let by_peer = u(&v, "connections.closed_by_peer");
    assert!(by_peer >= reconnected, "{v}");
    assert_eq!(u(&v, "websocket.close_codes_received.1001"), by_peer, "{v}");
    // Each reconnected receiver first gets the room's history: all of it was sent before it
    // connected again, so none of it is owed, none is a delivery or a duplicate.
    assert!(u(&v, "messages.unexpected") > 0, "{v}");
    assert_eq!(u(&v, "messages.duplicated"), 0, "{v}");
    let (expected, delivered) = (u(&v, "messages.expected"), u(&v, "messages.delivered"));
    assert!(delivered <= expected, "{v}");
    // Each message was owed to both receivers of its conversation unless one was away.
    assert_eq!(expected + u(&v, "messages.missed_while_away"), 2 * 120, "{}", v["messages"]);
    // Every reconnected receiver was replayed history, counted as unexpected.
    assert!(u(&v, "messages.unexpected") >= reconnected, "{}", v["messages"]);
    assert!(u(&v, "messages.missed_while_away") > 0, "{v}");
}
