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

/// Mostly valid frames (masked, no reserved bits, known opcodes, honest lengths), so that most
/// sequences get past the first header into the server's frame handling; each field is broken
/// on its own now and then.
fn fuzz_frame() -> impl Strategy<Value = FuzzFrame> {
    let payload = prop_oneof![
        6 => "\\PC{0,100}".prop_map(String::into_bytes),
        2 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => (0usize..70_000).prop_map(|n| vec![b'a'; n]),
    ];
    (
        prop_oneof![8 => Just(true), 1 => Just(false)],
        prop_oneof![12 => Just(0u8), 1 => 1u8..8],
        prop_oneof![6 => Just(1u8), 1 => Just(2u8), 1 => Just(0u8), 1 => Just(8u8), 1 => Just(9u8), 1 => Just(10u8), 1 => 0u8..16],
        prop_oneof![12 => Just(true), 1 => Just(false)],
        proptest::option::weighted(0.05, any::<u16>()),
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

impl FuzzFrame {
    /// A frame RFC 6455 allows a client to send first: masked, no reserved bits, honest length,
    /// a data or control opcode (control frames final and at most 125 bytes), within the
    /// server's --max-frame (64KiB).
    fn valid_first(&self) -> bool {
        let control = self.opcode >= 8;
        self.masked
            && self.rsv == 0
            && self.claim_extra.is_none()
            && matches!(self.opcode, 1 | 2 | 8 | 9 | 10)
            && (!control || (self.fin && self.payload.len() <= 125))
            && self.payload.len() <= 64 * 1024
    }

    /// A complete text message the server relays to the room.
    fn relayed_text(&self) -> Option<&[u8]> {
        (self.valid_first() && self.opcode == 1 && self.fin && std::str::from_utf8(&self.payload).is_ok())
            .then_some(&self.payload[..])
    }
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
    // 64KiB, the bound `valid_first` allows (`64k` is 64,000: a 64,001-byte message is refused).
    let srv = std::cell::RefCell::new(ServeProc::start(&["--max-frame", "64KiB", "-t", "1"]));
    let addr = srv.borrow().addr.clone();
    let n = cases(96).cases;
    let mut runner = TestRunner::new(cases(96));
    let frames = proptest::collection::vec(fuzz_frame(), 1..6);
    let (valid_first, relayed) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let r = runner.run(&frames, |frames| {
        let (s, head) = raw::client(&addr, "/conv/fuzz").unwrap();
        prop_assert_eq!(raw::status(&head), 101);
        // A well-behaved member of the same room, which must keep working throughout.
        let (mut peer, _) = raw::client(&addr, "/conv/fuzz").unwrap();
        let bytes: Vec<u8> = frames.iter().flat_map(encode).collect();
        prop_assert!(send_and_wait_for_hangup(s, &bytes), "the server neither answered nor hung up");
        prop_assert!(still_serving(&srv));
        valid_first.set(valid_first.get() + u32::from(frames[0].valid_first()));
        // A first frame that is a whole text message reaches the room before anything later.
        let mut want = frames[0].relayed_text().map(<[u8]>::to_vec);
        let (mut talker, _) = raw::client(&addr, "/conv/fuzz").unwrap();
        raw::write_frame(&mut talker, raw::TEXT, b"still here", true).unwrap();
        loop {
            let f = raw::read_frame(&mut peer, 1 << 20).unwrap();
            if f.opcode == raw::TEXT && want.as_deref() == Some(&f.payload[..]) {
                want = None;
                relayed.set(relayed.get() + 1);
            }
            if f.opcode == raw::TEXT && f.payload == b"still here" {
                break;
            }
        }
        prop_assert!(want.is_none(), "the first message was not relayed: {:?}", &frames[0]);
        Ok(())
    });
    if let Err(e) = r {
        panic!("{e}");
    }
    // Most sequences get past the first header (>= 40%); many have a first message the room
    // receives (>= 10%).
    let (valid_first, relayed) = (valid_first.get(), relayed.get());
    eprintln!("{valid_first} of {n} sequences started with a valid frame, {relayed} relayed their first message");
    assert!(valid_first * 10 >= n * 4, "{valid_first} of {n} sequences started with a valid frame");
    assert!(relayed * 10 >= n, "{relayed} of {n} sequences had their first message relayed");
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
