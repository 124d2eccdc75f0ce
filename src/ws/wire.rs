//! Counters of what happens on the WebSocket besides chat messages: pings and pongs, frames
//! without herd's marker, and the close codes of connections that did not end by herd's own
//! close at the end of the run. Part of each core's [`crate::measure::stats::Counters`], merged exactly.
//!
//! Close codes are those of RFC 6455 section 7.4, including the two that never go on the wire:
//! 1005 for a close frame without a code, 1006 for a connection dropped without any close frame.
//! A server's close code is recorded as the server sent it, also when RFC 6455 does not allow it
//! on the wire (999, 1005, 2000, 5000, ...): such codes are also counted in
//! `invalid_close_codes` (tungstenite reports them as 1002; herd reads the frame's own bytes,
//! see [`crate::ws::frames`]).

use crate::ws::deflate::tally::DeflateCounters;
use crate::ws::frames::CloseSeen;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A close frame that carried no status code.
pub const NO_STATUS: u16 = 1005;
/// The connection ended without a close frame (EOF or reset).
pub const ABNORMAL: u16 = 1006;

/// Whether an endpoint may send `code` in a close frame: RFC 6455 section 7.4 and the IANA
/// registry it set up (1012-1014 were registered later). 1004, 1005, 1006 and 1015 are reserved,
/// 1016-2999 unassigned, and anything below 1000 or above 4999 is no close code.
pub fn allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Read back by `herd merge` (missing fields default: files of an older herd lack some).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireCounters {
    /// PINGs from the server; herd answers each with a PONG carrying the same payload.
    pub pings_received: u64,
    /// Keep-alives herd sent (`--ping-interval`): WebSocket PINGs, or `--ping-frame` frames.
    pub pings_sent: u64,
    /// PONGs from the server.
    pub pongs_received: u64,
    /// Keep-alives still unanswered when the connection's next one was due: WebSocket PINGs, or
    /// `--ping-frame` frames when `--pong-frame` declares their answer.
    pub pongs_missed: u64,
    /// Answers herd sent to the server's application-level pings (`--reply`); each such ping is
    /// also counted in `pings_received`. WebSocket PONGs are not counted here.
    pub pongs_sent: u64,
    /// Frames without herd's marker, with `--unmarked ignore` (otherwise they are
    /// `marker_missing` errors).
    pub unmarked_frames: u64,
    /// Connections the server ended, by the close code it sent (1005: no code; 1006: no close
    /// frame at all). herd echoed each close frame.
    pub close_codes_received: BTreeMap<u16, u64>,
    /// Close frames from the server whose code RFC 6455 does not allow on the wire (see
    /// [`allowed`]; the code is in `close_codes_received` as sent), or whose payload was a single
    /// byte (half a code: the connection is failed with 1002, and no code is recorded). herd
    /// answers an invalid code with 1002.
    pub invalid_close_codes: u64,
    /// Connections herd failed because of what the server sent, by the code herd closed with:
    /// 1002 protocol error, 1007 invalid UTF-8 in a text message, 1009 message above
    /// `--max-frame`.
    pub close_codes_sent: BTreeMap<u16, u64>,
    /// The reasons of the close frames in `close_codes_received` that had one, as
    /// `"CODE reason"` (at most [`MAX_REASONS`] distinct ones, each cut to [`MAX_REASON_CHARS`];
    /// any more are counted under `"other"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub close_reasons_received: BTreeMap<String, u64>,
    /// Upgrades the server refused (`handshake_rejected`), by the HTTP status it answered.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub handshake_statuses: BTreeMap<u16, u64>,
    /// The first line of the body of the first refusal (as far as it came with the head).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_body: Option<String>,
    /// permessage-deflate (`--deflate`): the servers' answers, and what was compressed each way.
    #[serde(default, skip_serializing_if = "DeflateCounters::is_empty")]
    pub deflate: DeflateCounters,
}

/// Distinct close reasons kept: the reason is the server's text, not a bounded set.
pub const MAX_REASONS: usize = 16;
pub const MAX_REASON_CHARS: usize = 120;

impl WireCounters {
    pub fn close_received(&mut self, code: u16) {
        *self.close_codes_received.entry(code).or_default() += 1;
    }

