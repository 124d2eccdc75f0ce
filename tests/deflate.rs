//! permessage-deflate (`--deflate browser|lean`) against real servers that compress: PyPI
//! `websockets` (deflate on, context kept by default), npm `ws` with `perMessageDeflate: true`,
//! and `herd serve --deflate`, each with exact accounting, whole and fragmented compressed
//! messages; then a hostile server that sets RSV1 without negotiating it, sends corrupt deflate
//! data, or a bomb past `--max-frame` (whole or in fragments): each counted, none crashing herd.

mod common;
use common::peers::*;
use common::raw;
use common::ServeProc;
use flate2::{Compress, Compression, FlushCompress};
use serde_json::{json, Value};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BROWSER: &str = "permessage-deflate; client_max_window_bits";
const LEAN: &str = "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
                    server_max_window_bits=10; client_max_window_bits=10";

/// What a server accepting the lean offer whole answers, as herd reads it back.
const LEAN_ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                           server_max_window_bits=10; client_max_window_bits=10";

/// What `herd serve --deflate` answers the lean offer: it does not limit a client's window.
const HERD_LEAN_ANSWER: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10";

/// `-c 3 -k 3`.
const CONNS: u64 = 9;

fn run(url: &str, mode: &str, extra: &[&str]) -> Value {
    let d = tempfile::tempdir().unwrap();
    let mut a = vec!["--url", url, "-c", "3", "-k", "3", "-d", "1s", "--drain", "3s", "--rate", "5", "--deflate", mode];
    a.extend_from_slice(extra);
    herd_ok(d.path(), &a)
}

/// Every connection got `answer`, every message herd sent went compressed and smaller, and
/// `compressed` of the deliveries came compressed (all of them unless the server skips some).
fn assert_compressed(v: &Value, answer: &str, all_received: bool) {
    let z = &v["websocket"]["deflate"];
    let offered = if answer.contains("no_context") { LEAN } else { BROWSER };
    assert_eq!(z["offered"], json!(offered), "{z}");
    assert_eq!(z["answers"], json!({ answer: CONNS }), "{z}");
    let sent = n(v, "messages.sent");
    assert_eq!(n(z, "sent.messages"), sent, "{z}");
    assert!(n(z, "sent.wire_bytes") < n(z, "sent.bytes"), "{z}");
    assert_eq!(n(z, "sent.bytes"), sent * n(v, "scenario.size"), "{z}");
    if all_received {
        assert_eq!(n(z, "received.messages"), n(v, "messages.delivered"), "{z}");
        assert!(n(z, "received.wire_bytes") < n(z, "received.bytes"), "{z}");
    }
}

/// PyPI websockets answers with 12-bit windows and keeps its context across messages.
const PY_BROWSER: &str = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12";

fn third_party(which: Impl, mode: &str) {
    let peer = Peer::ws(which, mode, &["--compression", "deflate"]);
    let url = peer.url("/conv/{conv}?user={user}");
    let browser = run(&url, "browser", &[]);
    assert_exact(&browser);
    assert_eq!(errors(&browser), vec![]);
    let answer = if which == Impl::Py { PY_BROWSER } else { "permessage-deflate" };
    // No server_no_context_takeover in the answer: the server keeps its context, and herd reads
    // every message with its connection's inflater.
    assert!(!answer.contains("server_no_context_takeover"));
    assert_compressed(&browser, answer, true);
    // npm ws compresses a message (its first fragment) under 1 KiB only when it keeps its
    // context; its fragment mode cuts a message in three.
    let size = if which == Impl::Js { "4096" } else { "128" };
    let lean = run(&url, "lean", &["--size", size]);
    assert_exact(&lean);
    assert_eq!(errors(&lean), vec![]);
    assert_compressed(&lean, LEAN_ANSWER, true);
    if which == Impl::Py {
        // Same messages, and the server's kept context makes them smaller on the wire than when
        // each stands alone: its messages referred to earlier ones, and herd read them.
        let ratio = |v: &Value| {
            let z = &v["websocket"]["deflate"]["received"];
            n(z, "wire_bytes") as f64 / n(z, "bytes") as f64
        };
        assert!(ratio(&browser) < ratio(&lean), "{} vs {}", ratio(&browser), ratio(&lean));
    }
    let r = peer.stop();
    assert_eq!(r["offered_extensions"], json!({ BROWSER: CONNS, LEAN: CONNS }), "{r}");
    if mode == "fragment" {
        let delivered = n(&browser, "messages.delivered") + n(&lean, "messages.delivered");
        assert_eq!(r["fragmented_messages_sent"], json!(delivered), "{r}");
    }
}

