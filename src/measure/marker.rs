//! The marker every message carries: who sent it, its sequence number, and when it was meant to
//! be sent and actually sent.
//!
//! Format (lowercase hex fields, no padding): `~h1.RUN.CONV.SENDER.SEQ.INTENDED.SENT~`, where the
//! times are `clock::now_ns()` readings. Only `[0-9a-z.~]` appear, so the marker survives JSON
//! string escaping and any relaying server that passes text through. A message is the marker
//! followed by `-` padding up to `--size` bytes; a frame may hold any number of markers among
//! other text, and [`find_all`] finds each.

use std::fmt::Write;

pub const PREFIX: &[u8] = b"~h1.";
const END: u8 = b'~';
/// The longest marker: prefix, 6 fields of at most 16 hex digits, 5 dots, end.
pub const MAX_LEN: usize = 4 + 6 * 16 + 5 + 1;
/// The largest message herd sends (`--size`, a room class's `message-size`): the marker and its
/// padding.
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub run: u32,
    pub conv: u64,
    pub sender: u32,
    pub seq: u64,
    pub intended_ns: u64,
    pub sent_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The prefix was found but the text ends before the closing `~`.
    Truncated,
    /// A field is missing, empty, too long or not hex, or a value does not fit its type.
    Malformed,
}

impl Marker {
    /// Writes the marker, padded with `-` to at least `size` bytes, into `out` (cleared first).
    pub fn encode_padded(&self, size: usize, out: &mut String) {
        out.clear();
        let _ = write!(
            out,
            "~h1.{:x}.{:x}.{:x}.{:x}.{:x}.{:x}~",
            self.run, self.conv, self.sender, self.seq, self.intended_ns, self.sent_ns
        );
        while out.len() < size {
            out.push('-');
        }
    }

    /// Delivery latency of this message received at `rx_ns`: (corrected, uncorrected).
    /// Uncorrected counts from the send; corrected from the intended time, so that a sender that
    /// fell behind its schedule shows its lag (coordinated omission). A message sent before its
    /// intended time (`--send-window`) counts from its send in both: never from a later moment
    /// than the bytes left.
    pub fn latencies(&self, rx_ns: u64) -> (u64, u64) {
        (rx_ns.saturating_sub(self.intended_ns.min(self.sent_ns)), rx_ns.saturating_sub(self.sent_ns))
    }

    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(MAX_LEN);
        self.encode_padded(0, &mut s);
        s
    }
}

/// Decodes a marker at the start of `b` (which begins with [`PREFIX`]). Returns the marker and
/// the number of bytes it spans.
pub fn decode_at(b: &[u8]) -> Result<(Marker, usize), DecodeError> {
    if !b.starts_with(PREFIX) {
        return Err(DecodeError::Malformed);
    }
    let body = &b[PREFIX.len()..];
    let end = match body.iter().take(MAX_LEN).position(|&c| c == END) {
        Some(e) => e,
        None if body.len() < MAX_LEN - PREFIX.len() => {
            // Everything left is marker-like text without an end: the frame was cut short.
            return if body.iter().all(|c| c.is_ascii_hexdigit() || *c == b'.') {
                Err(DecodeError::Truncated)
            } else {
                Err(DecodeError::Malformed)
            };
        }
        None => return Err(DecodeError::Malformed),
    };
    let mut fields = [0u64; 6];
    let mut n = 0;
    for part in body[..end].split(|&c| c == b'.') {
        if n == 6 {
            return Err(DecodeError::Malformed);
        }
        fields[n] = parse_hex(part)?;
        n += 1;
    }
    if n != 6 {
        return Err(DecodeError::Malformed);
    }
    let run = u32::try_from(fields[0]).map_err(|_| DecodeError::Malformed)?;
    let sender = u32::try_from(fields[2]).map_err(|_| DecodeError::Malformed)?;
    let m = Marker { run, conv: fields[1], sender, seq: fields[3], intended_ns: fields[4], sent_ns: fields[5] };
    Ok((m, PREFIX.len() + end + 1))
}

fn parse_hex(part: &[u8]) -> Result<u64, DecodeError> {
    if part.is_empty() || part.len() > 16 {
        return Err(DecodeError::Malformed);
    }
    let mut v: u64 = 0;
    for &c in part {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return Err(DecodeError::Malformed),
        };
        v = (v << 4) | d as u64;
    }
    Ok(v)
}

/// Finds and decodes every marker in a frame, in order. Calls `f` with each result; returns how
/// many prefixes were found.
pub fn find_all(frame: &[u8], mut f: impl FnMut(Result<Marker, DecodeError>)) -> usize {
    let mut found = 0;
    let mut i = 0;
    while let Some(off) = find_prefix(&frame[i..]) {
        let at = i + off;
        found += 1;
        match decode_at(&frame[at..]) {
            Ok((m, len)) => {
                f(Ok(m));
                i = at + len;
            }
            Err(e) => {
                f(Err(e));
                i = at + PREFIX.len();
            }
        }
    }
    found
}

