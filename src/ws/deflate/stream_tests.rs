//! The frame rewriting, without sockets: compressed streams made by a real compressor (with and
//! without context, whole and in fragments) fed at every split point, herd's own writes read
//! back by a server's codec, and refusals.

use super::*;
use flate2::{Compress, Compression, FlushCompress};

fn frame(b0: u8, key: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    write_frame(b0, key, payload, &mut f);
    f
}

/// A peer's compressor: `keep` carries its context across messages, as a server without
/// `server_no_context_takeover` may.
struct Peer {
    c: Compress,
    keep: bool,
}

impl Peer {
    fn new(keep: bool) -> Peer {
        Peer::with_bits(keep, 15)
    }

    fn with_bits(keep: bool, bits: u8) -> Peer {
        Peer { c: Compress::new_with_window_bits(Compression::default(), false, bits), keep }
    }

    /// One message's compressed payload, its tail taken off.
    fn compress(&mut self, msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(msg.len() + 64);
        self.c.compress_vec(msg, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&codec::TAIL));
        out.truncate(out.len() - 4);
        if !self.keep {
            self.c.reset();
        }
        out
    }
}

fn params(server_keeps: bool) -> Params {
    Params { server_no_context_takeover: !server_keeps, ..Params::default() }
}

/// The rewritten bytes a codec holds for its reader (`tx`: for the socket), taken.
fn take(c: &mut Codec, tx: bool) -> Vec<u8> {
    let mut b = c.take_bufs();
    let (out, at) = if tx { (&mut b.tx_out, &mut b.tx_at) } else { (&mut b.rx_out, &mut b.rx_at) };
    let taken = out.split_off(*at);
    (*out, *at) = (Vec::new(), 0);
    c.put_bufs(b);
    taken
}

fn take_rx(c: &mut Codec) -> Vec<u8> {
    take(c, false)
}

fn take_tx(c: &mut Codec) -> Vec<u8> {
    take(c, true)
}

/// Feeds `wire` to a client codec in pieces cut at `cuts`; returns what it put out and its
/// refusal, if any.
fn read_through(c: &mut Codec, wire: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<Failure>) {
    let mut at = 0;
    for &cut in cuts.iter().chain([wire.len()].iter()) {
        c.rx_feed(&wire[at..cut]);
        at = cut;
    }
    (take_rx(c), c.rx_failed)
}

/// A server stream of chat messages, compressed, and the plain frames they stand for.
fn chat_stream(keep: bool) -> (Vec<u8>, Vec<u8>) {
    let mut peer = Peer::new(keep);
    let (mut wire, mut plain) = (Vec::new(), Vec::new());
    for i in 0..4 {
        let msg = format!("~h1.1.{i}.0.{i}.aa.bb~ padding padding padding {i}").into_bytes();
        wire.extend(frame(0xc1, None, &peer.compress(&msg)));
        plain.extend(frame(0x81, None, &msg));
        // A ping between messages goes through as it came.
        wire.extend(frame(0x89, None, b"p"));
        plain.extend(frame(0x89, None, b"p"));
    }
    // An uncompressed message (RSV1 clear) is allowed too.
    wire.extend(frame(0x82, None, &[1, 2, 3]));
    plain.extend(frame(0x82, None, &[1, 2, 3]));
    (wire, plain)
}

#[test]
fn compressed_messages_read_as_plain_frames_at_every_split_point() {
    for keep in [false, true] {
        let (wire, plain) = chat_stream(keep);
        for cut in 0..=wire.len() {
            let mut c = Codec::client(&params(keep), 1 << 20, &[]);
            let (out, failed) = read_through(&mut c, &wire, &[cut]);
            assert_eq!(failed, None);
            assert_eq!(out, plain, "keep {keep}, cut at {cut}");
            // Nothing held once the stream is between messages and read, but the kept history
            // (these messages are shorter than the window: all of them).
            let plain_bytes: usize = split_frames(&plain).iter().filter(|f| f.0 & 0x0f == 1).map(|f| f.1.len()).sum();
            let (history, inflater) = c.holds_context();
            assert_eq!((history >= plain_bytes, history > 0, inflater), (keep, keep, false));
            assert!(!c.holds_buffers());
        }
        // Between messages a connection holds the codec alone (and the kept context): no
        // buffers, so an idle connection in lean mode costs the codec's few bytes.
        assert!(std::mem::size_of::<Codec>() <= 72, "{}", std::mem::size_of::<Codec>());
        // Byte by byte.
        let mut c = Codec::client(&params(keep), 1 << 20, &[]);
        let cuts: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(read_through(&mut c, &wire, &cuts).0, plain);
    }
}

