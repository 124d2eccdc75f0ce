//! What compression did on a core: the servers' answers per connection, messages and payload
//! bytes before and after compression each way. Kept per thread (the stream that compresses has
//! no handle on the core's statistics) and taken into the core's next snapshot, like connect
//! phases.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Messages and payload bytes one way (frame headers not counted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Compressed messages.
    pub messages: u64,
    /// Their payload as the application sees it (`--size` for herd's own).
    pub bytes: u64,
    /// Their payload on the wire, compressed.
    pub wire_bytes: u64,
}

impl Flow {
    pub fn add(&mut self, o: &Flow) {
        self.messages += o.messages;
        self.bytes += o.bytes;
        self.wire_bytes += o.wire_bytes;
    }

    /// Wire bytes per application byte (0 when nothing went).
    pub fn ratio(&self) -> f64 {
        if self.bytes == 0 {
            0.0
        } else {
            self.wire_bytes as f64 / self.bytes as f64
        }
    }
}

/// permessage-deflate on a run's connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeflateCounters {
    /// What herd offered (`Sec-WebSocket-Extensions`), set in the results from `--deflate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered: Option<String>,
    /// Established connections by the server's answer to the offer (`Sec-WebSocket-Extensions`
    /// as herd read it back; `declined` when the server answered none).
    #[serde(default)]
    pub answers: BTreeMap<String, u64>,
    /// Compressed messages received, inflated.
    #[serde(default)]
    pub received: Flow,
    /// Messages herd compressed and sent.
    #[serde(default)]
    pub sent: Flow,
}

/// An `answers` key for a connection whose server accepted no compression.
pub const DECLINED: &str = "declined";

impl DeflateCounters {
    pub fn is_empty(&self) -> bool {
        *self == DeflateCounters::default()
    }

    pub fn add(&mut self, o: &DeflateCounters) {
        if self.offered.is_none() {
            self.offered.clone_from(&o.offered);
        }
        for (k, v) in &o.answers {
            *self.answers.entry(k.clone()).or_default() += v;
        }
        self.received.add(&o.received);
        self.sent.add(&o.sent);
    }
}

impl DeflateCounters {
    /// The summary's line: what was offered (`mode`), what the servers answered per connection,
    /// and the compression each way, e.g. `browser offered "permessage-deflate;
    /// client_max_window_bits", answered "permessage-deflate" x9; received 30 messages, 3840 B
    /// in 1150 B on the wire (30%); sent 15 messages, 1920 B in 585 B on the wire (30%)`.
    pub fn line(&self, mode: super::params::Mode) -> String {
        let answers: Vec<String> = self.answers.iter().map(|(a, n)| format!("\"{a}\" x{n}")).collect();
        let answered = if answers.is_empty() { "no connection upgraded".to_string() } else { answers.join(", ") };
        let flow = |f: &Flow| {
            format!(
                "{} messages, {} B in {} B on the wire ({:.0}%)",
                f.messages,
                f.bytes,
                f.wire_bytes,
                f.ratio() * 100.0
            )
        };
        let offer = mode.offer().unwrap_or("nothing");
        format!(
            "{} offered \"{offer}\", answered {answered}; received {}; sent {}",
            mode.name(),
            flow(&self.received),
            flow(&self.sent)
        )
    }
}

thread_local! {
    static TALLY: RefCell<DeflateCounters> = RefCell::new(DeflateCounters::default());
}

/// A connection established with this answer (`None`: the server declined).
pub fn answered(answer: Option<&str>) {
    TALLY.with_borrow_mut(|t| *t.answers.entry(answer.unwrap_or(DECLINED).to_string()).or_default() += 1);
}

/// A message inflated: `wire` compressed payload bytes gave `plain` bytes.
pub fn inflated(wire: usize, plain: usize) {
    TALLY.with_borrow_mut(|t| {
        t.received.messages += 1;
        t.received.bytes += plain as u64;
        t.received.wire_bytes += wire as u64;
    });
}

/// A message compressed: `plain` bytes went as `wire` bytes.
pub fn deflated(plain: usize, wire: usize) {
    TALLY.with_borrow_mut(|t| {
        t.sent.messages += 1;
        t.sent.bytes += plain as u64;
        t.sent.wire_bytes += wire as u64;
    });
}

/// What this thread counted since the last take.
pub fn take() -> DeflateCounters {
    TALLY.take()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_thread_and_merge() {
        let _ = take();
        answered(Some("permessage-deflate"));
        answered(Some("permessage-deflate"));
        answered(None);
        inflated(40, 128);
        deflated(128, 50);
        deflated(128, 30);
        let mut a = take();
        assert_eq!(a.answers.get("permessage-deflate"), Some(&2));
        assert_eq!(a.answers.get(DECLINED), Some(&1));
        assert_eq!(a.received, Flow { messages: 1, bytes: 128, wire_bytes: 40 });
        assert_eq!(a.sent, Flow { messages: 2, bytes: 256, wire_bytes: 80 });
        assert_eq!(a.sent.ratio(), 80.0 / 256.0);
        assert!(take().is_empty(), "taken once");
        let b = a.clone();
        a.add(&b);
        assert_eq!((a.answers["permessage-deflate"], a.sent.messages), (4, 4));
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<DeflateCounters>(&text).unwrap(), a);
        assert_eq!(
            b.line(super::super::params::Mode::Browser),
            "browser offered \"permessage-deflate; client_max_window_bits\", answered \"declined\" x1, \
             \"permessage-deflate\" x2; received 1 messages, 128 B in 40 B on the wire (31%); sent 2 messages, 256 B \
             in 80 B on the wire (31%)"
        );
    }
}
