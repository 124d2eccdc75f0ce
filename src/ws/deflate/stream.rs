//! permessage-deflate on a connection's byte stream, below tungstenite (which has no extension
//! support): [`Codec`] rewrites the peer's compressed messages (RSV1, fragmented or not) as the
//! plain frames they stand for before anything above reads them, and compresses the data
//! messages written to it, so tungstenite, herd's direct reads and the close-code tracker all
//! see an uncompressed stream. Control frames, fragmented messages herd writes, and frames that
//! break the rules (a reserved bit out of place) go through unchanged, for tungstenite to judge.
//!
//! Memory: an idle connection holds the [`Codec`] (its buffers are given back once drained) and,
//! only when the peer keeps its compression context, an inflater with the peer's window (RFC
//! 7692 requires it). herd never keeps its own compressor's context: each message it sends is
//! compressed alone, by a per-core compressor, which every peer must accept.

use super::codec::{self, Failure};
use super::params::Params;
use super::tally;
use flate2::Decompress;
use futures_lite::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// A frame header as read: first byte, mask key (if masked), payload length.
#[derive(Clone, Copy, Debug, Default)]
struct Header {
    b0: u8,
    key: Option<[u8; 4]>,
    len: u64,
    /// The header's length on the wire (2-14 bytes).
    size: u8,
}

impl Header {
    fn fin(&self) -> bool {
        self.b0 & 0x80 != 0
    }
    fn rsv1(&self) -> bool {
        self.b0 & 0x40 != 0
    }
    fn rsv23(&self) -> bool {
        self.b0 & 0x30 != 0
    }
    fn opcode(&self) -> u8 {
        self.b0 & 0x0f
    }