#[test]
fn a_context_kept_across_messages_is_read_with_the_connection_history() {
    // With context kept, a repeated message compresses to a back-reference only: a codec that
    // reset between messages would fail on it, so this checks the inflater is really kept.
    let mut peer = Peer::new(true);
    let msg = b"the same message, twice over, the same message".to_vec();
    let first = peer.compress(&msg);
    let second = peer.compress(&msg);
    assert!(second.len() < first.len() / 2, "{} vs {}", second.len(), first.len());
    let mut wire = frame(0xc1, None, &first);
    wire.extend(frame(0xc1, None, &second));
    let mut plain = frame(0x81, None, &msg);
    plain.extend(frame(0x81, None, &msg));
    let mut c = Codec::client(&params(true), 1 << 20, &[]);
    assert_eq!(read_through(&mut c, &wire, &[]).0, plain);
    // A client told (wrongly) that the server resets cannot read the second message.
    let mut c = Codec::client(&params(false), 1 << 20, &[]);
    let (out, failed) = read_through(&mut c, &wire, &[]);
    assert!(failed.is_some() || out != plain);
}

#[test]
fn the_history_keeps_the_window_and_no_more_over_many_messages() {
    // A 512-byte window, 200 messages of 40-90 bytes that repeat each other: later messages
    // refer back up to the window, and the history never holds more than it plus an eighth.
    let mut peer = Peer::with_bits(true, 9);
    let p = Params { server_max_window_bits: 9, ..Params::default() };
    let mut c = Codec::client(&p, 1 << 20, &[]);
    let mut next = crate::testrand::xorshift(0x41);
    for i in 0..200 {
        // Every 50th message is longer than the window on its own.
        let pad = if i % 50 == 49 { 200 } else { (next() % 12) as usize };
        let msg = format!("~h1.{:x}.{}~ {}", next() % 7, i % 13, "pad ".repeat(pad)).into_bytes();
        c.rx_feed(&frame(0xc1, None, &peer.compress(&msg)));
        assert_eq!(take_rx(&mut c), frame(0x81, None, &msg), "message {i}");
        assert!(c.history.capacity() <= 512 + 64, "{}", c.history.capacity());
        assert!(c.dictionary().len() <= 512);
    }
    assert!(c.history.len() >= 512);
}

#[test]
fn fragmented_compressed_messages_read_as_plain_fragments() {
    for keep in [false, true] {
        let mut peer = Peer::new(keep);
        let msg = b"one message in three fragments, compressed once as a whole".repeat(2);
        let z = peer.compress(&msg);
        let (a, rest) = z.split_at(z.len() / 3);
        let (b, d) = rest.split_at(rest.len() / 2);
        let mut wire = frame(0x41, None, a); // text, RSV1, not final
        wire.extend(frame(0x89, None, b"ping in the middle"));
        wire.extend(frame(0x00, None, b));
        wire.extend(frame(0x80, None, d));
        wire.extend(frame(0xc1, None, &peer.compress(b"after")));
        for cut in 0..=wire.len() {
            let mut c = Codec::client(&params(keep), 1 << 20, &[]);
            let (out, failed) = read_through(&mut c, &wire, &[cut]);
            assert_eq!(failed, None, "keep {keep} cut {cut}");
            // Reassembled by a plain reader, the fragments give the message back.
            let frames = split_frames(&out);
            assert_eq!(frames.len(), 5);
            assert_eq!(frames[0].0 & 0x7f, 0x01);
            assert_eq!(frames[1], (0x89, b"ping in the middle".to_vec()));
            assert_eq!(frames[3].0, 0x80);
            let whole: Vec<u8> = [&frames[0].1[..], &frames[2].1[..], &frames[3].1[..]].concat();
            assert_eq!(whole, msg);
            assert_eq!(frames[4], (0x81, b"after".to_vec()));
            // The fragments' own inflater lived only until the last of them.
            assert!(!c.holds_context().1);
            assert_eq!(c.holds_context().0 > 0, keep);
        }
    }
}

