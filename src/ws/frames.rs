//! The close code a server really sent. tungstenite replaces a close code that RFC 6455 does not
//! allow on the wire (999, 1005, 1016, 5000, ...) by 1002 before herd sees the frame, so herd
//! follows the frame boundaries of the bytes tungstenite reads ([`FrameTracker`], pure) and
//! keeps the first close frame's own code. [`CloseWatch`] feeds it every read of a client
//! connection, after TLS (the plaintext stream), from the first byte after the upgrade.
//!
//! Cost: the tracker looks at each frame's 2-14 header bytes and skips payloads whole, so a read
//! costs O(frames in it), not O(bytes).

use crate::ws::deflate::stream::{Codec, Deflated};
use futures_lite::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

const OP_CLOSE: u8 = 0x8;

/// The status part of a server's close frame, as its bytes said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseSeen {
    /// A status code, allowed on the wire or not (see [`crate::ws::wire::allowed`]).
    Code(u16),
    /// An empty payload: no status code.
    NoCode,
    /// A one-byte payload: half a status code, which RFC 6455 does not allow.
    Truncated,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// At a frame's first byte.
    #[default]
    First,
    /// At the second byte (mask bit, 7-bit length).
    Second,
    /// Reading a 16- or 64-bit length: this many bytes still to come.
    Length(u8),
    /// In the current frame's payload (`left` bytes still to come).
    Payload,
    /// Tracking stopped: the first close frame is known, or the server masked a frame (which
    /// tungstenite refuses, failing the connection there).
    Done,
}

/// Frame boundaries of a server's byte stream, fed in whatever chunks reads return.
#[derive(Debug, Default)]
pub struct FrameTracker {
    state: State,
    opcode: u8,
    /// Payload bytes of the current frame still to come (while reading a length: the length so far).
    left: u64,
    /// Status code bytes collected of a close frame's payload (0-2), and their value.
    code_bytes: u8,
    code: u16,
    seen: Option<CloseSeen>,
    /// A fragmented data message is open: its last data frame had FIN clear.
    in_message: bool,
}

impl FrameTracker {
    /// The first close frame of the stream, once its header (and status code) went by.
    pub fn close(&self) -> Option<CloseSeen> {
        self.seen
    }

    /// At a frame boundary with no fragmented message open: a reader that has taken every whole
    /// frame fed so far holds nothing of the stream.
    pub fn between_messages(&self) -> bool {
        self.state == State::First && !self.in_message
    }

    /// A frame's first byte: a data or continuation frame opens or ends a message.
    fn first_byte(&mut self, b: u8) {
        if b & 0x0f < 0x8 {
            self.in_message = b & 0x80 == 0;
        }
    }

    /// Takes in the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Payload => {
                    if self.opcode == OP_CLOSE {
                        // Only a close frame's first two payload bytes are read.
                        while self.code_bytes < 2 && i < bytes.len() {
                            self.code = self.code << 8 | u16::from(bytes[i]);
                            self.code_bytes += 1;
                            i += 1;
                            self.left -= 1;
                        }
                        if self.code_bytes == 2 {
                            self.seen = Some(CloseSeen::Code(self.code));
                            self.state = State::Done;
                        }
                        continue;
                    }
                    let skip = self.left.min((bytes.len() - i) as u64);
                    i += skip as usize;
                    self.left -= skip;
                    if self.left == 0 {
                        self.state = State::First;
                    }
                }
                State::First if bytes.len() - i >= 10 && bytes[i] & 0x0f != OP_CLOSE && bytes[i + 1] & 0x80 == 0 => {
                    // The common case: a whole unmasked data or ping frame header in this read,
                    // taken at once (at most 10 bytes: no mask key).
                    let opcode = bytes[i] & 0x0f;
                    self.first_byte(bytes[i]);
                    let (len, head) = match bytes[i + 1] {
                        126 => (u64::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]])), 4),
                        127 => (u64::from_be_bytes(bytes[i + 2..i + 10].try_into().expect("8 bytes")), 10),
                        n => (u64::from(n), 2),
                    };
                    i += head;
                    let here = (bytes.len() - i) as u64;
                    if len <= here {
                        i += len as usize;
                    } else {
                        self.opcode = opcode;
                        self.left = len - here;
                        self.state = State::Payload;
                        i = bytes.len();
                    }
                }
                State::First => {
                    self.opcode = bytes[i] & 0x0f;
                    self.first_byte(bytes[i]);
                    self.state = State::Second;
                    i += 1;
                }
                State::Second => {
                    let b = bytes[i];
                    i += 1;
                    if b & 0x80 != 0 {
                        self.state = State::Done;
                        continue;
                    }
                    match b & 0x7f {
                        126 => self.length(2),
                        127 => self.length(8),
                        n => self.header_done(u64::from(n)),
                    }
                }
                State::Length(n) => {
                    self.left = self.left << 8 | u64::from(bytes[i]);
                    i += 1;
                    if n > 1 {
                        self.state = State::Length(n - 1);
                    } else {
                        self.header_done(self.left);
                    }
                }
                State::Done => return,
            }
        }
    }

    fn length(&mut self, bytes: u8) {
        self.left = 0;
        self.state = State::Length(bytes);
    }

    fn header_done(&mut self, len: u64) {
        self.left = len;
        self.state = if len == 0 { State::First } else { State::Payload };
        if self.opcode == OP_CLOSE {
            match len {
                0 => self.seen = Some(CloseSeen::NoCode),
                1 => self.seen = Some(CloseSeen::Truncated),
                _ => {
                    self.code_bytes = 0;
                    return;
                }
            }
            self.state = State::Done;
        }
    }
}

