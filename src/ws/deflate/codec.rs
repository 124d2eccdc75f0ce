//! One message's payload through raw deflate (RFC 7692 section 7.2): compressing with a sync
//! flush and its empty block's `00 00 ff ff` taken off, inflating with that tail put back and
//! the output bounded, so a small frame cannot inflate past `--max-frame` (a decompression
//! bomb stops at the bound plus one byte). The contexts nothing needs between messages (every
//! compressor of herd's, the inflater of a peer that resets its own) are per thread, so per
//! core: one of each, not one per connection.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;

/// Why a compressed message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// It inflates past the limit (`--max-frame`): closed with 1009.
    TooBig,
    /// Not valid deflate data: closed with 1007.
    Corrupt,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Failure::TooBig => "compressed message inflates past --max-frame",
            Failure::Corrupt => "corrupt permessage-deflate data",
        })
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// As the I/O error a stream returns, for the connection's error path to recognise.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }

    /// The failure an I/O error carries, if it is one of these.
    pub fn of(e: &std::io::Error) -> Option<Failure> {
        e.get_ref().and_then(|i| i.downcast_ref::<Failure>()).copied()
    }
}

/// What ends every compressed message before its sender takes it off.
pub const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Inflates `input` into `out` (appending), never letting `out` grow past `limit + 1` bytes.
/// Returns whether the deflate stream ended (a final block: the context does not carry on).
pub fn inflate(d: &mut Decompress, mut input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<bool, Failure> {
    let cap = limit.saturating_add(1);
    loop {
        if out.len() == out.capacity() {
            if out.len() >= cap {
                return Err(Failure::TooBig);
            }
            // Doubling, from 256 bytes, up to the bound.
            out.reserve_exact(out.len().max(256).min(cap - out.len()));
        }
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d.decompress_vec(input, out, FlushDecompress::Sync).map_err(|_| Failure::Corrupt)?;
        let used = (d.total_in() - in0) as usize;
        let made = (d.total_out() - out0) as usize;
        input = &input[used..];
        if out.len() > limit {
            return Err(Failure::TooBig);
        }
        if status == Status::StreamEnd {
            return Ok(true);
        }
        let room_left = out.len() < out.capacity();
        if input.is_empty() && room_left {
            return Ok(false);
        }
        if used == 0 && made == 0 && room_left {
            // Input left that yields nothing with room to spare: the data cannot go on.
            return Err(Failure::Corrupt);
        }
    }
}

/// Compresses one whole message into `out` (appending), with a sync flush and the tail taken
/// off, then resets `c`: nothing of this message is referred to by the next.
pub fn deflate(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(input.len() + input.len() / 16 + 64);
    loop {
        let in0 = c.total_in();
        // A sync flush with enough room cannot fail on a compressor in a good state.
        let _ = c.compress_vec(input, out, FlushCompress::Sync);
        input = &input[(c.total_in() - in0) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
        out.reserve(64 + input.len());
    }
    if out[start..].ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    c.reset();
}

/// The per-thread contexts and buffers.
pub struct Shared {
    /// Compressors by window bits (index `bits - 9`), made when first used.
    pub deflaters: Deflaters,
    /// For messages of peers that reset their context after each message.
    pub inflater: Option<Box<Decompress>>,
    /// A masked payload unmasked, and a codec's output before its frame header is known.
    pub plain: Vec<u8>,
    pub out: Vec<u8>,
}

pub type Deflaters = [Option<Box<Compress>>; 7];

thread_local! {
    static SHARED: RefCell<Shared> = const {
        RefCell::new(Shared { deflaters: [None, None, None, None, None, None, None], inflater: None, plain: Vec::new(), out: Vec::new() })
    };
}

/// Buffers kept above this are given back after use: a rare large message does not stay.
const KEEP: usize = 64 << 10;

/// The smallest window raw deflate can compress with (zlib refuses 8).
pub const MIN_DEFLATE_BITS: u8 = 9;

/// Runs `f` with this thread's contexts and buffers (both empty).
pub fn with_shared<R>(f: impl FnOnce(&mut Shared) -> R) -> R {
    SHARED.with_borrow_mut(|s| {
        let r = f(s);
        for b in [&mut s.plain, &mut s.out] {
            b.clear();
            if b.capacity() > KEEP {
                *b = Vec::new();
            }
        }
        r
    })
}

/// Compresses a message with the compressor for a window of `bits` (9-15).
pub fn deflate_with(deflaters: &mut Deflaters, bits: u8, input: &[u8], out: &mut Vec<u8>) {
    let bits = bits.clamp(MIN_DEFLATE_BITS, 15);
    let c = deflaters[usize::from(bits - MIN_DEFLATE_BITS)]
        .get_or_insert_with(|| Box::new(Compress::new_with_window_bits(Compression::default(), false, bits)));
    deflate(c, input, out)
}

/// Inflates one whole message (its tail added) with the shared inflater, reset first and given
/// `dict` (the peer's history, when it keeps its context). Returns whether the stream ended.
pub fn inflate_with(
    inflater: &mut Option<Box<Decompress>>,
    dict: &[u8],
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, Failure> {
    let d = inflater.get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, 15)));
    d.reset(false);
    if !dict.is_empty() {
        d.set_dictionary(dict).map_err(|_| Failure::Corrupt)?;
    }
    if inflate(d, input, out, limit)? {
        return Ok(true);
    }
    inflate(d, &TAIL, out, limit)
}

