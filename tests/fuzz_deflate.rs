//! Property tests (proptest) of the permessage-deflate read path, through its public stream API
//! (`ws::deflate::Codec::poll_read`), as a server's bytes reach it in reads of any size: streams
//! of compressed messages (context kept or not, whole or in fragments, pings between) read back
//! as the plain messages; the same streams damaged never panic, and nothing herd passes up
//! carries more than `--max-frame` of inflated payload.
//!
//! Like tests/fuzz_parsers.rs, cases are structured and the property counts which way each case
//! went (read back, refused), asserting each way's share. `HERD_FUZZ_CASES=N` raises the count
//! (benches/fuzz.sh does).

use flate2::{Compress, Compression, FlushCompress};
use futures_lite::io::Cursor;
use herd::ws::deflate::{Codec, Params};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::cell::Cell;

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("HERD_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

const MAX: usize = 2048;

fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![b0];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// A server's stream: messages compressed by one compressor (context kept or reset), each cut
/// into `parts` fragments, a ping after each.
fn server_stream(msgs: &[Vec<u8>], keep: bool, parts: usize) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut wire = Vec::new();
    for m in msgs {
        let mut z = Vec::with_capacity(m.len() + 64);
        let mut rest = &m[..];
        loop {
            let before = c.total_in();
            c.compress_vec(rest, &mut z, FlushCompress::Sync).unwrap();
            rest = &rest[(c.total_in() - before) as usize..];
            if rest.is_empty() && z.len() < z.capacity() {
                break;
            }
            z.reserve(256);
        }
        if z.ends_with(&[0, 0, 0xff, 0xff]) {
            z.truncate(z.len() - 4);
        } else {
            // An empty message right after a flush: zlib writes nothing, and RFC 7692 section
            // 7.2.3.6 has the sender send one byte (an empty stored block's header) instead.
            assert!(z.is_empty() && m.is_empty());
            z.push(0);
        }
        if !keep {
            c.reset();
        }
        let size = z.len().div_ceil(parts).max(1);
        let chunks: Vec<&[u8]> = if z.is_empty() { vec![&z[..]] } else { z.chunks(size).collect() };
        for (i, p) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let b0 = (if last { 0x80 } else { 0 }) | (if i == 0 { 0x41 } else { 0 });
            wire.extend(frame(b0, p));
        }
        wire.extend(frame(0x89, b"ping"));
    }
    wire
}

/// Everything the codec passes up, read `chunk` bytes at a time, and whether it refused.
fn read_all(wire: Vec<u8>, keep: bool, chunk: usize) -> (Vec<u8>, bool) {
    let p = Params { server_no_context_takeover: !keep, ..Params::default() };
    let mut codec = Codec::client(&p, MAX, &[]);
    let mut inner = Cursor::new(wire);
    let mut buf = vec![0u8; chunk];
    let mut out = Vec::new();
    loop {
        let r = futures_lite::future::block_on(std::future::poll_fn(|cx| codec.poll_read(&mut inner, cx, &mut buf)));
        match r {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, true),
        }
    }
}

/// (first byte, payload) of each whole unmasked frame; the rest is ignored.
fn frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    while b.len() >= 2 {
        let (len, head) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize, 10),
            n if n < 126 => (usize::from(n), 2),
            _ => break,
        };
        let head: usize = head + if b[1] & 0x80 != 0 { 4 } else { 0 };
        let Some(end) = head.checked_add(len).filter(|&e| e <= b.len()) else { break };
        v.push((b[0], b[head..end].to_vec()));
        b = &b[end..];
    }
    v
}

fn messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    // Chat-like text: compresses, and repeats across messages (so a kept context is used).
    let msg =
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'~'), Just(b'.'), Just(b'0'), any::<u8>()], 0..400);
    proptest::collection::vec(msg, 1..6)
}

#[test]
fn compressed_streams_read_back_and_damaged_ones_never_panic_or_pass_the_bound() {
    let mut runner = TestRunner::new(cases(200));
    let (read_back, refused, damaged_read) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    let strategy =
        (messages(), any::<bool>(), 1usize..4, 1usize..200, proptest::option::of((any::<usize>(), any::<u8>())));
    runner
        .run(&strategy, |(msgs, keep, parts, chunk, damage)| {
            let mut wire = server_stream(&msgs, keep, parts);
            if let Some((at, x)) = damage {
                let i = at % wire.len();
                wire[i] ^= x | 1;
            }
            let (out, failed) = read_all(wire, keep, chunk);
            let got = frames(&out);
            // Nothing passed up carries more than the bound (pings are 4 bytes).
            prop_assert!(got.iter().all(|(_, p)| p.len() <= MAX), "a frame over {MAX}");
            if damage.is_none() {
                // Reassembled, the data frames are the messages, in order, and no RSV1 is left.
                let mut back: Vec<Vec<u8>> = Vec::new();
                for (b0, p) in got.iter().filter(|(b0, _)| b0 & 0x0f != 0x9) {
                    prop_assert_eq!(b0 & 0x70, 0);
                    if b0 & 0x0f != 0 {
                        back.push(Vec::new());
                    }
                    back.last_mut().expect("a first fragment").extend_from_slice(p);
                }
                prop_assert!(!failed);
                prop_assert_eq!(back, msgs);
                read_back.set(read_back.get() + 1);
            } else if failed {
                refused.set(refused.get() + 1);
            } else {
                damaged_read.set(damaged_read.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    let (read_back, refused) = (read_back.get(), refused.get());
    let total = read_back + refused + damaged_read.get();
    // Both kinds of case were reached: clean streams, and damage the codec refused.
    assert!(read_back * 4 >= total, "read back {read_back} of {total}");
    assert!(refused * 20 >= total, "refused {refused} of {total}");
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), keep: bool, chunk in 1usize..64) {
        let (out, _) = read_all(bytes, keep, chunk);
        prop_assert!(frames(&out).iter().all(|(_, p)| p.len() <= MAX.max(300)));
    }
}