fn find_prefix(hay: &[u8]) -> Option<usize> {
    // '~' is rare in chat text; look for it, then check the rest of the prefix.
    let mut i = 0;
    while i + PREFIX.len() <= hay.len() {
        let rel = hay[i..].iter().position(|&c| c == b'~')?;
        let at = i + rel;
        if hay[at..].starts_with(PREFIX) {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Marker {
        Marker {
            run: 0xdead_beef,
            conv: 12_345,
            sender: 2,
            seq: 987_654_321,
            intended_ns: 5_000_000_000,
            sent_ns: 5_000_123_456,
        }
    }

    #[test]
    fn round_trips_and_pads_to_size() {
        let m = sample();
        let mut s = String::new();
        m.encode_padded(200, &mut s);
        assert_eq!(s.len(), 200);
        assert!(s.ends_with("--"));
        let (d, len) = decode_at(s.as_bytes()).unwrap();
        assert_eq!(d, m);
        assert_eq!(len, m.encode().len());
    }

    #[test]
    fn latency_counts_from_the_intended_time_or_an_earlier_send() {
        // Late: corrected includes the lag behind the schedule.
        let late = Marker { intended_ns: 1_000, sent_ns: 1_300, ..sample() };
        assert_eq!(late.latencies(2_000), (1_000, 700));
        // Early (within the send window): both count from the send.
        let early = Marker { intended_ns: 1_300, sent_ns: 1_000, ..sample() };
        assert_eq!(early.latencies(2_000), (1_000, 1_000));
        // A receive time before the send (clocks of another host) never goes negative.
        assert_eq!(late.latencies(500), (0, 0));
    }

    #[test]
    fn size_below_marker_length_gives_the_bare_marker() {
        let mut s = String::new();
        sample().encode_padded(1, &mut s);
        assert_eq!(s, sample().encode());
    }

    #[test]
    fn extreme_values_fit_max_len() {
        let m = Marker {
            run: u32::MAX,
            conv: u64::MAX,
            sender: u32::MAX,
            seq: u64::MAX,
            intended_ns: u64::MAX,
            sent_ns: u64::MAX,
        };
        let s = m.encode();
        assert!(s.len() <= MAX_LEN);
        assert_eq!(decode_at(s.as_bytes()).unwrap().0, m);
    }

    #[test]
    fn finds_markers_inside_other_text_and_json() {
        let a = sample();
        let b = Marker { seq: 1, ..sample() };
        let frame = format!("{{\"type\":\"msg\",\"text\":\"{}\"}} ~ noise ~h ~{}", a.encode(), b.encode());
        let mut got = vec![];
        let n = find_all(frame.as_bytes(), |r| got.push(r));
        assert_eq!(n, 2);
        assert_eq!(got, vec![Ok(a), Ok(b)]);
    }

    #[test]
    fn truncated_and_malformed_markers_are_told_apart() {
        let s = sample().encode();
        let cut = &s.as_bytes()[..s.len() - 5];
        assert_eq!(decode_at(cut), Err(DecodeError::Truncated));
        assert_eq!(decode_at(b"~h1.1.2.3~"), Err(DecodeError::Malformed));
        assert_eq!(decode_at(b"~h1.1.2.3.4.5.6.7~"), Err(DecodeError::Malformed));
        assert_eq!(decode_at(b"~h1.1.2.x.4.5.6~"), Err(DecodeError::Malformed));
        assert_eq!(decode_at(b"~h1.1..3.4.5.6~"), Err(DecodeError::Malformed));
        assert_eq!(decode_at(b"~h1.100000000.2.3.4.5.6~"), Err(DecodeError::Malformed));
        assert_eq!(decode_at(b"~h1.1.2.3.4.5.11111111111111111~"), Err(DecodeError::Malformed));
        let mut got = vec![];
        assert_eq!(find_all(b"~h1.zz~h1.1.2.3.4.5.6~", |r| got.push(r)), 2);
        assert_eq!(got[0], Err(DecodeError::Malformed));
        assert!(got[1].is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep; the fuzz targets go further.
        let mut rnd = crate::testrand::xorshift(0x9e37_79b9_7f4a_7c15);
        for len in 0..300 {
            let mut buf = Vec::with_capacity(len + 8);
            buf.extend_from_slice(PREFIX);
            for _ in 0..len {
                buf.push(b"0123456789abcdef.~-h"[(rnd() % 20) as usize]);
            }
            // Whatever decodes is really there: its encoding is in the bytes, and each
            // callback is counted in what find_all returns.
            let text = String::from_utf8_lossy(&buf).into_owned();
            let mut calls = 0;
            let found = find_all(&buf, |r| {
                calls += 1;
                if let Ok(m) = r {
                    assert!(text.contains(&m.encode()), "{m:?} decoded from {text}");
                }
            });
            assert_eq!(found, calls);
            assert!(found >= 1, "the prefix is always there: {text}");
        }
    }
}
