//! The reference server's counters and their Prometheus text exposition (`GET /metrics`).
//!
//! Each core writes only its own slot (relaxed atomics, no contention); `/metrics` sums the slots.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
#[repr(align(128))]
pub struct CoreCounters {
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub connections_refused: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub http_requests: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_delivered: AtomicU64,
    /// Deliveries dropped by `--drop-every`.
    pub dropped_fault: AtomicU64,
    /// Deliveries discarded because the consumer's queue overflowed.
    pub dropped_slow: AtomicU64,
    pub slow_consumers_closed: AtomicU64,
    /// Extra deliveries made by `--duplicate-every`.
    pub duplicated_fault: AtomicU64,
    pub frames_too_large: AtomicU64,
    pub invalid_utf8: AtomicU64,
    /// `to {room} ...` from a connection not in the room (refused).
    pub not_member: AtomicU64,
    /// Frames on a `/user/` connection that are no command.
    pub unknown_command: AtomicU64,
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

/// A consistent-enough sum of all cores (each counter read once).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerTotals {
    pub connections: u64,
    pub connections_opened: u64,
    pub connections_refused: u64,
    pub handshakes_failed: u64,
    pub rooms: u64,
    pub messages_received: u64,
    pub messages_delivered: u64,
    pub messages_dropped_fault: u64,
    pub messages_dropped_slow_consumer: u64,
    pub messages_duplicated_fault: u64,
    pub slow_consumers_closed: u64,
    pub frames_too_large: u64,
    pub invalid_utf8: u64,
    pub commands_not_member: u64,
    pub commands_unknown: u64,
}

pub fn totals(cores: &[CoreCounters], rooms: u64) -> ServerTotals {
    let mut t = ServerTotals { rooms, ..Default::default() };
    let mut closed = 0;
    for c in cores {
        t.connections_opened += c.connections_opened.load(Relaxed);
        closed += c.connections_closed.load(Relaxed);
        t.connections_refused += c.connections_refused.load(Relaxed);
        t.handshakes_failed += c.handshakes_failed.load(Relaxed);
        t.messages_received += c.messages_received.load(Relaxed);
        t.messages_delivered += c.messages_delivered.load(Relaxed);
        t.messages_dropped_fault += c.dropped_fault.load(Relaxed);
        t.messages_dropped_slow_consumer += c.dropped_slow.load(Relaxed);
        t.messages_duplicated_fault += c.duplicated_fault.load(Relaxed);
        t.slow_consumers_closed += c.slow_consumers_closed.load(Relaxed);
        t.frames_too_large += c.frames_too_large.load(Relaxed);
        t.invalid_utf8 += c.invalid_utf8.load(Relaxed);
        t.commands_not_member += c.not_member.load(Relaxed);
        t.commands_unknown += c.unknown_command.load(Relaxed);
    }
    t.connections = t.connections_opened.saturating_sub(closed);
    t
}

/// Prometheus text format, version 0.0.4.
pub fn render(t: &ServerTotals) -> String {
    let mut s = String::with_capacity(2048);
    let mut one = |name: &str, kind: &str, help: &str, labels: &str, v: u64| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {v}");
    };
    one("herd_server_connections", "gauge", "Open WebSocket connections on this node.", "", t.connections);
    one("herd_server_rooms", "gauge", "Rooms with at least one member on this node.", "", t.rooms);
    one(
        "herd_server_connections_accepted_total",
        "counter",
        "WebSocket connections accepted.",
        "",
        t.connections_opened,
    );
    one(
        "herd_server_connections_refused_total",
        "counter",
        "Connections refused (over --max-connections).",
        "",
        t.connections_refused,
    );
    one(
        "herd_server_handshakes_failed_total",
        "counter",
        "Requests that did not become WebSocket connections.",
        "",
        t.handshakes_failed,
    );
    one(
        "herd_server_messages_received_total",
        "counter",
        "Text frames received from clients.",
        "",
        t.messages_received,
    );
    one("herd_server_messages_delivered_total", "counter", "Frames written to room members.", "", t.messages_delivered);
    let _ = writeln!(
        s,
        "# HELP herd_server_messages_dropped_total Deliveries not made, by reason.\n\
         # TYPE herd_server_messages_dropped_total counter\n\
         herd_server_messages_dropped_total{{reason=\"fault\"}} {}\n\
         herd_server_messages_dropped_total{{reason=\"slow_consumer\"}} {}",
        t.messages_dropped_fault, t.messages_dropped_slow_consumer
    );
    let mut one = |name: &str, help: &str, v: u64| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    one(
        "herd_server_messages_duplicated_total",
        "Extra deliveries made by --duplicate-every.",
        t.messages_duplicated_fault,
    );
    one(
        "herd_server_slow_consumers_closed_total",
        "Connections closed because their queue overflowed.",
        t.slow_consumers_closed,
    );
    one(
        "herd_server_frames_too_large_total",
        "Connections closed with 1009 for an oversized frame.",
        t.frames_too_large,
    );
    one("herd_server_invalid_utf8_total", "Connections closed with 1007 for invalid UTF-8.", t.invalid_utf8);
    let _ = writeln!(
        s,
        "# HELP herd_server_commands_refused_total Commands of /user/ connections answered with an error, by reason.\n\
         # TYPE herd_server_commands_refused_total counter\n\
         herd_server_commands_refused_total{{reason=\"not_member\"}} {}\n\
         herd_server_commands_refused_total{{reason=\"unknown_command\"}} {}",
        t.commands_not_member, t.commands_unknown
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cores_and_renders_every_series() {
        let cores: Vec<CoreCounters> = (0..2).map(|_| CoreCounters::default()).collect();
        inc(&cores[0].connections_opened);
        add(&cores[1].connections_opened, 2);
        inc(&cores[1].connections_closed);
        add(&cores[0].dropped_fault, 5);
        inc(&cores[1].not_member);
        add(&cores[0].unknown_command, 3);
        let t = totals(&cores, 7);
        assert_eq!((t.connections, t.rooms, t.messages_dropped_fault), (2, 7, 5));
        assert_eq!((t.commands_not_member, t.commands_unknown), (1, 3));
        let text = render(&t);
        assert!(text.contains("herd_server_commands_refused_total{reason=\"not_member\"} 1\n"));
        assert!(text.contains("herd_server_commands_refused_total{reason=\"unknown_command\"} 3\n"));
        assert!(text.contains("herd_server_connections 2\n"));
        assert!(text.contains("herd_server_messages_dropped_total{reason=\"fault\"} 5\n"));
        for name in
            ["herd_server_rooms 7", "herd_server_messages_received_total 0", "herd_server_messages_delivered_total 0"]
        {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