#[test]
fn python_websockets_relays_compressed_messages_exactly() {
    third_party(Impl::Py, "chat");
}

#[test]
fn python_websockets_fragmented_compressed_messages_are_exact() {
    third_party(Impl::Py, "fragment");
}

#[test]
fn node_ws_relays_compressed_messages_exactly() {
    third_party(Impl::Js, "chat");
}

#[test]
fn node_ws_fragmented_compressed_messages_are_exact() {
    third_party(Impl::Js, "fragment");
}

#[test]
fn herd_serve_deflate_and_the_embedded_server_compress_both_ways() {
    let serve = ServeProc::start(&["--deflate"]);
    for (mode, answer) in [
        ("browser", "permessage-deflate"),
        (
            "lean",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
        ),
    ] {
        let v = run(&serve.url(), mode, &[]);
        assert_exact(&v);
        assert_eq!(errors(&v), vec![]);
        assert_compressed(&v, answer, true);
        // The embedded server accepts compression when the run offers it.
        let d = tempfile::tempdir().unwrap();
        let e = herd_ok(d.path(), &["-c", "3", "-k", "3", "-d", "1s", "--rate", "5", "--deflate", mode]);
        assert_exact(&e);
        assert_compressed(&e, answer, true);
    }
    // Over TLS the codec sits on the plaintext stream, as the close-code tracker does.
    let d = tempfile::tempdir().unwrap();
    let tls =
        herd_ok(d.path(), &["--embedded-tls", "-c", "3", "-k", "3", "-d", "1s", "--rate", "5", "--deflate", "browser"]);
    assert_exact(&tls);
    assert_compressed(&tls, "permessage-deflate", true);
    // Without --deflate, herd serve declines: the connections run uncompressed.
    let plain = ServeProc::start(&[]);
    let v = run(&plain.url(), "browser", &[]);
    assert_exact(&v);
    let z = &v["websocket"]["deflate"];
    assert_eq!(z["answers"], json!({ "declined": CONNS }), "{z}");
    assert_eq!((n(z, "sent.messages"), n(z, "received.messages")), (0, 0), "{z}");
}

/// One message's raw deflate data, as a server compresses it (the tail taken off).
fn compressed(msg: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(msg.len() + 1024);
    c.compress_vec(msg, &mut out, FlushCompress::Sync).unwrap();
    out.truncate(out.len() - 4);
    out
}

/// A server that answers (or not) with permessage-deflate and then sends one bad thing: paths
/// `/{mode}/{conv}`. It records the close code each connection got from herd.
struct Hostile {
    addr: String,
    codes: Arc<Mutex<Vec<Option<u16>>>>,
    _accept: std::thread::JoinHandle<()>,
}

impl Hostile {
    fn start(conns: usize) -> Hostile {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let codes = Arc::new(Mutex::new(Vec::new()));
        let c = codes.clone();
        let accept = std::thread::spawn(move || {
            for s in l.incoming().take(conns) {
                let c = c.clone();
                let Ok(s) = s else { continue };
                std::thread::spawn(move || {
                    let code = serve_one(s);
                    c.lock().unwrap().push(code);
                });
            }
        });
        Hostile { addr, codes, _accept: accept }
    }
}

fn serve_one(mut s: TcpStream) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = raw::read_head(&mut s).ok()?;
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let mode = path.trim_start_matches('/').split('/').next().unwrap_or("").to_string();
    let key = raw::header(&head, "sec-websocket-key").unwrap_or_default();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let ext = if mode == "rsv1" { "" } else { "Sec-WebSocket-Extensions: permessage-deflate\r\n" };
    write!(
        s,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{ext}\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    let frame = |b0: u8, payload: &[u8], out: &mut Vec<u8>| {
        let mut f = raw::frame(b0 & 0x0f, payload, false);
        f[0] = b0;
        out.extend(f);
    };
    match mode.as_str() {
        // Valid compressed data, but nothing was negotiated.
        "rsv1" => frame(0xc1, &compressed(b"hello"), &mut out),
        "corrupt" => frame(0xc1, &[0xff, 0xff, 0xff, 0xff, 0x00], &mut out),
        // 8 MiB of zeros in about 8 KiB.
        "bomb" => frame(0xc2, &compressed(&vec![0u8; 8 << 20]), &mut out),
        // The same, in fragments of 1 KiB: the bound holds across a message's frames.
        "fragbomb" => {
            let z = compressed(&vec![0u8; 8 << 20]);
            let parts: Vec<&[u8]> = z.chunks(1024).collect();
            for (i, p) in parts.iter().enumerate() {
                let b0 = match (i == 0, i + 1 == parts.len()) {
                    (true, _) => 0x42,
                    (false, true) => 0x80,
                    (false, false) => 0x00,
                };
                frame(b0, p, &mut out);
            }
        }
        _ => return None,
    }
    // The write may fail once herd has failed the connection and closed it.
    let _ = s.write_all(&out);
    let code = raw::wait_close(&mut s);
    let _ = raw::write_frame(&mut s, raw::CLOSE, &raw::close_payload(code.unwrap_or(1000), ""), false);
    code
}