/// A client connection's plaintext stream, with the server's frames followed as they are read.
///
/// It also lets the connection read data frames past tungstenite (`client/direct.rs`): what such
/// a read took but cannot use goes back here ([`CloseWatch::hand_over`]) and is what tungstenite
/// reads next, from a frame boundary, followed like any other read.
///
/// With permessage-deflate negotiated, the stream's bytes go through its codec first, both ways
/// (`ws/deflate/stream.rs`): everything above reads and writes plain frames.
pub struct CloseWatch<S> {
    /// The stream, with permessage-deflate when negotiated (one pointer more when not).
    inner: Deflated<S>,
    frames: FrameTracker,
    /// Bytes read past tungstenite that it is still to read, before the stream's own.
    replay: Vec<u8>,
    /// How a read past tungstenite ended (the end of the stream, or an error), for tungstenite
    /// to read after `replay`.
    end: Option<io::Result<()>>,
}

impl<S> CloseWatch<S> {
    /// `already` is what was read past the upgrade's answer: the stream's first bytes.
    pub fn new(inner: S, already: &[u8]) -> CloseWatch<S> {
        let mut frames = FrameTracker::default();
        frames.feed(already);
        CloseWatch { inner: Deflated::new(inner, None), frames, replay: Vec::new(), end: None }
    }

    /// A stream with permessage-deflate: `codec` holds the stream's first bytes (what came
    /// after the upgrade's answer) and rewrites them on the first read.
    pub fn with_deflate(inner: S, codec: Box<Codec>) -> CloseWatch<S> {
        let inner = Deflated::new(inner, Some(codec));
        CloseWatch { inner, frames: FrameTracker::default(), replay: Vec::new(), end: None }
    }

    /// Whether tungstenite holds nothing of the stream, given that its last read found no whole
    /// frame to return: every byte it read formed whole frames, and no fragmented message is open.
    /// Then the stream may be read past it.
    pub fn between_messages(&self) -> bool {
        self.replay.is_empty() && self.end.is_none() && self.frames.between_messages()
    }

    /// Gives tungstenite bytes read past it, from a frame boundary on.
    pub fn hand_over(&mut self, bytes: &[u8]) {
        self.replay.extend_from_slice(bytes);
    }

    /// Reads the stream past tungstenite. Bytes read are the caller's (whole data frames it takes,
    /// and the rest it hands over); the end of the stream or an error is kept for tungstenite,
    /// which reads it next, and is answered `Ready(Ok(0))`.
    pub fn poll_read_past(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<usize>
    where
        S: AsyncRead + Unpin,
    {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(n)) if n > 0 => Poll::Ready(n),
            Poll::Ready(Ok(_)) => {
                self.end = Some(Ok(()));
                Poll::Ready(0)
            }
            // Not how an async stream says "not yet", but if one does: look again soon.
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Err(e)) => {
                self.end = Some(Err(e));
                Poll::Ready(0)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// The first close frame the server sent, as its bytes said.
    pub fn close(&self) -> Option<CloseSeen> {
        self.frames.close()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CloseWatch<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if !me.replay.is_empty() {
            let n = me.replay.len().min(buf.len());
            buf[..n].copy_from_slice(&me.replay[..n]);
            me.replay.drain(..n);
            if me.replay.is_empty() {
                // Usually a few bytes for one frame: not kept for the connection's life.
                me.replay = Vec::new();
            }
            me.frames.feed(&buf[..n]);
            return Poll::Ready(Ok(n));
        }
        if let Some(end) = me.end.take() {
            return Poll::Ready(end.map(|()| 0));
        }
        let r = Pin::new(&mut me.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            me.frames.feed(&buf[..n]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CloseWatch<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;