/// An inflater of its own, for a message in fragments, given the peer's history.
pub fn new_inflater(dict: &[u8]) -> Result<Box<Decompress>, Failure> {
    let mut d = Box::new(Decompress::new_with_window_bits(false, 15));
    if !dict.is_empty() {
        d.set_dictionary(dict).map_err(|_| Failure::Corrupt)?;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compressed(msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        with_shared(|s| deflate_with(&mut s.deflaters, 15, msg, &mut out));
        out
    }

    fn inflate_shared(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Failure> {
        with_shared(|s| inflate_with(&mut s.inflater, &[], input, out, limit).map(|_| ()))
    }

    #[test]
    fn messages_round_trip_and_each_stands_alone() {
        let msg = b"~h1.1.2.3.4.5.6~ hello hello hello hello hello hello".repeat(3);
        let z = compressed(&msg);
        assert!(z.len() < msg.len(), "{} >= {}", z.len(), msg.len());
        assert!(!z.ends_with(&TAIL));
        // The next message of the same compressor refers to nothing before it: a fresh
        // inflater reads it.
        let z2 = compressed(&msg);
        assert_eq!(z, z2);
        let mut out = Vec::new();
        inflate_shared(&z2, &mut out, 1 << 20).unwrap();
        assert_eq!(out, msg);
        // An empty message is one byte (RFC 7692 section 7.2.3.6) and inflates to nothing.
        assert_eq!(compressed(b""), vec![0]);
        let mut out = Vec::new();
        inflate_shared(&[0], &mut out, 10).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn the_rfc_examples_inflate() {
        // RFC 7692 section 7.2.3.1-2: "Hello" compressed, and again with context kept.
        let mut d = new_inflater(&[]).unwrap();
        let mut out = Vec::new();
        inflate(&mut d, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100).unwrap();
        inflate(&mut d, &TAIL, &mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
        out.clear();
        inflate(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 100).unwrap();
        inflate(&mut d, &TAIL, &mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
        // Section 7.2.3.3: a stored block.
        let mut out = Vec::new();
        inflate_shared(&[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00], &mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn a_bomb_stops_at_the_bound() {
        let big = vec![b'a'; 10 << 20];
        let z = compressed(&big);
        assert!(z.len() < 20_000, "{}", z.len());
        let mut out = Vec::new();
        assert_eq!(inflate_shared(&z, &mut out, 64 << 10), Err(Failure::TooBig));
        assert!(out.capacity() <= (64 << 10) + 1, "grew to {}", out.capacity());
        // Exactly at the bound is fine.
        let mut out = Vec::new();
        let z = compressed(&big[..1000]);
        inflate_shared(&z, &mut out, 1000).unwrap();
        assert_eq!(out.len(), 1000);
        assert_eq!(inflate_shared(&z, &mut Vec::new(), 999), Err(Failure::TooBig));
    }

    #[test]
    fn corrupt_data_is_refused_and_random_bytes_never_panic() {
        // Block type 3 is reserved.
        assert_eq!(inflate_shared(&[0xff, 0xff, 0xff], &mut Vec::new(), 100), Err(Failure::Corrupt));
        let mut next = crate::testrand::xorshift(0x0005_eed0_fdef_1a7e);
        let mut refused = 0;
        for _ in 0..3_000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut out = Vec::new();
            match inflate_shared(&input, &mut out, 4096) {
                Ok(()) => assert!(out.len() <= 4096),
                Err(_) => refused += 1,
            }
        }
        // Most random bytes are not deflate data.
        assert!(refused > 1_000, "{refused}");
    }

    #[test]
    fn failures_travel_in_io_errors() {
        let e = Failure::Corrupt.into_io();
        assert_eq!(Failure::of(&e), Some(Failure::Corrupt));
        assert_eq!(Failure::of(&std::io::Error::other("x")), None);
    }
}
