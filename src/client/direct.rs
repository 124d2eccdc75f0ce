//! Direct reads: in the steady state a connection reads its data frames straight from its stream
//! into the core's buffer and takes them there, rather than through async-tungstenite (a waker
//! proxy per poll, a read buffer and a message per frame). In run B of `benches/efficiency.sh`
//! that was about a tenth of herd's CPU per delivered message.
//!
//! Only what tungstenite would return unchanged is taken: whole final text (valid UTF-8) or
//! binary frames, unmasked, without reserved bits, within the size limit. From the first other
//! frame of a read on (a control frame, a fragment, a frame not whole in the read, anything a
//! server should not send), the bytes go back to tungstenite through
//! [`CloseWatch::hand_over`](crate::ws::frames::CloseWatch::hand_over), and so do the end of the stream and read errors.
//! tungstenite then reads and judges them as it always did, and the connection reads directly
//! again once tungstenite holds nothing of the stream ([`CloseWatch::between_messages`]).
//!
//! [`CloseWatch::between_messages`]: crate::ws::frames::CloseWatch::between_messages

use super::target::Ws;
use futures_util::StreamExt;
use std::cell::RefCell;
use std::task::{Context, Poll};
use tungstenite::{Error as WsError, Message};

/// What a connection's stream gave.
pub enum Read {
    /// A message (or the end, or an error) through tungstenite.
    Frame(Option<Result<Message, WsError>>),
    /// This many bytes read past tungstenite are in the core's read buffer.
    Direct(usize),
}

/// Polls a serving connection's stream: directly while `*direct` (see the module's notes),
/// through tungstenite otherwise, switching as the module's notes say. `Pending` with the
/// task's waker registered for the stream.
pub fn poll_stream(ws: &mut Ws, cx: &mut Context<'_>, buf: &RefCell<Vec<u8>>, direct: &mut bool) -> Poll<Read> {
    if *direct {
        // tungstenite's read size (see `poll_read`); never 0, which would read as the end.
        let chunk = ws.get_config().read_buffer_size.max(16);
        match poll_read(ws, cx, buf, chunk) {
            Poll::Ready(0) => *direct = false,
            Poll::Ready(n) => return Poll::Ready(Read::Direct(n)),
            Poll::Pending => return Poll::Pending,
        }
    }
    if let Poll::Ready(f) = ws.poll_next_unpin(cx) {
        return Poll::Ready(Read::Frame(f));
    }
    // tungstenite found no whole frame and waits for the stream.
    *direct = ws.get_ref().between_messages();
    Poll::Pending
}

/// Reads up to `chunk` bytes of the connection's stream into `buf`, past tungstenite:
/// `Ready(n)` bytes, `Ready(0)` when the stream ended or failed (kept for tungstenite to read
/// next), `Pending` with the task's waker registered.
///
/// `chunk` is tungstenite's own read size: one of the run's messages and its header. A read
/// carries one kernel receive time, that of the last segment it took, so a read that took
/// several messages queued at different times would date the earlier ones late.
pub fn poll_read(ws: &mut Ws, cx: &mut Context<'_>, buf: &RefCell<Vec<u8>>, chunk: usize) -> Poll<usize> {
    let mut buf = buf.borrow_mut();
    if buf.len() < chunk {
        buf.resize(chunk, 0);
    }
    ws.get_mut().poll_read_past(cx, &mut buf[..chunk])
}

/// Calls `take(binary, payload)` for each whole data frame at the start of `bytes` that a
/// client may take without tungstenite (see the module's notes), in order, while `take`
/// returns true; returns how many bytes those frames took. The rest is tungstenite's. Pure.
pub fn take_data_frames(bytes: &[u8], max: usize, mut take: impl FnMut(bool, &[u8]) -> bool) -> usize {
    let mut at = 0;
    while let Some((binary, payload, len)) = data_frame(&bytes[at..], max) {
        if !take(binary, payload) {
            break;
        }
        at += len;
    }
    at
}