/// (first byte, payload) of each unmasked frame in `b`.
fn split_frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let mut w = Walk::default();
        let (used, h) = w.header(b);
        let h = h.expect("whole header");
        let end = used + h.len as usize;
        v.push((h.b0, b[used..end].to_vec()));
        b = &b[end..];
    }
    v
}

#[test]
fn frames_that_break_the_rules_pass_through_for_tungstenite_to_refuse() {
    let mut peer = Peer::new(false);
    let z = peer.compress(b"x");
    for bad in [
        frame(0xc9, None, b"p"),    // RSV1 on a ping
        frame(0xa1, None, b"rsv2"), // RSV2
        frame(0xc0, None, &z),      // RSV1 on a continuation with no message open
        frame(0x80, None, b"lone"), // a continuation with no message open
    ] {
        let mut c = Codec::client(&params(false), 1 << 20, &[]);
        assert_eq!(read_through(&mut c, &bad, &[1]), (bad.clone(), None));
    }
    // RSV1 on a continuation of a compressed message.
    let mut c = Codec::client(&params(false), 1 << 20, &[]);
    let mut wire = frame(0x41, None, &z);
    let cont = frame(0xc0, None, b"x");
    wire.extend(&cont);
    let (out, failed) = read_through(&mut c, &wire, &[]);
    assert_eq!(failed, None);
    assert!(out.ends_with(&cont));
}

#[test]
fn bombs_and_corrupt_data_are_refused_after_the_frames_before_them() {
    let mut peer = Peer::new(false);
    let good = frame(0xc1, None, &peer.compress(b"fine"));
    let bomb = frame(0xc2, None, &peer.compress(&vec![0u8; 1 << 20]));
    let corrupt = frame(0xc1, None, &[0xff, 0xff, 0xff, 0xff]);
    // A compressed frame longer than the bound is refused on its header alone.
    let mut long = Vec::new();
    Header::write(0xc2, None, 5000, &mut long);
    for (what, bad, want) in
        [("bomb", &bomb, Failure::TooBig), ("corrupt", &corrupt, Failure::Corrupt), ("long", &long, Failure::TooBig)]
    {
        let mut wire = good.clone();
        wire.extend_from_slice(bad);
        wire.extend_from_slice(&good);
        let mut c = Codec::client(&params(false), 4096, &[]);
        let (out, failed) = read_through(&mut c, &wire, &[]);
        assert_eq!(failed, Some(want), "{what}");
        assert_eq!(out, frame(0x81, None, b"fine"), "{what}: only the frame before");
        assert!(c.holds_context() == (0, false) && !c.holds_buffers());
    }
}

#[test]
fn what_herd_writes_is_compressed_and_a_server_codec_reads_it_back() {
    let key = [1, 2, 3, 4];
    let msgs: Vec<Vec<u8>> = vec![b"hello hello hello hello".to_vec(), vec![], b"~h1.2.3~".repeat(40)];
    let mut written = Vec::new();
    let mut plain = Vec::new();
    for m in &msgs {
        written.extend(frame(0x81, Some(key), m));
        plain.extend(frame(0x81, Some(key), m));
        written.extend(frame(0x8a, Some(key), b"pong"));
        plain.extend(frame(0x8a, Some(key), b"pong"));
    }
    for cut in [0, 1, 3, 7, written.len() / 2, written.len() - 1] {
        let mut client = Codec::client(&Params::default(), 1 << 20, &[]);
        client.tx_feed(&written[..cut]);
        client.tx_feed(&written[cut..]);
        let wire = take_tx(&mut client);
        assert!(!client.holds_buffers());
        // Data frames went with RSV1, masked; the big one smaller than it was.
        assert!(wire.len() < written.len(), "cut {cut}");
        let mut server = Codec::server(&Params::default(), 1 << 20, &[]);
        server.rx_feed(&wire);
        assert_eq!(server.rx_failed, None);
        assert_eq!(take_rx(&mut server), plain, "cut {cut}");
    }
}