#[test]
fn a_hostile_server_is_counted_by_category_and_never_crashes_herd() {
    for (mode, category, code) in [
        ("rsv1", "reserved_bits", 1002),
        ("corrupt", "deflate_corrupt", 1007),
        ("bomb", "frame_too_large", 1009),
        ("fragbomb", "frame_too_large", 1009),
    ] {
        let conns = 4;
        let server = Hostile::start(conns);
        let url = format!("ws://{}/{mode}/{{conv}}", server.addr);
        let d = tempfile::tempdir().unwrap();
        let (out, v) = herd(
            d.path(),
            &[
                "--url",
                &url,
                "-c",
                "2",
                "-k",
                "2",
                "--rate",
                "0",
                "-d",
                "1s",
                "--deflate",
                "browser",
                "--max-frame",
                "64KiB",
            ],
        );
        assert!(out.status.code().is_some(), "{mode}: herd was killed: {:?}", out.status);
        assert_eq!(errors(&v), vec![(category.to_string(), conns as u64)], "{mode}");
        assert_eq!(v["websocket"]["close_codes_sent"], json!({ code.to_string(): conns }), "{mode}");
        // The server saw herd's close frame with that code on every connection.
        common::wait_for("the hostile server's records", Duration::from_secs(5), || {
            server.codes.lock().unwrap().len() == conns
        });
        assert_eq!(*server.codes.lock().unwrap(), vec![Some(code); conns], "{mode}");
    }
}

/// A raw client of `herd serve --deflate` offering `offer`: the stream and the answer's head.
fn raw_client(addr: &str, path: &str, offer: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    )
    .unwrap();
    let head = raw::read_head(&mut s).unwrap();
    (s, head)
}

/// A masked client frame with RSV1 (a zero mask leaves the payload as is).
fn compressed_frame(b0: u8, z: &[u8]) -> Vec<u8> {
    let mut f = raw::header_bytes(true, b0 & 0x0f, z.len() as u64, true);
    f[0] = b0;
    f.extend_from_slice(z);
    f
}

#[test]
fn herd_serve_relays_compressed_and_refuses_bombs_and_corrupt_data_from_clients() {
    let serve = ServeProc::start(&["--deflate", "--max-frame", "64KiB"]);
    let (mut a, head) = raw_client(&serve.addr, "/conv/x", LEAN);
    assert_eq!(raw::header(&head, "sec-websocket-extensions").as_deref(), Some(HERD_LEAN_ANSWER));
    let (mut b, _) = raw_client(&serve.addr, "/conv/x", BROWSER);
    // A compressed message from a is relayed to b, compressed again for b.
    let msg = b"hello hello hello hello";
    a.write_all(&compressed_frame(0xc1, &compressed(msg))).unwrap();
    let f = raw::read_frame(&mut b, 1 << 16).unwrap();
    assert_eq!(f.opcode, raw::TEXT);
    let mut d = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(1024);
    let mut z = f.payload.clone();
    z.extend_from_slice(&[0, 0, 0xff, 0xff]);
    d.decompress_vec(&z, &mut out, flate2::FlushDecompress::Sync).unwrap();
    assert_eq!(out, msg);
    // A bomb: closed with 1009; corrupt data: 1007.
    a.write_all(&compressed_frame(0xc1, &compressed(&vec![b'a'; 1 << 20]))).unwrap();
    assert_eq!(raw::wait_close(&mut a), Some(1009));
    b.write_all(&compressed_frame(0xc1, &[0xff, 0xff, 0xff])).unwrap();
    assert_eq!(raw::wait_close(&mut b), Some(1007));
}