    /// Writes a header for a payload of `len` bytes.
    fn write(b0: u8, key: Option<[u8; 4]>, len: usize, out: &mut Vec<u8>) {
        out.push(b0);
        let m = if key.is_some() { 0x80 } else { 0 };
        match len {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xffff => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if let Some(k) = key {
            out.extend_from_slice(&k);
        }
    }
}

/// Masks (or unmasks) `p` in place with `key`, from the payload's first byte.
fn mask(p: &mut [u8], key: [u8; 4]) {
    for (i, b) in p.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum State {
    /// Reading a header (this many bytes of it so far).
    #[default]
    Head,
    /// Copying a payload through: this many bytes to go.
    Pass(u64),
    /// Collecting a payload to rewrite: this many bytes to go.
    Collect(u64),
}

/// Frame boundaries of one direction of the stream.
#[derive(Default)]
struct Walk {
    state: State,
    head: [u8; 14],
    have: u8,
    /// The frame being collected.
    frame: Header,
    /// Its payload so far, when it did not come whole in one piece.
    held: Vec<u8>,
}

impl Walk {
    /// Takes header bytes from `input`; returns how many, and the header once whole.
    fn header(&mut self, input: &[u8]) -> (usize, Option<Header>) {
        let mut used = 0;
        loop {
            let have = usize::from(self.have);
            let need = if have < 2 {
                2
            } else {
                let ext = match self.head[1] & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                2 + ext + if self.head[1] & 0x80 != 0 { 4 } else { 0 }
            };
            if have == need {
                self.have = 0;
                let h = &self.head;
                let (len, at) = match h[1] & 0x7f {
                    126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
                    127 => (u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")), 10),
                    n => (u64::from(n), 2),
                };
                let key = (h[1] & 0x80 != 0).then(|| [h[at], h[at + 1], h[at + 2], h[at + 3]]);
                return (used, Some(Header { b0: h[0], key, len, size: need as u8 }));
            }
            if used == input.len() {
                return (used, None);
            }
            let take = (need - have).min(input.len() - used);
            self.head[have..have + take].copy_from_slice(&input[used..used + take]);
            self.have += take as u8;
            used += take;
        }
    }

    /// The last header's bytes as they came, for a frame passed through.
    fn raw_head(&self, h: &Header, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head[..usize::from(h.size)]);
    }
}

/// A connection's permessage-deflate state: see the module's notes.
pub struct Codec {
    /// The peer keeps its context: inflate with this connection's own inflater, kept.
    rx_keep: bool,
    /// The peer's window.
    rx_bits: u8,
    /// herd's window (0: herd sends uncompressed, which a window below raw deflate's least
    /// forces).
    tx_bits: u8,
    /// `--max-frame`: the most a message may inflate to.
    max: usize,
    rx: Walk,
    /// A compressed message is open (its first frame had RSV1, its last has not come).
    rx_compressed: bool,
    /// A data message is open (compressed or not).
    rx_open: bool,
    /// Bytes the open compressed message inflated to so far, and its compressed bytes.
    rx_plain: usize,
    rx_wire: usize,
    /// Rewritten bytes not yet read, from `rx_at`.
    rx_out: Vec<u8>,
    rx_at: usize,
    /// A refusal to report on the next read; after it, bytes pass raw (they are only discarded).
    rx_failed: Option<Failure>,
    rx_broken: bool,
    inflater: Option<Box<Decompress>>,
    tx: Walk,
    tx_out: Vec<u8>,
    tx_at: usize,
}

impl Codec {
    /// A client's codec for what the server answered; `already` is what came after the
    /// upgrade's answer (the stream's first bytes, not yet rewritten).
    pub fn client(p: &Params, max: usize, already: &[u8]) -> Codec {
        let tx = p.client_max_window_bits.unwrap_or(15);
        let mut c = Codec::new(!p.server_no_context_takeover, p.server_max_window_bits, tx, max);
        c.rx_feed(already);
        c
    }

    /// A server's codec for the offer it accepted (`p`, as it answered).
    pub fn server(p: &Params, max: usize, already: &[u8]) -> Codec {
        let rx = p.client_max_window_bits.unwrap_or(15);
        let mut c = Codec::new(!p.client_no_context_takeover, rx, p.server_max_window_bits, max);
        c.rx_feed(already);
        c
    }

    fn new(rx_keep: bool, rx_bits: u8, tx_bits: u8, max: usize) -> Codec {
        Codec {
            rx_keep,
            rx_bits,
            tx_bits: if tx_bits < codec::MIN_DEFLATE_BITS { 0 } else { tx_bits },
            max,
            rx: Walk::default(),
            rx_compressed: false,
            rx_open: false,
            rx_plain: 0,
            rx_wire: 0,
            rx_out: Vec::new(),
            rx_at: 0,
            rx_failed: None,
            rx_broken: false,
            inflater: None,
            tx: Walk::default(),
            tx_out: Vec::new(),
            tx_at: 0,
        }
    }

    /// Whether this connection holds an inflater now (a kept context, or a fragmented message
    /// under way).
    pub fn holds_inflater(&self) -> bool {
        self.inflater.is_some()
    }

    /// Takes in bytes read from the peer, rewriting compressed frames into `rx_out`.
    fn rx_feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() && !self.rx_broken {
            match self.rx.state {
                State::Head => {
                    let (used, h) = self.rx.header(input);
                    input = &input[used..];
                    if let Some(h) = h {
                        self.rx_begin(h);
                    }
                }
                State::Pass(left) => {
                    let k = left.min(input.len() as u64) as usize;
                    self.rx_out.extend_from_slice(&input[..k]);
                    input = &input[k..];
                    self.rx.state = if left == k as u64 { State::Head } else { State::Pass(left - k as u64) };
                }
                State::Collect(left) => {
                    let k = left.min(input.len() as u64) as usize;
                    let whole = left == k as u64;
                    if whole && self.rx.held.is_empty() {
                        self.rx_frame(&input[..k]);
                    } else {
                        self.rx.held.extend_from_slice(&input[..k]);
                        if whole {
                            let held = std::mem::take(&mut self.rx.held);
                            self.rx_frame(&held);
                        }
                    }
                    input = &input[k..];
                    if whole {
                        self.rx.state = State::Head;
                    } else {
                        self.rx.state = State::Collect(left - k as u64);
                    }
                }
            }
        }
    }

    /// A whole header from the peer: pass its frame through, or collect it to inflate.
    fn rx_begin(&mut self, h: Header) {
        let op = h.opcode();
        let data = op == 1 || op == 2;
        let compressed = !h.rsv23()
            && ((data && h.rsv1() && !self.rx_open) || (op == 0 && !h.rsv1() && self.rx_open && self.rx_compressed));
        if !compressed {
            // Tracked so a continuation is known to belong to a compressed message or not;
            // anything out of order goes to tungstenite, which fails the connection.
            if !h.rsv1() && !h.rsv23() && (data || op == 0) {
                if data {
                    self.rx_compressed = false;
                }
                self.rx_open = !h.fin();
            }
            self.rx.raw_head(&h, &mut self.rx_out);
            self.rx.state = if h.len == 0 { State::Head } else { State::Pass(h.len) };
            return;
        }
        // Refused before a byte of it is collected or inflated.
        if h.len > self.max as u64 {
            self.fail(Failure::TooBig);
            return;
        }
        if data {
            self.rx_compressed = true;
            self.rx_plain = 0;
            self.rx_wire = 0;
        }
        self.rx_open = !h.fin();
        self.rx.frame = h;
        if h.len == 0 {
            self.rx_frame(&[]);
        } else {
            self.rx.state = State::Collect(h.len);
        }
    }

    fn fail(&mut self, f: Failure) {
        self.rx_failed = Some(f);
        self.rx_broken = true;
        self.rx.held = Vec::new();
        self.inflater = None;
    }

    /// One whole compressed frame's payload: inflated and written out as a plain frame.
    fn rx_frame(&mut self, payload: &[u8]) {
        let h = self.rx.frame;
        let last = h.fin();
        let single = last && h.opcode() != 0;
        let limit = self.max - self.rx_plain;
        let r = codec::with_shared(|s| {
            let codec::Shared { deflaters: _, inflater, plain, out } = s;
            let input = match h.key {
                Some(k) => {
                    plain.extend_from_slice(payload);
                    mask(plain, k);
                    &plain[..]
                }
                None => payload,
            };
            if single && !self.rx_keep {
                codec::inflate_with(inflater, input, out, limit)?;
            } else {
                let d = self.inflater.get_or_insert_with(|| codec::new_inflater(self.rx_bits));
                let mut ended = codec::inflate(d, input, out, limit)?;
                if last && !ended {
                    ended = codec::inflate(d, &codec::TAIL, out, limit)?;
                }
                if ended {
                    // A final block: the peer starts a new stream with its next message.
                    d.reset(false);
                }
            }
            Header::write(h.b0 & !0x70, h.key, out.len(), &mut self.rx_out);
            let at = self.rx_out.len();
            self.rx_out.extend_from_slice(out);
            if let Some(k) = h.key {
                mask(&mut self.rx_out[at..], k);
            }
            Ok(out.len())
        });
        match r {
            Ok(n) => {
                self.rx_plain += n;
                self.rx_wire += payload.len();
                if last {
                    tally::inflated(self.rx_wire, self.rx_plain);
                    self.rx_compressed = false;
                    if !self.rx_keep {
                        self.inflater = None;
                    }
                }
            }
            Err(f) => self.fail(f),
        }
    }

    /// Takes in bytes written toward the peer, compressing whole data messages into `tx_out`.
    fn tx_feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            match self.tx.state {
                State::Head => {
                    let (used, h) = self.tx.header(input);
                    input = &input[used..];
                    let Some(h) = h else { continue };
                    let op = h.opcode();
                    if self.tx_bits == 0 || !h.fin() || !(op == 1 || op == 2) || h.b0 & 0x70 != 0 {
                        self.tx.raw_head(&h, &mut self.tx_out);
                        self.tx.state = if h.len == 0 { State::Head } else { State::Pass(h.len) };
                    } else if h.len == 0 {
                        self.tx.frame = h;
                        self.tx_frame(&[]);
                    } else {
                        self.tx.frame = h;
                        self.tx.state = State::Collect(h.len);
                    }
                }
                State::Pass(left) => {
                    let k = left.min(input.len() as u64) as usize;
                    self.tx_out.extend_from_slice(&input[..k]);
                    input = &input[k..];
                    self.tx.state = if left == k as u64 { State::Head } else { State::Pass(left - k as u64) };
                }
                State::Collect(left) => {
                    let k = left.min(input.len() as u64) as usize;
                    let whole = left == k as u64;
                    if whole && self.tx.held.is_empty() {
                        self.tx_frame(&input[..k]);
                    } else {
                        self.tx.held.extend_from_slice(&input[..k]);
                        if whole {
                            let held = std::mem::take(&mut self.tx.held);
                            self.tx_frame(&held);
                        }
                    }
                    input = &input[k..];
                    self.tx.state = if whole { State::Head } else { State::Collect(left - k as u64) };
                }
            }
        }
    }

    /// One whole data message herd sends: compressed, RSV1 set, masked again with its key.
    fn tx_frame(&mut self, payload: &[u8]) {
        let h = self.tx.frame;
        codec::with_shared(|s| {
            let codec::Shared { deflaters, inflater: _, plain, out } = s;
            let input = match h.key {
                Some(k) => {
                    plain.extend_from_slice(payload);
                    mask(plain, k);
                    &plain[..]
                }
                None => payload,
            };
            codec::deflate_with(deflaters, self.tx_bits, input, out);
            Header::write(h.b0 | 0x40, h.key, out.len(), &mut self.tx_out);
            let at = self.tx_out.len();
            self.tx_out.extend_from_slice(out);
            if let Some(k) = h.key {
                mask(&mut self.tx_out[at..], k);
            }
            tally::deflated(input.len(), out.len());
        });
    }

    /// Reads from `inner`, returning the rewritten stream.
    pub fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.rx_at < self.rx_out.len() {
                let n = buf.len().min(self.rx_out.len() - self.rx_at);
                buf[..n].copy_from_slice(&self.rx_out[self.rx_at..self.rx_at + n]);
                self.rx_at += n;
                if self.rx_at == self.rx_out.len() {
                    // Usually one message: not kept for the connection's life.
                    self.rx_out = Vec::new();
                    self.rx_at = 0;
                }
                return Poll::Ready(Ok(n));
            }
            if let Some(f) = self.rx_failed.take() {
                return Poll::Ready(Err(f.into_io()));
            }
            let n = ready!(Pin::new(&mut *inner).poll_read(cx, buf))?;
            if n == 0 || self.rx_broken {
                return Poll::Ready(Ok(n));
            }
            self.rx_feed(&buf[..n]);
        }
    }

    /// Writes what is pending to `inner`.
    fn poll_drain<S: AsyncWrite + Unpin>(&mut self, inner: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tx_at < self.tx_out.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &self.tx_out[self.tx_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.tx_at += n;
        }
        if !self.tx_out.is_empty() {
            self.tx_out = Vec::new();
            self.tx_at = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` (after what is pending has gone), compresses it, and starts writing it.
    pub fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(inner, cx))?;
        self.tx_feed(buf);
        // What the socket does not take now goes on the next write or flush.
        if let Poll::Ready(Err(e)) = self.poll_drain(inner, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    pub fn poll_flush<S: AsyncWrite + Unpin>(&mut self, inner: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(inner, cx))?;
        Pin::new(inner).poll_flush(cx)
    }

    pub fn poll_close<S: AsyncWrite + Unpin>(&mut self, inner: &mut S, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(inner, cx))?;
        Pin::new(inner).poll_close(cx)
    }
}

/// A stream with permessage-deflate when negotiated (herd's server side; the client's is in
/// `CloseWatch`): one pointer more than the stream when not.
pub struct Deflated<S> {
    inner: S,
    codec: Option<Box<Codec>>,
}

impl<S> Deflated<S> {
    pub fn new(inner: S, codec: Option<Box<Codec>>) -> Deflated<S> {
        Deflated { inner, codec }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deflated<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        match &mut me.codec {
            Some(c) => c.poll_read(&mut me.inner, cx, buf),
            None => Pin::new(&mut me.inner).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deflated<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        match &mut me.codec {
            Some(c) => c.poll_write(&mut me.inner, cx, buf),
            None => Pin::new(&mut me.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        match &mut me.codec {
            Some(c) => c.poll_flush(&mut me.inner, cx),
            None => Pin::new(&mut me.inner).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        match &mut me.codec {
            Some(c) => c.poll_close(&mut me.inner, cx),
            None => Pin::new(&mut me.inner).poll_close(cx),
        }
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
