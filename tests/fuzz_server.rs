//! Property tests against a live `herd serve` on loopback: arbitrary HTTP heads, and arbitrary
//! frame sequences after a valid upgrade (any opcode, fragmentation, masking, claimed lengths,
//! payload bytes). The server must answer or hang up, and keep serving everyone else.
//!
//! `HERD_FUZZ_CASES=N` raises the case counts (benches/fuzz.sh does).

mod common;
use common::raw;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("HERD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

/// Writes `bytes`, half-closes, and reads until the server hangs up. False if it did not
/// within a generous bound.
fn send_and_wait_for_hangup(mut s: TcpStream, bytes: &[u8]) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }
}

fn still_serving(srv: &std::cell::RefCell<ServeProc>) -> bool {
    let alive = srv.borrow_mut().child.try_wait().unwrap().is_none();
    alive && http_get(&srv.borrow().addr, "/healthz").0 == 200
}

#[derive(Debug, Clone)]
struct FuzzFrame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    /// Claimed length differs from the payload's (truncated or padded stream).
    claim_extra: Option<u16>,
    payload: Vec<u8>,
}

fn fuzz_frame() -> impl Strategy<Value = FuzzFrame> {
    let payload = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "\\PC{0,100}".prop_map(String::into_bytes),
        (0usize..70_000).prop_map(|n| vec![b'a'; n]),
    ];
    (
        any::<bool>(),
        0u8..8,
        prop_oneof![0u8..16, Just(1u8), Just(8u8), Just(9u8)],
        prop_oneof![Just(true), Just(true), Just(false)],
        proptest::option::weighted(0.1, any::<u16>()),
        payload,
    )
        .prop_map(|(fin, rsv, opcode, masked, claim_extra, payload)| FuzzFrame {
            fin,
            rsv,
            opcode,
            masked,
            claim_extra,
            payload,
        })
}

fn encode(f: &FuzzFrame) -> Vec<u8> {
    let claimed = f.payload.len() as u64 + f.claim_extra.map_or(0, |e| e as u64);
    let mut out = raw::header_bytes(f.fin, f.opcode, claimed, f.masked);
    out[0] |= (f.rsv & 7) << 4;
    out.extend_from_slice(&f.payload);
    out
}

#[test]
fn arbitrary_frames_never_knock_the_server_over() {
    let srv = std::cell::RefCell::new(ServeProc::start(&["--max-frame", "64k", "-t", "1"]));
    let addr = srv.borrow().addr.clone();
    let mut runner = TestRunner::new(cases(32));
    let frames = proptest::collection::vec(fuzz_frame(), 1..6);
    let r = runner.run(&frames, |frames| {
        let (s, head) = raw::client(&addr, "/conv/fuzz").unwrap();
        prop_assert_eq!(raw::status(&head), 101);
        // A well-behaved member of the same room, which must keep working throughout.
        let (mut peer, _) = raw::client(&addr, "/conv/fuzz").unwrap();
        let bytes: Vec<u8> = frames.iter().flat_map(encode).collect();
        prop_assert!(send_and_wait_for_hangup(s, &bytes), "the server neither answered nor hung up");
        prop_assert!(still_serving(&srv));
        let (mut talker, _) = raw::client(&addr, "/conv/fuzz").unwrap();
        raw::write_frame(&mut talker, raw::TEXT, b"still here", true).unwrap();
        loop {
            let f = raw::read_frame(&mut peer, 1 << 20).unwrap();
            if f.opcode == raw::TEXT && f.payload == b"still here" {
                break;
            }
        }
        Ok(())
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

#[test]
fn arbitrary_http_heads_get_an_answer_or_a_hangup() {
    let srv = std::cell::RefCell::new(ServeProc::start(&["--handshake-timeout", "2s", "-t", "1"]));
    let addr = srv.borrow().addr.clone();
    let mut runner = TestRunner::new(cases(64));
    let heads = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        (
            "(GET|POST|get|\\PC{0,5}) (/conv/[0-9a-z]{0,3}|/metrics|/healthz|/\\PC{0,20}) HTTP/1\\.[01x]",
            proptest::collection::vec("[A-Za-z-]{1,20}: \\PC{0,30}", 0..40)
        )
            .prop_map(|(l, h)| format!("{l}\r\n{}\r\n\r\n", h.join("\r\n")).into_bytes()),
    ];
    let r = runner.run(&heads, |head| {
        let s = TcpStream::connect(&addr).unwrap();
        prop_assert!(send_and_wait_for_hangup(s, &head), "the server neither answered nor hung up");
        prop_assert!(still_serving(&srv));
        Ok(())
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}
