//! Protocol templates and presets end to end: what herd writes in the upgrade request (URL,
//! headers, tokens, subprotocols), join and keep-alive frames, and chat message envelopes whose
//! marker receivers find inside JSON strings, through a strict relay nobody here wrote
//! (tests/peers/ws_peer.py in chat mode relays every frame verbatim to the other members).

mod common;
use common::peers::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// Accepts `count` connections, records each request head, answers 403.
fn capture_requests(count: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let mut heads = vec![];
        for _ in 0..count {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![];
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            heads.push(String::from_utf8_lossy(&buf).into_owned());
        }
        heads
    });
    (addr, h)
}

#[test]
fn upgrade_requests_carry_headers_tokens_and_subprotocols() {
    let (addr, heads) = capture_requests(2);
    let d = tempfile::tempdir().unwrap();
    let tokens = d.path().join("tokens.txt");
    std::fs::write(&tokens, "tok-zero\ntok-one\n").unwrap();
    let url = format!("ws://{addr}/chat?room={{conv}}&access_token={{token}}");
    let (o, v) = herd(
        d.path(),
        &[
            "--url",
            &url,
            "-c",
            "1",
            "-k",
            "2",
            "--rate",
            "0",
            "-d",
            "1s",
            "--tokens",
            tokens.to_str().unwrap(),
            "--header",
            "Authorization: Bearer {token}",
            "--header",
            "X-Chat-User:user-{user}",
            "--subprotocol",
            "chat.v2",
            "--subprotocol",
            "chat.herd",
        ],
    );
    assert_eq!(o.status.code(), Some(69));
    assert_eq!(errors(&v), vec![("handshake_rejected".to_string(), 2)]);
    let mut heads = heads.join().unwrap();
    heads.sort();
    for (i, tok) in ["tok-zero", "tok-one"].iter().enumerate() {
        let h = heads
            .iter()
            .find(|h| h.contains(&format!("X-Chat-User: user-{i}\r\n")))
            .unwrap_or_else(|| panic!("{heads:?}"));
        assert!(h.starts_with(&format!("GET /chat?room=0&access_token={tok} HTTP/1.1\r\n")), "{h}");
        assert!(h.contains(&format!("\r\nAuthorization: Bearer {tok}\r\n")), "{h}");
        assert!(h.contains("\r\nSec-WebSocket-Protocol: chat.v2, chat.herd\r\n"), "{h}");
        assert!(!h.to_ascii_lowercase().contains("sec-websocket-extensions"), "herd never offers compression: {h}");
    }
    // Header values and tokens stay out of the results.
    let p = &v["scenario"]["protocol"];
    assert_eq!(p["headers"], json!(["Authorization", "X-Chat-User"]));
    assert!(!v.to_string().contains("tok-zero"));
}

/// Action Cable's frames through a plain relay: the subscribe frames reach other members as
/// frames without a marker (ignored, as the preset says), and every message is found inside the
/// JSON string that is itself inside a JSON string.
#[test]
fn actioncable_frames_through_a_relay_account_exactly() {
    let peer = Peer::ws(Impl::Py, "chat", &[]);
    let url = peer.url("/conv/{conv}");
    let d = tempfile::tempdir().unwrap();
    // The relay selects no subprotocol and sends no welcome or confirmation: clear the
    // preset's subprotocol, and join with its subscribe frame alone.
    let v = herd_ok(
        d.path(),
        &[
            "--target",
            "actioncable",
            "--subprotocol",
            "",
            "--join",
            r#"{"command":"subscribe","identifier":"{\"channel\":\"ChatChannel\",\"room\":\"{conv}\"}"}"#,
            "--url",
            &url,
            "-c",
            "3",
            "-k",
            "3",
            "--rate",
            "5",
            "-d",
            "1s",
        ],
    );
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    // Each subscribe frame reaches at most the two other members of its conversation.
    assert!(n(&v, "websocket.unmarked_frames") <= 9 * 2, "{}", v["websocket"]);
    let r = peer.stop();
    let joins_and_messages = n(&v, "messages.sent") + 9;
    assert_eq!(r["text_received"], json!(joins_and_messages), "{r}");
}

/// Phoenix's frames, with its heartbeat frame as the keep-alive every 100 ms.
#[test]
fn phoenix_frames_and_heartbeats_through_a_relay() {
    let peer = Peer::ws(Impl::Py, "chat", &[]);
    let url = peer.url("/conv/{conv}");
    let d = tempfile::tempdir().unwrap();
    let v = herd_ok(
        d.path(),
        &[
            "--target",
            "phoenix",
            // The relay sends no phx_reply: join with the preset's phx_join frame alone.
            "--join",
            r#"["1","1","room:{conv}","phx_join",{}]"#,
            "--ping-interval",
            "100ms",
            "--url",
            &url,
            "-c",
            "2",
            "-k",
            "3",
            "--rate",
            "5",
            "-d",
            "1s",
        ],
    );
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    let heartbeats = n(&v, "websocket.pings_sent");
    assert!(heartbeats >= 6 * 5, "{}", v["websocket"]);
    assert_eq!(n(&v, "websocket.pongs_received"), 0, "heartbeat frames are not WebSocket pings");
    let r = peer.stop();
    assert_eq!(r["client_pings_received"], json!(0), "{r}");
    assert_eq!(r["text_received"], json!(n(&v, "messages.sent") + 6 + heartbeats), "{r}");
}

#[test]
fn protocol_mistakes_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    for (args, says) in [
        (vec!["--target", "nchan"], "needs --url"),
        (vec!["--target", "irc", "--url", "ws://127.0.0.1:9/"], "unknown target"),
        (vec!["--url", "ws://127.0.0.1:9/", "--send", "{\"text\":\"{body}\"}"], "unknown placeholder '{body}'"),
        (vec!["--url", "ws://127.0.0.1:9/", "--header", "X-T: {token}"], "--tokens"),
        (vec!["--url", "ws://127.0.0.1:9/?t={token}", "--tokens", "/nonexistent/tokens"], "--tokens /nonexistent"),
        (vec!["--url", "ws://127.0.0.1:9/", "--max-frame", "1000", "--size", "2000"], "--max-frame"),
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_herd"))
            .arg("run")
            .args(&args)
            .args(["-c", "1", "-k", "2", "-d", "1s", "-q"])
            .current_dir(d.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