/// The data frame at the start of `b`, if it is one herd takes directly: (binary, payload,
/// frame length).
fn data_frame(b: &[u8], max: usize) -> Option<(bool, &[u8], usize)> {
    let binary = match *b.first()? {
        // FIN set, no reserved bits, text or binary.
        0x81 => false,
        0x82 => true,
        _ => return None,
    };
    let b1 = *b.get(1)?;
    if b1 & 0x80 != 0 {
        // Masked: a server must not send it, and tungstenite fails the connection.
        return None;
    }
    let (len, head): (u64, usize) = match b1 {
        126 => (u64::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?])), 4),
        127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    if len > max as u64 {
        return None;
    }
    let end = head.checked_add(usize::try_from(len).ok()?)?;
    let payload = b.get(head..end)?;
    if !binary && std::str::from_utf8(payload).is_err() {
        return None;
    }
    Some((binary, payload, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![b0];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xffff => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    fn taken(bytes: &[u8], max: usize) -> (usize, Vec<(bool, Vec<u8>)>) {
        let mut got = Vec::new();
        let n = take_data_frames(bytes, max, |binary, p| {
            got.push((binary, p.to_vec()));
            true
        });
        (n, got)
    }

    #[test]
    fn whole_text_and_binary_frames_are_taken_in_order() {
        let mut s = frame(0x81, b"hello");
        s.extend(frame(0x82, &[0, 159, 146, 150]));
        s.extend(frame(0x81, &[b'x'; 300]));
        let (n, got) = taken(&s, 1 << 20);
        assert_eq!(n, s.len());
        assert_eq!(got, vec![(false, b"hello".to_vec()), (true, vec![0, 159, 146, 150]), (false, vec![b'x'; 300])]);
        // 64-bit length.
        let big = frame(0x82, &vec![7u8; 70_000]);
        assert_eq!(taken(&big, 1 << 20).0, big.len());
        // Empty payload.
        assert_eq!(taken(&frame(0x81, b""), 10), (2, vec![(false, vec![])]));
    }

    #[test]
    fn taking_stops_at_the_first_frame_tungstenite_must_see() {
        let first = frame(0x81, b"one");
        let others: Vec<(&str, Vec<u8>)> = vec![
            ("ping", frame(0x89, b"p")),
            ("pong", frame(0x8a, b"")),
            ("close", frame(0x88, &[3, 232])),
            ("first fragment", frame(0x01, b"frag")),
            ("continuation", frame(0x80, b"end")),
            ("reserved bit", frame(0xc1, b"rsv")),
            ("reserved opcode", frame(0x83, b"op")),
            ("invalid UTF-8", frame(0x81, &[0xff, 0xfe])),
            ("too long", frame(0x81, &[b'a'; 11])),
            ("masked", vec![0x81, 0x83, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2, b'c' ^ 3]),
        ];
        for (what, other) in others {
            let mut s = first.clone();
            s.extend_from_slice(&other);
            s.extend(frame(0x81, b"after"));
            let (n, got) = taken(&s, 10);
            assert_eq!(n, first.len(), "{what}");
            assert_eq!(got, vec![(false, b"one".to_vec())], "{what}");
        }
    }

    #[test]
    fn a_frame_not_whole_in_the_read_is_left_at_every_split_point() {
        let mut s = frame(0x81, b"whole");
        let tail = frame(0x82, &[9u8; 200]);
        let whole = s.len();
        s.extend_from_slice(&tail);
        for cut in whole..s.len() {
            let (n, got) = taken(&s[..cut], 1 << 20);
            assert_eq!((n, got.len()), (whole, 1), "cut at {cut}");
        }
        assert_eq!(taken(&s, 1 << 20).0, s.len());
    }

    #[test]
    fn the_taker_can_leave_a_frame_to_tungstenite() {
        let mut s = frame(0x81, b"keep");
        s.extend(frame(0x81, b"answer me"));
        s.extend(frame(0x81, b"later"));
        let mut seen = Vec::new();
        let n = take_data_frames(&s, 100, |_, p| {
            seen.push(p.to_vec());
            p != b"answer me"
        });
        assert_eq!(n, 6);
        assert_eq!(seen, vec![b"keep".to_vec(), b"answer me".to_vec()]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_end_on_a_frame_boundary() {
        let mut next = crate::testrand::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5_000 {
            let len = (next() % 64) as usize;
            let mut s: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if next() % 2 == 0 && !s.is_empty() {
                s[0] = 0x81;
            }
            let (n, got) = taken(&s, 40);
            assert!(n <= s.len());
            // What was taken ends on a frame boundary, with no message open, and is taken
            // again the same way on its own.
            let mut t = crate::ws::frames::FrameTracker::default();
            t.feed(&s[..n]);
            assert!(t.between_messages());
            assert_eq!(taken(&s[..n], 40), (n, got));
        }
    }
}
