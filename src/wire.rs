//! Counters of what happens on the WebSocket besides chat messages: pings and pongs, frames
//! without herd's marker, and the close codes of connections that did not end by herd's own
//! close at the end of the run. Part of each core's [`crate::stats::Counters`], merged exactly.
//!
//! Close codes are those of RFC 6455 section 7.4, including the two that never go on the wire:
//! 1005 for a close frame without a code, 1006 for a connection dropped without any close frame.

use serde::Serialize;
use std::collections::BTreeMap;

/// A close frame that carried no status code.
pub const NO_STATUS: u16 = 1005;
/// The connection ended without a close frame (EOF or reset).
pub const ABNORMAL: u16 = 1006;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WireCounters {
    /// PINGs from the server; herd answers each with a PONG carrying the same payload.
    pub pings_received: u64,
    /// Keep-alives herd sent (`--ping-interval`): WebSocket PINGs, or `--ping-frame` frames.
    pub pings_sent: u64,
    /// PONGs from the server.
    pub pongs_received: u64,
    /// WebSocket PINGs still unanswered when the connection's next one was due.
    pub pongs_missed: u64,
    /// Frames without herd's marker, with `--unmarked ignore` (otherwise they are
    /// `marker_missing` errors).
    pub unmarked_frames: u64,
    /// Connections the server ended, by the close code it sent (1005: no code; 1006: no close
    /// frame at all). herd echoed each close frame.
    pub close_codes_received: BTreeMap<u16, u64>,
    /// Connections herd failed because of what the server sent, by the code herd closed with:
    /// 1002 protocol error, 1007 invalid UTF-8 in a text message, 1009 message above
    /// `--max-frame`.
    pub close_codes_sent: BTreeMap<u16, u64>,
}

impl WireCounters {
    pub fn close_received(&mut self, code: u16) {
        *self.close_codes_received.entry(code).or_default() += 1;
    }

    pub fn close_sent(&mut self, code: u16) {
        *self.close_codes_sent.entry(code).or_default() += 1;
    }

    pub fn is_empty(&self) -> bool {
        *self == WireCounters::default()
    }

    pub fn add(&mut self, o: &WireCounters) {
        self.pings_received += o.pings_received;
        self.pings_sent += o.pings_sent;
        self.pongs_received += o.pongs_received;
        self.pongs_missed += o.pongs_missed;
        self.unmarked_frames += o.unmarked_frames;
        for (k, v) in &o.close_codes_received {
            *self.close_codes_received.entry(*k).or_default() += v;
        }
        for (k, v) in &o.close_codes_sent {
            *self.close_codes_sent.entry(*k).or_default() += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_add_every_field_and_code() {
        let mut a = WireCounters { pings_received: 2, pongs_missed: 1, ..Default::default() };
        a.close_received(4001);
        a.close_received(ABNORMAL);
        let mut b = WireCounters { pings_received: 1, unmarked_frames: 5, ..Default::default() };
        b.close_received(4001);
        b.close_sent(1007);
        a.add(&b);
        assert_eq!((a.pings_received, a.pongs_missed, a.unmarked_frames), (3, 1, 5));
        assert_eq!(a.close_codes_received, BTreeMap::from([(4001, 2), (ABNORMAL, 1)]));
        assert_eq!(a.close_codes_sent, BTreeMap::from([(1007, 1)]));
        assert!(!a.is_empty() && WireCounters::default().is_empty());
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.contains("\"close_codes_received\":{\"1006\":1,\"4001\":2}"), "{json}");
    }
}
