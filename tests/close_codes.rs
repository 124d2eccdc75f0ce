//! A server's close code is recorded as the server sent it, also one RFC 6455 does not allow on
//! the wire (tungstenite reports those as 1002): the hostile server (tests/common/hostile.rs,
//! `close-CODE`) closes each receiver with CODE after a ping and a text frame, over ws:// and,
//! through nginx terminating TLS, over wss://.

mod common;
use common::hostile::Hostile;
use common::tlsfix::{nginx_tls, Certs};
use common::*;
use serde_json::{json, Value};

/// Two conversations of two: each receiver is closed by the server, each sender by herd.
fn closed_with(url: &str, extra: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--url", url, "-c", "2", "-k", "2", "--rate", "2", "-d", "1s", "--drain", "1s"];
    args.extend(["--unmarked", "ignore"]);
    args.extend(extra);
    let (o, v) = run_herd(dir.path(), &args);
    assert_eq!(u(&v, "connections.closed_by_peer"), 2, "{v}");
    assert_eq!(u(&v, "connections.closed"), 2, "{v}");
    // What came before each close was read frame by frame: a ping and a frame without a marker.
    assert_eq!(u(&v, "websocket.pings_received"), 2, "{v}");
    assert_eq!(u(&v, "websocket.unmarked_frames"), 2, "{v}");
    (String::from_utf8_lossy(&o.stdout).into_owned(), v)
}

/// A code the server may send: recorded, with its reason, and not invalid.
fn assert_valid(v: &Value, code: u16) {
    let w = &v["websocket"];
    assert_eq!(w["close_codes_received"], json!({ code.to_string(): 2 }), "{w}");
    assert_eq!(w["close_reasons_received"], json!({ format!("{code} closing"): 2 }), "{w}");
    assert_eq!(u(v, "websocket.invalid_close_codes"), 0, "{w}");
    assert_eq!(u(v, "errors.closed_by_peer"), 2, "{v}");
}

/// A code the server may not send: recorded as sent, counted invalid; tungstenite's stand-in
/// reason ("Protocol violation") is not taken for the server's.
fn assert_invalid(v: &Value, summary: &str, code: u16) {
    let w = &v["websocket"];
    assert_eq!(w["close_codes_received"], json!({ code.to_string(): 2 }), "{w}");
    assert_eq!(u(v, "websocket.invalid_close_codes"), 2, "{w}");
    assert!(w.get("close_reasons_received").is_none(), "{w}");
    assert_eq!(w["close_codes_sent"], json!({}), "{w}");
    assert_eq!(u(v, "errors.closed_by_peer"), 2, "{v}");
    assert_eq!(u(v, "errors.protocol"), 0, "{v}");
    assert!(summary.contains(&format!("invalid close codes 2, closed by server {code} x2")), "{summary}");
}

#[test]
fn close_999_is_recorded_as_999_and_counted_invalid() {
    let srv = Hostile::start();
    let (summary, v) = closed_with(&srv.url("close-999"), &[]);
    assert_invalid(&v, &summary, 999);
}

#[test]
fn a_literal_1005_from_the_server_is_recorded_and_counted_invalid() {
    let srv = Hostile::start();
    let (summary, v) = closed_with(&srv.url("close-1005"), &[]);
    assert_invalid(&v, &summary, 1005);
}

#[test]
fn allowed_codes_stay_as_they_are_and_are_not_invalid() {
    let srv = Hostile::start();
    for code in [4001, 1000] {
        let (summary, v) = closed_with(&srv.url(&format!("close-{code}")), &[]);
        assert_valid(&v, code);
        assert!(!summary.contains("invalid close codes"), "{summary}");
    }
}

#[test]
fn a_one_byte_close_payload_is_an_invalid_code_and_a_protocol_error() {
    let srv = Hostile::start();
    let (_, v) = closed_with(&srv.url("close-half"), &[]);
    let w = &v["websocket"];
    // No code to record: herd fails the connection with 1002.
    assert_eq!(w["close_codes_received"], json!({}), "{w}");
    assert_eq!(w["close_codes_sent"], json!({"1002": 2}), "{w}");
    assert_eq!(u(&v, "websocket.invalid_close_codes"), 2, "{w}");
    assert_eq!(u(&v, "errors.protocol"), 2, "{v}");
}

#[test]
fn over_wss_the_code_comes_from_the_decrypted_stream() {
    let d = tempfile::tempdir().unwrap();
    let certs = Certs::generate(d.path());
    let srv = Hostile::start();
    let proxy = nginx_tls(d.path(), &srv.addr, &certs.good, "");
    let ca = certs.ca.to_str().unwrap();
    let (summary, v) = closed_with(&format!("wss://{}/close-999/{{conv}}/{{member}}", proxy.addr), &["--ca", ca]);
    assert_invalid(&v, &summary, 999);
    assert_eq!(u(&v, "tls.handshakes"), 4, "{v}");
    let (_, v) = closed_with(&format!("wss://{}/close-4001/{{conv}}/{{member}}", proxy.addr), &["--ca", ca]);
    assert_valid(&v, 4001);
}