    /// A close frame from the server, before its code is counted: `seen` is what the frame's
    /// bytes said, `reported` the code and reason tungstenite gave (it reports a code that is not
    /// allowed as 1002 "Protocol violation"). Counts an invalid code, keeps the reason when it
    /// is the server's, and returns the code the server sent.
    pub fn close_frame(&mut self, seen: Option<CloseSeen>, reported: u16, reason: &str) -> u16 {
        let code = match seen {
            Some(CloseSeen::Code(c)) => c,
            _ => reported,
        };
        if matches!(seen, Some(CloseSeen::Code(c)) if !allowed(c)) {
            self.invalid_close_codes += 1;
        }
        if code == reported {
            self.close_reason(code, reason);
        }
        code
    }

    /// A connection that failed on what the server sent: a close frame of one byte (which
    /// tungstenite refuses as a protocol error) is an invalid close code.
    pub fn close_failed(&mut self, seen: Option<CloseSeen>) {
        if seen == Some(CloseSeen::Truncated) {
            self.invalid_close_codes += 1;
        }
    }

    pub fn close_sent(&mut self, code: u16) {
        *self.close_codes_sent.entry(code).or_default() += 1;
    }

    /// A close frame's reason (an empty one is not counted).
    pub fn close_reason(&mut self, code: u16, reason: &str) {
        if !reason.is_empty() {
            let key = format!("{code} {}", clip(reason));
            self.add_reason(key, 1);
        }
    }

    fn add_reason(&mut self, key: String, n: u64) {
        let key = if self.close_reasons_received.len() >= MAX_REASONS && !self.close_reasons_received.contains_key(&key)
        {
            "other".to_string()
        } else {
            key
        };
        *self.close_reasons_received.entry(key).or_default() += n;
    }

