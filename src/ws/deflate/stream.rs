//! permessage-deflate on a connection's byte stream, below tungstenite (which has no extension
//! support): [`Codec`] rewrites the peer's compressed messages (RSV1, fragmented or not) as the
//! plain frames they stand for before anything above reads them, and compresses the data
//! messages written to it, so tungstenite, herd's direct reads and the close-code tracker all
//! see an uncompressed stream. Control frames, fragmented messages herd writes, and frames that
//! break the rules (a reserved bit out of place) go through unchanged, for tungstenite to judge.
//!
//! Memory: an idle connection holds the [`Codec`] (its buffers are given back once drained) and,
//! only when the peer keeps its compression context, the last bytes it inflated, up to the
//! peer's window: what RFC 7692 requires, and no inflater. Each message is inflated by the
//! core's inflater, given that history as its dictionary (a message in fragments gets its own
//! inflater until its last fragment). herd never keeps its own compressor's context: each
//! message it sends is compressed alone, by a per-core compressor, which every peer must accept.

use super::codec::{self, Failure};
use super::params::Params;
use super::tally;
use super::walk::{unmasked, write_frame, Header, Piece, State, Walk};
use flate2::Decompress;
use futures_lite::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// What a connection holds only while bytes are in flight through it: a header or payload cut
/// by a read, rewritten bytes not yet read or written. Given back as soon as all is empty, so an
/// idle connection holds none of it.
#[derive(Default)]
struct Buffers {
    rx: Walk,
    /// Rewritten bytes not yet read, from `rx_at`.
    rx_out: Vec<u8>,
    rx_at: usize,
    tx: Walk,
    /// Compressed bytes not yet written, from `tx_at`.
    tx_out: Vec<u8>,
    tx_at: usize,
}

impl Buffers {
    fn idle(&self) -> bool {
        self.rx.idle() && self.tx.idle() && self.rx_at == self.rx_out.len() && self.tx_at == self.tx_out.len()
    }
}

