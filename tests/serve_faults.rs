//! herd serve against bad clients: slow or oversized handshakes, plain HTTP, oversized frames,
//! invalid UTF-8, too many connections, a consumer that stops reading, and SIGTERM.

mod common;
use common::raw::{self, TEXT};
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn metric(srv: &ServeProc, name: &str) -> f64 {
    srv.metrics().get(name).copied().unwrap_or_else(|| panic!("no {name}"))
}

/// Sends raw bytes, returns the response head's status (0 if the server closed without one).
fn raw_request(addr: &str, bytes: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    raw::read_head(&mut s).map(|h| raw::status(&h)).unwrap_or(0)
}

#[test]
fn a_client_that_never_finishes_its_request_is_dropped() {
    let srv = ServeProc::start(&["--handshake-timeout", "1s"]);
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /conv/1 HTTP/1.1\r\nHost: x\r\n").unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the server to hang up");
    assert!(t.elapsed() < Duration::from_secs(10), "dropped after {:?}", t.elapsed());
    assert_eq!(metric(&srv, "herd_server_handshakes_failed_total"), 1.0);
    assert_eq!(http_get(&srv.addr, "/healthz").0, 200, "still serving");
}

#[test]
fn requests_get_proper_http_answers() {
    let srv = ServeProc::start(&[]);
    let big = format!("GET /conv/1 HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(raw_request(&srv.addr, big.as_bytes()), 431);
    assert_eq!(raw_request(&srv.addr, b"POST /conv/1 HTTP/1.1\r\nHost: x\r\n\r\n"), 405);
    assert_eq!(raw_request(&srv.addr, b"\x16\x03\x01 not http at all\r\n\r\n"), 400);
    assert_eq!(raw_request(&srv.addr, b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    assert_eq!(raw_request(&srv.addr, b"GET /conv/1 HTTP/1.1\r\nHost: x\r\n\r\n"), 426);
    let old = b"GET /conv/1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    assert_eq!(raw_request(&srv.addr, old), 400);
    // Each of the six answers above, none of them an upgrade.
    assert_eq!(metric(&srv, "herd_server_handshakes_failed_total"), 6.0);
    assert_eq!(http_get(&srv.addr, "/healthz").0, 200);
}

#[test]
fn oversized_frames_close_with_1009_and_invalid_utf8_with_1007() {
    let srv = ServeProc::start(&["--max-frame", "1k"]);
    let (mut s, head) = raw::client(&srv.addr, "/conv/7").unwrap();
    assert_eq!(raw::status(&head), 101);
    raw::write_frame(&mut s, TEXT, &[b'x'; 2000], true).unwrap();
    assert_eq!(raw::wait_close(&mut s), Some(1009));

    let (mut s, _) = raw::client(&srv.addr, "/conv/7").unwrap();
    raw::write_frame(&mut s, TEXT, b"caf\xc3 \xff", true).unwrap();
    assert_eq!(raw::wait_close(&mut s), Some(1007));

    let (mut s, _) = raw::client(&srv.addr, "/conv/7").unwrap();
    raw::write_frame(&mut s, raw::BINARY, b"bin", true).unwrap();
    assert_eq!(raw::wait_close(&mut s), Some(1003), "binary frames are refused");

    assert_eq!(metric(&srv, "herd_server_frames_too_large_total"), 1.0);
    assert_eq!(metric(&srv, "herd_server_invalid_utf8_total"), 1.0);
}

#[test]
fn connections_beyond_the_limit_are_refused_with_503_and_counted() {
    let srv = ServeProc::start(&["--max-connections", "2"]);
    let (a, h1) = raw::client(&srv.addr, "/conv/1").unwrap();
    let (_b, h2) = raw::client(&srv.addr, "/conv/1").unwrap();
    assert_eq!((raw::status(&h1), raw::status(&h2)), (101, 101));
    let (_, h3) = raw::client(&srv.addr, "/conv/1").unwrap();
    assert_eq!(raw::status(&h3), 503);
    assert_eq!(metric(&srv, "herd_server_connections_refused_total"), 1.0);
    // Once one leaves, there is room again.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, h) = raw::client(&srv.addr, "/conv/1").unwrap();
        if raw::status(&h) == 101 {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_slow_consumer_is_dropped_and_the_room_keeps_its_latency() {
    let srv = ServeProc::start(&["--queue", "32"]);
    // Joins room 0 with a small receive buffer and never reads.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&srv.addr.parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    let mut slow: TcpStream = sock.into();
    write!(
        slow,
        "GET /conv/0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    assert_eq!(raw::status(&raw::read_head(&mut slow).unwrap()), 101);

    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    // 2 senders x 100/s x 32 KiB into room 0: 6.4 MB/s, more than the slow member's buffers.
    let (_, v) = run_herd(
        dir.path(),
        &["--url", &url, "-c", "1", "-k", "4", "--senders", "2", "--rate", "100", "--size", "32k", "-d", "4s"],
    );
    assert_eq!(metric(&srv, "herd_server_slow_consumers_closed_total"), 1.0);
    assert!(metric(&srv, "herd_server_messages_dropped_total{reason=\"slow_consumer\"}") >= 32.0);
    // herd's own members got everything, in good time.
    assert_eq!(u(&v, "messages.missed"), 0, "{}", v["messages"]);
    assert_eq!(u(&v, "messages.delivered"), u(&v, "messages.sent") * 3);
    let p99 = f(&v, "latency.corrected.p99_ms");
    assert!(p99 < 1000.0, "p99 {p99} ms");
    // The slow member's connection ends: with 1008 if the close frame could still be written
    // (it is queued behind what the blocked write left), otherwise by the end of TCP. A read
    // that times out means it did not end.
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // Some(code) for a close frame, None for the end of TCP.
    let ended: Option<Option<u16>> = loop {
        match raw::read_frame(&mut slow, 1 << 24) {
            Ok(fr) if fr.opcode == raw::CLOSE => break Some(fr.close_code()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("the slow consumer's connection never ended: {e}")
            }
            Err(_) => break None,
        }
    };
    assert!(matches!(ended, None | Some(Some(1008))), "ended with {ended:?}");
}

#[test]
fn sigterm_closes_every_connection_with_1001_and_exits() {
    let mut srv = ServeProc::start(&[]);
    let mut clients: Vec<TcpStream> =
        (0..3).map(|i| raw::client(&srv.addr, &format!("/conv/{i}")).unwrap().0).collect();
    signal(&srv.child, libc::SIGTERM);
    for c in clients.iter_mut() {
        assert_eq!(raw::wait_close(c), Some(1001));
        let _ = raw::write_frame(c, raw::CLOSE, &raw::close_payload(1001, ""), true);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "herd serve did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}

/// A frame cut short and then the client's FIN, arriving together: the server reads the partial
/// frame, and must still see the end of the stream (no further readiness edge comes for it) and
/// hang up at once rather than wait for bytes that cannot come.
#[test]
fn truncated_frame_then_fin_is_hung_up_at_once() {
    let srv = ServeProc::start(&["-t", "1"]);
    let (mut s, head) = raw::client(&srv.addr, "/conv/cut").unwrap();
    assert_eq!(raw::status(&head), 101);
    let mut bytes = raw::header_bytes(true, TEXT, 10, true);
    bytes.extend_from_slice(b"abcde");
    s.write_all(&bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let ended = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => break !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    };
    assert!(ended, "the server kept the connection open for {:?} after the client's FIN", started.elapsed());
}