    /// A refused upgrade: its status, and the first line of its body if none was kept yet.
    pub fn handshake_rejected(&mut self, status: u16, body: &[u8]) {
        *self.handshake_statuses.entry(status).or_default() += 1;
        if self.handshake_body.is_none() {
            let text = String::from_utf8_lossy(body);
            let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            if !line.is_empty() {
                self.handshake_body = Some(clip(line));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == WireCounters::default()
    }

    pub fn add(&mut self, o: &WireCounters) {
        self.pings_received += o.pings_received;
        self.pings_sent += o.pings_sent;
        self.pongs_received += o.pongs_received;
        self.pongs_missed += o.pongs_missed;
        self.pongs_sent += o.pongs_sent;
        self.unmarked_frames += o.unmarked_frames;
        self.invalid_close_codes += o.invalid_close_codes;
        for (k, v) in &o.close_codes_received {
            *self.close_codes_received.entry(*k).or_default() += v;
        }
        for (k, v) in &o.close_codes_sent {
            *self.close_codes_sent.entry(*k).or_default() += v;
        }
        for (k, v) in &o.close_reasons_received {
            self.add_reason(k.clone(), *v);
        }
        for (k, v) in &o.handshake_statuses {
            *self.handshake_statuses.entry(*k).or_default() += v;
        }
        if self.handshake_body.is_none() {
            self.handshake_body.clone_from(&o.handshake_body);
        }
        self.deflate.add(&o.deflate);
    }
}

/// Text from the server, cut to [`MAX_REASON_CHARS`] characters, control characters replaced.
fn clip(s: &str) -> String {
    s.chars().take(MAX_REASON_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `herd merge` reads back what `--out` wrote: every field survives, and a file without the
    /// newer fields still reads.
    #[test]
    fn results_json_reads_back_exactly() {
        let mut w = WireCounters {
            pings_received: 1,
            pings_sent: 2,
            pongs_received: 3,
            pongs_missed: 4,
            pongs_sent: 5,
            unmarked_frames: 6,
            invalid_close_codes: 10,
            handshake_body: Some("busy".into()),
            ..Default::default()
        };
        w.close_received(1001);
        w.close_received(4001);
        *w.close_codes_sent.entry(1009).or_default() += 7;
        w.close_reasons_received.insert("1001 bye".into(), 8);
        w.handshake_statuses.insert(503, 9);
        let text = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<WireCounters>(&text).unwrap(), w);
        let old: WireCounters = serde_json::from_str(r#"{"pings_received": 3}"#).unwrap();
        assert_eq!(old, WireCounters { pings_received: 3, ..Default::default() });
    }

    #[test]
    fn merges_add_every_field_and_code() {
        let mut a = WireCounters { pings_received: 2, pongs_missed: 1, ..Default::default() };
        a.close_received(4001);
        a.close_received(ABNORMAL);
        let mut b =
            WireCounters { pings_received: 1, unmarked_frames: 5, invalid_close_codes: 2, ..Default::default() };
        b.close_received(4001);
        b.close_sent(1007);
        a.add(&b);
        assert_eq!((a.pings_received, a.pongs_missed, a.unmarked_frames, a.invalid_close_codes), (3, 1, 5, 2));
        assert_eq!(a.close_codes_received, BTreeMap::from([(4001, 2), (ABNORMAL, 1)]));
        assert_eq!(a.close_codes_sent, BTreeMap::from([(1007, 1)]));
        assert!(!a.is_empty() && WireCounters::default().is_empty());
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"close_codes_received\":{\"1006\":1,\"4001\":2}"), "{json}");
        assert!(!json.contains("handshake_statuses"), "empty maps stay out of the results: {json}");
    }

    #[test]
    fn reasons_and_refusals_are_kept_bounded_and_merged() {
        let mut a = WireCounters::default();
        a.close_reason(4000, "sent before welcome");
        a.close_reason(4000, "sent before welcome");
        a.close_reason(1000, "");
        for i in 0..MAX_REASONS + 3 {
            a.close_reason(4001, &format!("r{i}"));
        }
        assert_eq!(a.close_reasons_received.len(), MAX_REASONS + 1);
        assert_eq!(a.close_reasons_received["4000 sent before welcome"], 2);
        assert_eq!(a.close_reasons_received["other"], 4);
        a.close_reason(4002, &"x\ny".repeat(100));
        let mut b = WireCounters::default();
        b.handshake_rejected(403, b"\r\n  Origin not allowed\nsecond line");
        b.handshake_rejected(403, b"another body");
        b.handshake_rejected(503, b"");
        let mut m = WireCounters::default();
        m.add(&b);
        m.add(&b);
        assert_eq!(m.handshake_statuses, BTreeMap::from([(403, 4), (503, 2)]));
        assert_eq!(m.handshake_body.as_deref(), Some("Origin not allowed"));
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"handshake_statuses\":{\"403\":4,\"503\":2}"), "{json}");
    }

    /// herd's list of allowed codes is tungstenite's, but for 1014 (bad gateway), which the IANA
    /// registry holds and tungstenite 0.30 does not know.
    #[test]
    fn allowed_codes_are_rfc_6455_and_the_registry() {
        use tungstenite::protocol::frame::coding::CloseCode;
        for code in 0..=u16::MAX {
            let theirs = CloseCode::from(code).is_allowed() || code == 1014;
            assert_eq!(allowed(code), theirs, "{code}");
        }
        for code in [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(!allowed(code), "{code}");
        }
        for code in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4001, 4999] {
            assert!(allowed(code), "{code}");
        }
    }

    #[test]
    fn the_code_recorded_is_the_one_the_server_sent() {
        let mut w = WireCounters::default();
        // Invalid: tungstenite said 1002 "Protocol violation"; the code is the server's, the
        // reason (tungstenite's) is not kept.
        assert_eq!(w.close_frame(Some(CloseSeen::Code(999)), 1002, "Protocol violation"), 999);
        assert_eq!(w.close_frame(Some(CloseSeen::Code(1005)), 1002, "Protocol violation"), 1005);
        assert_eq!(w.invalid_close_codes, 2);
        // 1014 is allowed: not invalid, though tungstenite replaced it.
        assert_eq!(w.close_frame(Some(CloseSeen::Code(1014)), 1002, "Protocol violation"), 1014);
        assert_eq!(w.invalid_close_codes, 2);
        // Valid codes, with their reasons; no code at all.
        assert_eq!(w.close_frame(Some(CloseSeen::Code(4001)), 4001, "room full"), 4001);
        assert_eq!(w.close_frame(Some(CloseSeen::Code(1000)), 1000, ""), 1000);
        assert_eq!(w.close_frame(Some(CloseSeen::NoCode), NO_STATUS, ""), NO_STATUS);
        // Nothing seen (cannot happen once a close frame was read): tungstenite's word.
        assert_eq!(w.close_frame(None, 1001, "bye"), 1001);
        assert_eq!(w.invalid_close_codes, 2);
        assert_eq!(w.close_reasons_received, BTreeMap::from([("4001 room full".into(), 1), ("1001 bye".into(), 1)]));
        w.close_failed(Some(CloseSeen::Truncated));
        w.close_failed(Some(CloseSeen::Code(999)));
        w.close_failed(None);
        assert_eq!(w.invalid_close_codes, 3, "only the one-byte close is counted on failure");
    }
}