/// A connection's permessage-deflate state: see the module's notes. 72 bytes while idle, and
/// the peer's history when it keeps its context.
pub struct Codec {
    /// The peer keeps its context: each message may refer to the `history` before it.
    rx_keep: bool,
    /// The peer's window.
    rx_bits: u8,
    /// herd's window (0: herd sends uncompressed, which a window below raw deflate's least
    /// forces).
    tx_bits: u8,
    /// A compressed message is open (its first frame had RSV1, its last has not come).
    rx_compressed: bool,
    /// A data message is open (compressed or not).
    rx_open: bool,
    /// After a refusal, bytes pass raw (they are only discarded).
    rx_broken: bool,
    /// A refusal to report on the next read.
    rx_failed: Option<Failure>,
    /// `--max-frame`: the most a message may inflate to.
    max: usize,
    /// Bytes the open compressed message inflated to so far, and its compressed bytes.
    rx_plain: usize,
    rx_wire: usize,
    /// The plain bytes of the peer's last messages, up to its window (and a little slack, so
    /// the window moves once per eighth of it rather than per message), when it keeps context.
    history: Vec<u8>,
    /// A message in fragments under way: its own inflater, until its last fragment.
    inflater: Option<Box<Decompress>>,
    bufs: Option<Box<Buffers>>,
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
            rx_compressed: false,
            rx_open: false,
            rx_broken: false,
            rx_failed: None,
            max,
            rx_plain: 0,
            rx_wire: 0,
            history: Vec::new(),
            inflater: None,
            bufs: None,
        }
    }

    /// What this connection holds of the peer's compression: (history bytes, an inflater for a
    /// message in fragments).
    pub fn holds_context(&self) -> (usize, bool) {
        (self.history.capacity(), self.inflater.is_some())
    }

    /// The peer's window in bytes.
    fn window(&self) -> usize {
        1 << self.rx_bits
    }

    /// The dictionary the next message may refer to.
    fn dictionary(&self) -> &[u8] {
        &self.history[self.history.len().saturating_sub(self.window())..]
    }

    /// Keeps the last `window` bytes inflated, for the next message.
    fn remember(&mut self, plain: &[u8]) {
        let w = self.window();
        if plain.len() >= w {
            self.history.clear();
            self.history.reserve_exact(w);
            self.history.extend_from_slice(&plain[plain.len() - w..]);
            return;
        }
        let most = w + w / 8;
        if self.history.len() + plain.len() > most {
            self.history.drain(..self.history.len() + plain.len() - w);
        }
        let need = self.history.len() + plain.len();
        if need > self.history.capacity() {
            // Doubling as a Vec does, but never past the window and its slack.
            let to = need.max(2 * self.history.capacity()).clamp(256, most);
            self.history.reserve_exact(to - self.history.len());
        }
        self.history.extend_from_slice(plain);
    }

    /// Whether this connection holds buffers now (bytes in flight).
    pub fn holds_buffers(&self) -> bool {
        self.bufs.is_some()
    }

    /// The buffers, made when first needed.
    fn take_bufs(&mut self) -> Box<Buffers> {
        self.bufs.take().unwrap_or_default()
    }

    /// Puts the buffers back, or gives them back when nothing is in them.
    fn put_bufs(&mut self, b: Box<Buffers>) {
        if !b.idle() {
            self.bufs = Some(b);
        }
    }

    /// Takes in bytes read from the peer, rewriting compressed frames into `rx_out`.
    fn rx_feed(&mut self, input: &[u8]) {
        if input.is_empty() {
            return;
        }
        let mut b = self.take_bufs();
        self.rx_feed_into(&mut b, input);
        self.put_bufs(b);
    }

    fn rx_feed_into(&mut self, b: &mut Buffers, mut input: &[u8]) {
        while !self.rx_broken {
            match b.rx.next(&mut input) {
                None => break,
                Some(Piece::Header(h)) => self.rx_begin(b, h),
                Some(Piece::Pass(bytes)) => b.rx_out.extend_from_slice(bytes),
                Some(Piece::Payload(p)) => self.rx_frame(b, &p),
            }
        }
    }

    /// A whole header from the peer: pass its frame through, or collect it to inflate.
    fn rx_begin(&mut self, b: &mut Buffers, h: Header) {
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
            b.rx.raw_head(&h, &mut b.rx_out);
            b.rx.state = if h.len == 0 { State::Head } else { State::Pass(h.len) };
            return;
        }
        // Refused before a byte of it is collected or inflated.
        if h.len > self.max as u64 {
            self.fail(b, Failure::TooBig);
            return;
        }
        if data {
            self.rx_compressed = true;
            self.rx_plain = 0;
            self.rx_wire = 0;
        }
        self.rx_open = !h.fin();
        b.rx.frame = h;
        if h.len == 0 {
            self.rx_frame(b, &[]);
        } else {
            b.rx.state = State::Collect(h.len);
        }
    }

    fn fail(&mut self, b: &mut Buffers, f: Failure) {
        self.rx_failed = Some(f);
        self.rx_broken = true;
        b.rx = Walk::default();
        self.inflater = None;
        self.history = Vec::new();
    }

    /// One whole compressed frame's payload: inflated and written out as a plain frame.
    fn rx_frame(&mut self, b: &mut Buffers, payload: &[u8]) {
        let h = b.rx.frame;
        let last = h.fin();
        let single = last && h.opcode() != 0;
        let limit = self.max - self.rx_plain;
        // A message of no compressed bytes at all is empty. RFC 7692 has a sender send one byte
        // for it, but zlib writes nothing for an empty message right after a flush, and a sender
        // that sends that nothing must not have the tail read as the start of a stored block.
        let empty = last && payload.is_empty() && self.rx_wire == 0;
        let r = codec::with_shared(|s| {
            let codec::Shared { deflaters: _, inflater, plain, out } = s;
            let input = unmasked(payload, h.key, plain);
            let dict = if self.rx_keep { self.dictionary() } else { &[] };
            let mut ended = false;
            if !empty && single {
                ended = codec::inflate_with(inflater, dict, input, out, limit)?;
            } else if !empty {
                if self.inflater.is_none() {
                    self.inflater = Some(codec::new_inflater(dict)?);
                }
                let d = self.inflater.as_mut().expect("made above");
                ended = codec::inflate(d, input, out, limit)?;
                if last && !ended {
                    ended = codec::inflate(d, &codec::TAIL, out, limit)?;
                }
            }
            if ended {
                // A final block: the peer starts a new stream with its next message.
                self.history = Vec::new();
            } else if self.rx_keep {
                self.remember(out);
            }
            write_frame(h.b0 & !0x70, h.key, out, &mut b.rx_out);
            Ok(out.len())
        });
        match r {
            Ok(n) => {
                self.rx_plain += n;
                self.rx_wire += payload.len();
                if last {
                    tally::inflated(self.rx_wire, self.rx_plain);
                    self.rx_compressed = false;
                    self.inflater = None;
                }
            }
            Err(f) => self.fail(b, f),
        }
    }

    /// Takes in bytes written toward the peer, compressing whole data messages into `tx_out`.
    fn tx_feed(&mut self, input: &[u8]) {
        let mut b = self.take_bufs();
        self.tx_feed_into(&mut b, input);
        self.put_bufs(b);
    }

    fn tx_feed_into(&mut self, b: &mut Buffers, mut input: &[u8]) {
        while let Some(piece) = b.tx.next(&mut input) {
            match piece {
                Piece::Header(h) => {
                    let op = h.opcode();
                    if self.tx_bits == 0 || !h.fin() || !(op == 1 || op == 2) || h.b0 & 0x70 != 0 {
                        b.tx.raw_head(&h, &mut b.tx_out);
                        b.tx.state = if h.len == 0 { State::Head } else { State::Pass(h.len) };
                    } else {
                        b.tx.frame = h;
                        if h.len == 0 {
                            self.tx_frame(b, &[]);
                        } else {
                            b.tx.state = State::Collect(h.len);
                        }
                    }
                }
                Piece::Pass(bytes) => b.tx_out.extend_from_slice(bytes),
                Piece::Payload(p) => self.tx_frame(b, &p),
            }
        }
    }

    /// One whole data message herd sends: compressed, RSV1 set, masked again with its key.
    fn tx_frame(&mut self, b: &mut Buffers, payload: &[u8]) {
        let h = b.tx.frame;
        codec::with_shared(|s| {
            let codec::Shared { deflaters, inflater: _, plain, out } = s;
            let input = unmasked(payload, h.key, plain);
            codec::deflate_with(deflaters, self.tx_bits, input, out);
            write_frame(h.b0 | 0x40, h.key, out, &mut b.tx_out);
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
            if let Some(b) = self.bufs.as_mut().filter(|b| b.rx_at < b.rx_out.len()) {
                let n = buf.len().min(b.rx_out.len() - b.rx_at);
                buf[..n].copy_from_slice(&b.rx_out[b.rx_at..b.rx_at + n]);
                b.rx_at += n;
                if b.rx_at == b.rx_out.len() {
                    b.rx_out = Vec::new();
                    b.rx_at = 0;
                    let b = self.take_bufs();
                    self.put_bufs(b);
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
        let Some(b) = self.bufs.as_mut() else { return Poll::Ready(Ok(())) };
        while b.tx_at < b.tx_out.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &b.tx_out[b.tx_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            b.tx_at += n;
        }
        b.tx_out = Vec::new();
        b.tx_at = 0;
        let b = self.take_bufs();
        self.put_bufs(b);
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

/// A stream with permessage-deflate when negotiated (under `CloseWatch` on the client, under
/// tungstenite on herd's server): one pointer more than the stream when not.
pub struct Deflated<S> {
    inner: S,
    codec: Option<Box<Codec>>,
}

impl<S> Deflated<S> {
    pub fn new(inner: S, codec: Option<Box<Codec>>) -> Deflated<S> {
        Deflated { inner, codec }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
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
