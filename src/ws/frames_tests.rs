use super::*;

const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

/// How a frame's length is written: the shortest form, or a longer one (legal to parse).
#[derive(Clone, Copy)]
enum Len {
    Short,
    Bits16,
    Bits64,
}

/// An unmasked (server to client) frame.
fn frame_with(fin: bool, opcode: u8, payload: &[u8], form: Len) -> Vec<u8> {
    let mut out = vec![u8::from(fin) << 7 | opcode];
    let n = payload.len();
    let form = match form {
        Len::Short if n > 65535 => Len::Bits64,
        Len::Short if n > 125 => Len::Bits16,
        f => f,
    };
    match form {
        Len::Short => out.push(n as u8),
        Len::Bits16 => {
            out.push(126);
            out.extend((n as u16).to_be_bytes());
        }
        Len::Bits64 => {
            out.push(127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_with(true, opcode, payload, Len::Short)
}

fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    frame(OP_CLOSE, &p)
}

fn fed(chunks: &[&[u8]]) -> Option<CloseSeen> {
    let mut t = FrameTracker::default();
    for c in chunks {
        t.feed(c);
    }
    t.close()
}

/// The first close frame of a whole stream, parsed at once (the reference for the tracker).
fn reference(mut s: &[u8]) -> Option<CloseSeen> {
    while s.len() >= 2 {
        let (op, l7) = (s[0] & 0x0f, s[1] & 0x7f);
        let (len, head) = match l7 {
            126 if s.len() >= 4 => (u64::from(u16::from_be_bytes([s[2], s[3]])), 4),
            127 if s.len() >= 10 => (u64::from_be_bytes(s[2..10].try_into().unwrap()), 10),
            126 | 127 => return None,
            n => (u64::from(n), 2),
        };
        let body = &s[head..];
        if op == OP_CLOSE {
            return match len {
                0 => Some(CloseSeen::NoCode),
                1 => Some(CloseSeen::Truncated),
                _ if body.len() >= 2 => Some(CloseSeen::Code(u16::from_be_bytes([body[0], body[1]]))),
                _ => None,
            };
        }
        if (body.len() as u64) < len {
            return None;
        }
        s = &body[len as usize..];
    }
    None
}

/// Text, binary with a 16-bit length, a message in fragments with control frames between them,
/// payloads that look like close frames, then the close, then frames the tracker must not take.
fn conversation(close_frame: &[u8]) -> Vec<u8> {
    let mut s = vec![];
    s.extend(frame(TEXT, b"hello"));
    s.extend(frame(BINARY, &[0x88; 300]));
    s.extend(frame_with(false, TEXT, b"\x88\x02\x03\xe7 part one", Len::Short));
    s.extend(frame(PING, b"\x88\x02\x0f\xa1"));
    s.extend(frame_with(false, CONT, &[0x88, 0x7e, 0x00, 0x02, 0x03, 0xe7], Len::Bits16));
    s.extend(frame(PONG, b""));
    s.extend(frame_with(true, CONT, b"end", Len::Bits64));
    s.extend(frame(TEXT, b""));
    s.extend_from_slice(close_frame);
    s.extend(close(1000, "second close"));
    s.extend(frame(TEXT, b"after the close"));
    s
}

#[test]
fn a_close_frame_gives_its_code_whatever_the_code() {
    for code in [999, 1000, 1002, 1004, 1005, 1006, 1014, 1015, 2999, 4001, 4999, 5000, 0, 65535] {
        assert_eq!(fed(&[&close(code, "")]), Some(CloseSeen::Code(code)), "{code}");
        assert_eq!(fed(&[&close(code, "with a reason")]), Some(CloseSeen::Code(code)), "{code}");
    }
    assert_eq!(fed(&[&frame(OP_CLOSE, b"")]), Some(CloseSeen::NoCode));
    assert_eq!(fed(&[&frame(OP_CLOSE, b"\x03")]), Some(CloseSeen::Truncated));
    assert_eq!(fed(&[&frame(OP_CLOSE, b"\x03\xe7")[..3]]), None, "one byte of the code so far");
    assert_eq!(fed(&[]), None);
}

#[test]
fn only_the_first_close_counts_and_payloads_are_never_taken_for_headers() {
    for (last, want) in [
        (close(999, "bye"), CloseSeen::Code(999)),
        (close(4001, ""), CloseSeen::Code(4001)),
        (frame(OP_CLOSE, b""), CloseSeen::NoCode),
        (frame(OP_CLOSE, b"!"), CloseSeen::Truncated),
    ] {
        let s = conversation(&last);
        assert_eq!(reference(&s), Some(want));
        assert_eq!(fed(&[&s]), Some(want));
    }
    let mut no_close = conversation(&[]);
    no_close.truncate(no_close.len() - close(1000, "second close").len() - frame(TEXT, b"after the close").len());
    assert_eq!(fed(&[&no_close]), None, "close-like bytes inside payloads are payload");
}

#[test]
fn every_split_of_the_stream_gives_the_same_close() {
    for last in [close(999, "bye"), frame(OP_CLOSE, b""), frame(OP_CLOSE, b"x"), close(1015, "")] {
        let s = conversation(&last);
        let want = reference(&s);
        assert!(want.is_some());
        for i in 0..=s.len() {
            assert_eq!(fed(&[&s[..i], &s[i..]]), want, "split at {i}");
        }
        // Two splits, within the part around the close frame (every header split twice).
        let at = s.len() - last.len() - 40;
        for i in at..s.len() {
            for j in i..=s.len() {
                assert_eq!(fed(&[&s[..i], &s[i..j], &s[j..]]), want, "splits at {i}, {j}");
            }
        }
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(fed(&bytes), want, "byte by byte");
    }
}

#[test]
fn long_lengths_are_skipped_across_reads() {
    // A 64-bit length (70,000 bytes), a non-minimal 64-bit length, a non-minimal 16-bit length.
    let mut s = frame(BINARY, &vec![0x88; 70_000]);
    s.extend(frame_with(true, TEXT, b"\x88\x02\x03\xe7", Len::Bits64));
    s.extend(frame_with(true, TEXT, b"\x88\x02\x03\xe7", Len::Bits16));
    s.extend(frame_with(true, OP_CLOSE, &4001u16.to_be_bytes(), Len::Bits16));
    assert_eq!(reference(&s), Some(CloseSeen::Code(4001)));
    for size in [1, 2, 3, 7, 10, 14, 125, 4096, 65536, 70_010] {
        let chunks: Vec<&[u8]> = s.chunks(size).collect();
        assert_eq!(fed(&chunks), Some(CloseSeen::Code(4001)), "reads of {size}");
    }
    let mut t = FrameTracker::default();
    t.feed(&s[..20_000]);
    assert_eq!((t.state, t.left), (State::Payload, 70_000 - (20_000 - 10)), "in the long payload");
}

#[test]
fn a_masked_frame_stops_tracking() {
    // tungstenite fails the connection at a masked server frame: nothing after it is a close.
    let mut s = vec![0x81, 0x80 | 4, 1, 2, 3, 4, b'a', b'b', b'c', b'd'];
    s.extend(close(999, ""));
    assert_eq!(fed(&[&s]), None);
}

/// Random streams of frames in random reads agree with the whole-stream parse.
#[test]
fn random_streams_in_random_reads_match_the_reference() {
    let mut rnd = crate::testrand::xorshift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let mut s = vec![];
        for _ in 0..rnd() % 8 {
            let len = match rnd() % 10 {
                0 => 126 + rnd() % 1000,
                1 => 65_536 + rnd() % 2000,
                _ => rnd() % 126,
            } as usize;
            let payload: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            let op = [CONT, TEXT, BINARY, PING, PONG][(rnd() % 5) as usize];
            let form = [Len::Short, Len::Bits16, Len::Bits64][(rnd() % 3) as usize];
            let form = if len > 65535 { Len::Bits64 } else { form };
            s.extend(frame_with(rnd() % 2 == 0, op, &payload, form));
        }
        match rnd() % 4 {
            0 => s.extend(close(rnd() as u16, "r")),
            1 => s.extend(frame(OP_CLOSE, &[rnd() as u8])),
            2 => s.extend(frame(OP_CLOSE, b"")),
            _ => {}
        }
        s.extend(frame(TEXT, b"tail"));
        let want = reference(&s);
        let mut t = FrameTracker::default();
        let mut at = 0;
        while at < s.len() {
            let n = (1 + rnd() % 300) as usize;
            let end = (at + n).min(s.len());
            t.feed(&s[at..end]);
            at = end;
        }
        assert_eq!(t.close(), want);
    }
}

#[test]
fn the_watch_sees_what_was_read_before_it_and_through_it() {
    use futures_lite::AsyncReadExt;
    let s = conversation(&close(999, "bye"));
    let (first, rest) = s.split_at(9);
    let mut w = CloseWatch::new(futures_lite::io::Cursor::new(rest.to_vec()), first);
    assert_eq!(w.close(), None);
    let mut buf = [0u8; 64];
    futures_lite::future::block_on(async { while w.read(&mut buf).await.unwrap() > 0 {} });
    assert_eq!(w.close(), Some(CloseSeen::Code(999)));
    assert_eq!(w.get_ref().get_ref().len(), rest.len());
}

#[test]
fn a_fragmented_message_is_open_until_its_final_frame() {
    let mut t = FrameTracker::default();
    assert!(t.between_messages());
    t.feed(&frame_with(false, TEXT, b"he", Len::Short));
    assert!(!t.between_messages());
    // A control frame between fragments does not end the message.
    t.feed(&frame_with(true, PING, b"", Len::Short));
    assert!(!t.between_messages());
    t.feed(&frame_with(false, CONT, b"ll", Len::Short));
    assert!(!t.between_messages());
    let last = frame_with(true, CONT, b"o", Len::Bits16);
    // Mid-frame is not between messages either.
    t.feed(&last[..3]);
    assert!(!t.between_messages());
    t.feed(&last[3..]);
    assert!(t.between_messages());
    t.feed(&frame_with(true, BINARY, b"x", Len::Short));
    assert!(t.between_messages());
}

#[test]
fn bytes_handed_back_are_read_first_then_how_the_read_past_ended() {
    use futures_lite::AsyncReadExt;
    let s = conversation(&close(1000, ""));
    // A read past tungstenite took the stream's first bytes and hit its end; it hands them back.
    let mut w = CloseWatch::new(futures_lite::io::Cursor::new(s.clone()), &[]);
    assert!(w.between_messages());
    let mut past = vec![0u8; s.len() + 8];
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert_eq!(w.poll_read_past(&mut cx, &mut past), Poll::Ready(s.len()));
    assert_eq!(w.poll_read_past(&mut cx, &mut past), Poll::Ready(0));
    w.hand_over(&past[..s.len()]);
    assert!(!w.between_messages());
    // tungstenite reads them in small pieces, then the end, and the close code is followed.
    let mut got = Vec::new();
    let mut buf = [0u8; 7];
    futures_lite::future::block_on(async {
        loop {
            let n = w.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    });
    assert_eq!(got, s);
    assert_eq!(w.close(), Some(CloseSeen::Code(1000)));
}