#[test]
fn a_server_writes_unmasked_compressed_frames_and_a_window_below_nine_sends_plain() {
    let mut server = Codec::server(&params(false), 1 << 20, &[]);
    server.tx_feed(&frame(0x81, None, b"to the client, to the client"));
    let wire = take_tx(&mut server);
    assert_eq!(wire[0], 0xc1);
    assert_eq!(wire[1] & 0x80, 0);
    let mut client = Codec::client(&params(false), 1 << 20, &[]);
    client.rx_feed(&wire);
    assert_eq!(take_rx(&mut client), frame(0x81, None, b"to the client, to the client"));
    // client_max_window_bits=8: raw deflate cannot keep to it, so herd sends uncompressed.
    let p = Params { client_max_window_bits: Some(8), ..Params::default() };
    let mut c = Codec::client(&p, 1 << 20, &[]);
    let f = frame(0x81, Some([9, 9, 9, 9]), b"plain");
    c.tx_feed(&f);
    assert_eq!(take_tx(&mut c), f);
}

#[test]
fn an_empty_message_is_empty_whether_sent_as_one_byte_or_none() {
    let mut peer = Peer::new(true);
    let hello = peer.compress(b"hello hello");
    let again = peer.compress(b"hello hello");
    for empty in [vec![], vec![0u8]] {
        let mut wire = frame(0xc1, None, &hello);
        wire.extend(frame(0xc1, None, &empty));
        wire.extend(frame(0xc1, None, &again));
        let mut c = Codec::client(&params(true), 1 << 20, &[]);
        let mut plain = frame(0x81, None, b"hello hello");
        plain.extend(frame(0x81, None, b""));
        plain.extend(frame(0x81, None, b"hello hello"));
        // The context carries over the empty message: the third refers to the first.
        assert_eq!(read_through(&mut c, &wire, &[]), (plain, None), "{empty:?}");
    }
}

#[test]
fn the_first_bytes_after_the_upgrade_are_rewritten_too() {
    let (wire, plain) = chat_stream(true);
    let mut c = Codec::client(&params(true), 1 << 20, &wire[..10]);
    c.rx_feed(&wire[10..]);
    assert_eq!(take_rx(&mut c), plain);
}

#[test]
fn arbitrary_bytes_never_panic_and_never_exceed_the_bound() {
    let mut next = crate::testrand::xorshift(0xdef1_a7e5_0bad_5eed);
    let mut refused = 0;
    let mut peer = Peer::new(false);
    let seed = frame(0xc1, None, &peer.compress(b"seed message"));
    for _ in 0..4_000 {
        let len = (next() % 80) as usize;
        let mut s: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half start from a valid compressed frame, with bytes flipped.
        if next() % 2 == 0 {
            s = seed.clone();
            let i = (next() % s.len() as u64) as usize;
            s[i] ^= next() as u8;
        }
        let keep = next() % 2 == 0;
        let mut c = Codec::client(&params(keep), 256, &[]);
        let cut = (next() % (s.len() as u64 + 1)) as usize;
        let (out, failed) = read_through(&mut c, &s, &[cut]);
        refused += usize::from(failed.is_some());
        // No frame put out carries more than the bound: inflated ones stop at it, and what
        // passed through is at most the input's 80 bytes.
        let mut rest = &out[..];
        while !rest.is_empty() {
            let mut w = Walk::default();
            let (used, h) = w.header(rest);
            let Some(h) = h else { break };
            let n = (h.len as usize).min(rest.len() - used);
            assert!(n <= 256, "a frame of {n} bytes from {} bytes in", s.len());
            rest = &rest[used + n..];
        }
        let mut w = Codec::client(&params(keep), 256, &[]);
        w.tx_feed(&s);
    }
    assert!(refused > 100, "{refused}");
}
