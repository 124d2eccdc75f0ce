//! Per-core statistics of a run and their merge on the reporter thread.
//!
//! Each executor owns one [`CoreStats`] and never shares it. Once per interval it hands a
//! [`Snapshot`] (its cumulative counters plus the histograms recorded since the last snapshot) to
//! the reporter, which folds snapshots into a [`Merged`] view. Merging is exact: counters add and
//! HDR histograms add bucket by bucket.

use hdrhistogram::Histogram;
use serde::Serialize;

pub use crate::measure::latency::{new_histogram, HIST_HIGH_US, HIST_LOW_US, HIST_SIGFIG};

/// Maps an I/O error while connecting to its category.
pub fn connect_error_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        std::io::ErrorKind::AddrNotAvailable => ErrorKind::AddrNotAvailable,
        std::io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => ErrorKind::Reset,
        _ => ErrorKind::ConnectOther,
    }
}

/// Categories of per-connection errors. Each is counted; none ends a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// TCP connect refused (nothing listening, or the server's backlog is full).
    ConnectRefused,
    /// No free local address/port for the connection (EADDRNOTAVAIL).
    AddrNotAvailable,
    /// Connect plus handshake did not finish within the connect timeout.
    ConnectTimeout,
    /// Any other error while connecting (fd limit, unreachable, ...).
    ConnectOther,
    /// The server answered the upgrade with something other than 101.
    HandshakeRejected,
    /// The server's 101 answer was malformed or had a wrong Sec-WebSocket-Accept.
    HandshakeInvalid,
    /// The connection was reset by the peer.
    Reset,
    /// A WebSocket protocol violation by the peer.
    Protocol,
    /// Any other I/O error on an established connection.
    Io,
    /// A binary frame arrived where text was expected.
    BinaryFrame,
    /// A frame carried no marker.
    MarkerMissing,
    /// A marker that could not be parsed (truncated, bad digits).
    MarkerMalformed,
    /// A well-formed marker of another run.
    MarkerForeign,
    /// A marker naming a conversation, sender or sequence number that this run never sent to this
    /// receiver.
    MarkerOutOfRange,
    /// Sending a message failed.
    SendFailed,
    /// A frame larger than `--max-frame` arrived; the connection is closed with 1009.
    FrameTooLarge,
    /// A text frame that is not valid UTF-8 arrived; the connection is closed with 1007.
    InvalidUtf8,
    /// The peer closed an established connection cleanly (close frame or EOF after one) before
    /// herd did.
    ClosedByPeer,
    /// TLS: the server's certificate does not chain to a trusted root (or the server refused
    /// ours as unknown).
    TlsUnknownCa,
    /// TLS: the server's certificate is not valid for the URL's host.
    TlsNameMismatch,
    /// TLS: a certificate is expired or not yet valid.
    TlsExpired,
    /// TLS: any other handshake failure (no common cipher, a required client certificate
    /// missing, a peer that does not speak TLS).
    TlsHandshake,
    /// TLS: no protocol version in common.
    TlsProtocolVersion,
    /// A join step waiting for a server frame (`--expect`) saw none match within
    /// `--expect-timeout`.
    JoinTimeout,
    /// A compressed message that is not valid deflate data; the connection is closed with 1007.
    DeflateCorrupt,
    /// A frame with a reserved bit that no negotiated extension gives a meaning (RSV1 without
    /// permessage-deflate, or where RFC 7692 does not allow it); closed with 1002.
    ReservedBits,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 26] = [
        ErrorKind::ConnectRefused,
        ErrorKind::AddrNotAvailable,
        ErrorKind::ConnectTimeout,
        ErrorKind::ConnectOther,
        ErrorKind::HandshakeRejected,
        ErrorKind::HandshakeInvalid,
        ErrorKind::Reset,
        ErrorKind::Protocol,
        ErrorKind::Io,
        ErrorKind::BinaryFrame,
        ErrorKind::MarkerMissing,
        ErrorKind::MarkerMalformed,
        ErrorKind::MarkerForeign,
        ErrorKind::MarkerOutOfRange,
        ErrorKind::SendFailed,
        ErrorKind::FrameTooLarge,
        ErrorKind::InvalidUtf8,
        ErrorKind::ClosedByPeer,
        ErrorKind::TlsUnknownCa,
        ErrorKind::TlsNameMismatch,
        ErrorKind::TlsExpired,
        ErrorKind::TlsHandshake,
        ErrorKind::TlsProtocolVersion,
        ErrorKind::JoinTimeout,
        ErrorKind::DeflateCorrupt,
        ErrorKind::ReservedBits,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// The name used in JSON results and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::AddrNotAvailable => "addr_not_available",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConnectOther => "connect_other",
            ErrorKind::HandshakeRejected => "handshake_rejected",
            ErrorKind::HandshakeInvalid => "handshake_invalid",
            ErrorKind::Reset => "reset",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Io => "io",
            ErrorKind::BinaryFrame => "binary_frame",
            ErrorKind::MarkerMissing => "marker_missing",
            ErrorKind::MarkerMalformed => "marker_malformed",
            ErrorKind::MarkerForeign => "marker_foreign",
            ErrorKind::MarkerOutOfRange => "marker_out_of_range",
            ErrorKind::SendFailed => "send_failed",
            ErrorKind::FrameTooLarge => "frame_too_large",
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::ClosedByPeer => "closed_by_peer",
            ErrorKind::TlsUnknownCa => "tls_unknown_ca",
            ErrorKind::TlsNameMismatch => "tls_name_mismatch",
            ErrorKind::TlsExpired => "tls_expired",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::TlsProtocolVersion => "tls_protocol_version",
            ErrorKind::JoinTimeout => "join_timeout",
            ErrorKind::DeflateCorrupt => "deflate_corrupt",
            ErrorKind::ReservedBits => "reserved_bits",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Monotonic counters of one core (or, merged, of the whole run), and two gauges
/// (`conns_connecting`, `msgs_unsent`) that a core sets at each snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub conns_attempted: u64,
    pub conns_established: u64,
    pub conns_failed: u64,
    /// Connections established again after the peer closed or lost them (`--reconnect`); each
    /// is also counted in `conns_attempted` and `conns_established`.
    pub conns_reconnected: u64,
    /// Gauge: connections in their TCP connect or WebSocket handshake now (first connects and
    /// reconnects). A target that stalls handshakes keeps this up.
    pub conns_connecting: u64,
    /// Established connections that the peer closed (close frame, EOF or reset) before herd did.
    pub conns_closed_by_peer: u64,
    /// Connections herd closed itself (at the end of the run, or mid-run: see `conns_left`).
    pub conns_closed: u64,
    /// Of `conns_closed`, those closed mid-run after everything owed to them had arrived: a
    /// stage ramping down, `--churn` or `--storm`.
    pub conns_left: u64,
    /// Members that left (`--churn`, `--storm`) and connected again; each is also counted in
    /// `conns_attempted` and `conns_established`.
    pub conns_rejoined: u64,
    /// Messages written to a socket.
    pub msgs_sent: u64,
    /// Deliveries owed: for each sent message, the other members of its conversation that were
    /// connected when it was sent.
    pub msgs_expected: u64,
    /// First receipts of expected messages.
    pub msgs_delivered: u64,
    /// Receipts of a message the receiver already had.
    pub msgs_duplicated: u64,
    /// First receipts of a message after a later message of the same sender.
    pub msgs_reordered: u64,
    /// Receipts of a message sent before the receiver was connected (not owed, not delivered).
    pub msgs_unexpected: u64,
    /// A sender receiving its own message back (servers that echo).
    pub msgs_echoed: u64,
    /// With `--reconnect`: for each sent message, the other members of its conversation whose
    /// connection was down and being opened again. Not owed (not in `msgs_expected`), but
    /// deliveries those members missed while away.
    pub msgs_missed_away: u64,
    /// Holes the loss trackers gave up (more than [`crate::measure::accounting::MAX_HOLES`] per stream).
    pub msgs_holes_evicted: u64,
    /// Gauge: messages the schedule made due that were not written (yet): the sender's
    /// connection was down, or the target stopped reading. At the end of a run: never sent.
    pub msgs_unsent: u64,
    pub errors: [u64; ErrorKind::COUNT],
    /// TLS handshakes completed, and how many of them resumed an earlier session.
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
    /// Pings, pongs, unmarked frames and close codes.
    pub wire: crate::ws::wire::WireCounters,
    /// Gauges set at each snapshot from the executor thread's own `schedstat` (see
    /// `measure/cpu.rs`): time on a CPU and time waiting for one since the thread started, and
    /// 1 when the kernel gave them (merged: how many threads did).
    pub cpu_run_ns: u64,
    pub cpu_wait_ns: u64,
    pub cpu_threads: u64,
}

impl Counters {
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind.index()] += 1;
    }

    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Connections open now: established and not yet closed by either side.
    pub fn open(&self) -> u64 {
        self.conns_established.saturating_sub(self.conns_closed_by_peer + self.conns_closed)
    }

    /// Owed deliveries that have not arrived (yet). At the end of a run this is the missed count.
    pub fn pending(&self) -> u64 {
        self.msgs_expected.saturating_sub(self.msgs_delivered)
    }

    pub fn add(&mut self, o: &Counters) {
        // Destructured, so that a new counter cannot be left out of the merge.
        let Counters {
            conns_attempted,
            conns_established,
            conns_failed,
            conns_reconnected,
            conns_connecting,
            conns_closed_by_peer,
            conns_closed,
            conns_left,
            conns_rejoined,
            msgs_sent,
            msgs_expected,
            msgs_delivered,
            msgs_duplicated,
            msgs_reordered,
            msgs_unexpected,
            msgs_echoed,
            msgs_missed_away,
            msgs_holes_evicted,
            msgs_unsent,
            errors,
            tls_handshakes,
            tls_resumed,
            wire,
            cpu_run_ns,
            cpu_wait_ns,
            cpu_threads,
        } = o;
        self.conns_attempted += conns_attempted;
        self.conns_established += conns_established;
        self.conns_failed += conns_failed;
        self.conns_reconnected += conns_reconnected;
        self.conns_connecting += conns_connecting;
        self.conns_closed_by_peer += conns_closed_by_peer;
        self.conns_closed += conns_closed;
        self.conns_left += conns_left;
        self.conns_rejoined += conns_rejoined;
        self.msgs_sent += msgs_sent;
        self.msgs_expected += msgs_expected;
        self.msgs_delivered += msgs_delivered;
        self.msgs_duplicated += msgs_duplicated;
        self.msgs_reordered += msgs_reordered;
        self.msgs_unexpected += msgs_unexpected;
        self.msgs_echoed += msgs_echoed;
        self.msgs_missed_away += msgs_missed_away;
        self.msgs_holes_evicted += msgs_holes_evicted;
        self.msgs_unsent += msgs_unsent;
        self.tls_handshakes += tls_handshakes;
        self.tls_resumed += tls_resumed;
        self.cpu_run_ns += cpu_run_ns;
        self.cpu_wait_ns += cpu_wait_ns;
        self.cpu_threads += cpu_threads;
        for (a, b) in self.errors.iter_mut().zip(errors.iter()) {
            *a += b;
        }
        self.wire.add(wire);
    }
}

/// Histograms in microseconds.
#[derive(Clone, Debug)]
pub struct Histos {
    /// Delivery latency from the intended send time (corrected for coordinated omission).
    pub corrected: Histogram<u64>,
    /// Delivery latency from the actual send time.
    pub uncorrected: Histogram<u64>,
    /// TCP connect plus WebSocket handshake.
    pub connect: Histogram<u64>,
    /// The parts of `connect`: TCP connect, TLS handshake (wss:// only), WebSocket upgrade, and
    /// the join sequence (`--join`/`--expect`; what a chat user feels as entering a room).
    pub phases: [Histogram<u64>; ConnectPhase::COUNT],
    /// Send lag: how late each message left against its intended send time (herd's own delay,
    /// part of `corrected`).
    pub send_lag: Histogram<u64>,
    /// Read lag: from the kernel's receive time of the bytes to herd's read of them (not part of
    /// latency, which counts to the kernel's time).
    pub read_lag: Histogram<u64>,
}

impl Default for Histos {
    fn default() -> Self {
        Histos {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            connect: new_histogram(),
            phases: std::array::from_fn(|_| new_histogram()),
            send_lag: new_histogram(),
            read_lag: new_histogram(),
        }
    }
}

/// A part of opening a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectPhase {
    Tcp,
    Tls,
    Upgrade,
    Join,
}

impl ConnectPhase {
    pub const ALL: [ConnectPhase; 4] =
        [ConnectPhase::Tcp, ConnectPhase::Tls, ConnectPhase::Upgrade, ConnectPhase::Join];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            ConnectPhase::Tcp => "tcp_connect",
            ConnectPhase::Tls => "tls_handshake",
            ConnectPhase::Upgrade => "ws_upgrade",
            ConnectPhase::Join => "join",
        }
    }
}

/// What the connect path records on a core between two snapshots: phase times and TLS counts.
/// It lives in a thread-local because a core is one thread and the connect path (a hook in
/// `client/connect.rs`) has no handle on the core's `CoreStats`; the core's next snapshot takes
/// it in.
#[derive(Default)]
struct PhaseLog {
    phases: Option<Box<[Histogram<u64>; ConnectPhase::COUNT]>>,
    tls_handshakes: u64,
    tls_resumed: u64,
    /// What the server said while connecting: rejected upgrades' statuses, closes and automatic
    /// replies during the join.
    wire: crate::ws::wire::WireCounters,
}

thread_local! {
    static PHASE_LOG: std::cell::RefCell<PhaseLog> = std::cell::RefCell::new(PhaseLog::default());
}

thread_local! {
    /// Read lags recorded on this thread since its core's last snapshot. A thread-local because
    /// reads date their bytes in the socket (`runtime/net/socket.rs`), which has no handle on
    /// the core's statistics; allocated on the first read that has a kernel time.
    static READ_LAG: std::cell::RefCell<Option<Box<Histogram<u64>>>> = const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// Whether this thread's reads count toward read lag: from its core's send phase on.
    static READ_LAG_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Starts (or stops) counting this thread's reads toward read lag. A client core counts from
/// its send phase's start to its drain's end: read lag tells how busy the cores were while
/// messages flowed, and the reads of a connect ramp or of the closing handshakes (thousands at
/// once) would set its p99 on their own.
pub fn count_read_lag(on: bool) {
    READ_LAG_ON.set(on);
}

/// Records, on this core, that a read came `ns` after the kernel received its last bytes.
pub fn record_read_lag(ns: u64) {
    if !READ_LAG_ON.get() {
        return;
    }
    READ_LAG
        .with_borrow_mut(|h| h.get_or_insert_with(|| Box::new(new_histogram())).saturating_record((ns / 1000).max(1)));
}

/// Records how long a phase of opening a connection took, on this core.
pub fn record_phase(phase: ConnectPhase, ns: u64) {
    PHASE_LOG.with_borrow_mut(|l| {
        let h = l.phases.get_or_insert_with(|| Box::new(std::array::from_fn(|_| new_histogram())));
        h[phase as usize].saturating_record((ns / 1000).max(1));
    });
}

/// Counts a completed TLS handshake on this core.
pub fn record_tls_handshake(resumed: bool) {
    PHASE_LOG.with_borrow_mut(|l| {
        l.tls_handshakes += 1;
        l.tls_resumed += resumed as u64;
    });
}

/// Records, on this core, something the server said while a connection was being opened.
pub fn record_wire(f: impl FnOnce(&mut crate::ws::wire::WireCounters)) {
    PHASE_LOG.with_borrow_mut(|l| f(&mut l.wire));
}

impl Histos {
    pub fn add(&mut self, o: &Histos) {
        // Same bounds everywhere, so addition cannot fail. An empty histogram adds nothing, and
        // adding would still scan all its counts.
        for (a, b) in self.all_mut().into_iter().zip(o.all()) {
            if !b.is_empty() {
                let _ = a.add(b);
            }
        }
    }

    /// Empties every histogram; an empty one is left alone (resetting writes all its counts).
    pub fn reset(&mut self) {
        self.all_mut().into_iter().filter(|h| !h.is_empty()).for_each(|h| h.reset());
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.all().iter().all(|h| h.is_empty())
    }

    fn all(&self) -> Vec<&Histogram<u64>> {
        let mut v = vec![&self.corrected, &self.uncorrected, &self.connect, &self.send_lag, &self.read_lag];
        v.extend(self.phases.iter());
        v
    }

    fn all_mut(&mut self) -> Vec<&mut Histogram<u64>> {
        let mut v =
            vec![&mut self.corrected, &mut self.uncorrected, &mut self.connect, &mut self.send_lag, &mut self.read_lag];
        v.extend(self.phases.iter_mut());
        v
    }
}

/// The state one executor owns.
#[derive(Default)]
pub struct CoreStats {
    pub counters: Counters,
    /// Recorded since the last snapshot.
    pub interval: Histos,
    /// Per stage and per outage (see `windows.rs`).
    pub windows: crate::measure::windows::CoreWindows,
}

impl CoreStats {
    pub fn record_delivery(&mut self, corrected_ns: u64, uncorrected_ns: u64) {
        self.interval.corrected.saturating_record((corrected_ns / 1000).max(1));
        self.interval.uncorrected.saturating_record((uncorrected_ns / 1000).max(1));
    }

    /// Counts one receipt of a message owed to the connection: a duplicate, or a delivery
    /// (reordered unless it came first) with its `(corrected, uncorrected)` latencies, counted
    /// also in the window `window` picks (a stage's, a room class's). Returns the latencies of a
    /// delivery.
    pub fn count_receipt(
        &mut self,
        r: crate::measure::accounting::Receipt,
        (corrected, uncorrected): (u64, u64),
        window: impl FnOnce(&mut crate::measure::windows::CoreWindows) -> Option<&mut crate::measure::windows::StageStats>,
    ) -> Option<(u64, u64)> {
        use crate::measure::accounting::Receipt;
        if r == Receipt::Duplicate {
            self.counters.msgs_duplicated += 1;
            if let Some(w) = window(&mut self.windows) {
                w.duplicated += 1;
            }
            return None;
        }
        if r != Receipt::First {
            self.counters.msgs_reordered += 1;
        }
        self.counters.msgs_delivered += 1;
        self.record_delivery(corrected, uncorrected);
        if let Some(w) = window(&mut self.windows) {
            w.record_delivery(corrected, uncorrected);
        }
        Some((corrected, uncorrected))
    }

    /// A message left `ns` after its intended send time (0 when it left on time or early).
    pub fn record_send_lag(&mut self, ns: u64) {
        self.interval.send_lag.saturating_record((ns / 1000).max(1));
    }

    pub fn record_connect(&mut self, ns: u64) {
        self.interval.connect.saturating_record((ns / 1000).max(1));
    }

    /// Moves what the connect path recorded on this thread into these statistics.
    pub fn take_phase_log(&mut self) {
        let log = PHASE_LOG.take();
        self.counters.tls_handshakes += log.tls_handshakes;
        self.counters.tls_resumed += log.tls_resumed;
        self.counters.wire.add(&log.wire);
        // What permessage-deflate counted on this thread (`ws/deflate/tally.rs`).
        let deflate = crate::ws::deflate::tally::take();
        if !deflate.is_empty() {
            self.counters.wire.deflate.add(&deflate);
        }
        if let Some(p) = log.phases {
            for (a, b) in self.interval.phases.iter_mut().zip(p.iter()) {
                let _ = a.add(b);
            }
        }
        if let Some(h) = READ_LAG.take() {
            let _ = self.interval.read_lag.add(&*h);
        }
    }

    /// Takes a snapshot and starts a new interval.
    pub fn snapshot(&mut self, core: usize, at_ns: u64, last: bool) -> Snapshot {
        self.take_phase_log();
        // The thread's CPU so far: one small file read per interval, never per message.
        if let Some(c) = crate::measure::cpu::this_thread() {
            (self.counters.cpu_run_ns, self.counters.cpu_wait_ns, self.counters.cpu_threads) = (c.run_ns, c.wait_ns, 1);
        }
        // An idle core records nothing: no copy of its (large, empty) histograms.
        let interval = (!self.interval.is_empty()).then(|| {
            let h = Box::new(self.interval.clone());
            self.interval.reset();
            h
        });
        Snapshot { core, at_ns, last, counters: self.counters.clone(), interval, windows: self.windows.take() }
    }
}

/// What a core hands to the reporter once per interval.
pub struct Snapshot {
    pub core: usize,
    /// Clock reading (`clock::now_ns`) when it was taken.
    pub at_ns: u64,
    /// The core's final snapshot: it will send no more.
    pub last: bool,
    /// Cumulative since the start of the run.
    pub counters: Counters,
    /// Recorded since the core's previous snapshot; `None` when nothing was.
    pub interval: Option<Box<Histos>>,
    pub windows: crate::measure::windows::CoreWindows,
}

/// The run as a whole, folded from snapshots.
pub struct Merged {
    per_core: Vec<Counters>,
    /// Sum of `per_core`.
    pub counters: Counters,
    /// Everything recorded since the start.
    pub total: Histos,
    /// What arrived since the last call to [`Merged::take_interval`].
    pub interval: Histos,
    pub windows: crate::measure::windows::MergedWindows,
}

impl Merged {
    pub fn new(cores: usize) -> Self {
        Merged {
            per_core: vec![Counters::default(); cores],
            counters: Counters::default(),
            total: Histos::default(),
            interval: Histos::default(),
            windows: Default::default(),
        }
    }

    pub fn fold(&mut self, s: &Snapshot) {
        if s.core >= self.per_core.len() {
            self.per_core.resize(s.core + 1, Counters::default());
        }
        self.per_core[s.core] = s.counters.clone();
        let mut sum = Counters::default();
        for c in &self.per_core {
            sum.add(c);
        }
        self.counters = sum;
        if let Some(h) = &s.interval {
            self.total.add(h);
            self.interval.add(h);
        }
        self.windows.fold(s.core, &s.windows);
    }

    /// The histograms of the interval just ended; a fresh interval starts.
    pub fn take_interval(&mut self) -> Histos {
        let out = self.interval.clone();
        self.interval.reset();
        out
    }

    pub fn per_core(&self) -> &[Counters] {
        &self.per_core
    }
}

/// A snapshot of one core for tests: `delivered` messages with these latencies (µs).
#[cfg(test)]
pub(crate) fn test_snapshot(core: usize, delivered: u64, lat_us: &[u64]) -> Snapshot {
    let mut interval = Histos::default();
    for &v in lat_us {
        interval.corrected.record(v).unwrap();
        interval.uncorrected.record(v / 2).unwrap();
    }
    let counters = Counters {
        conns_established: 4,
        msgs_expected: delivered + 1,
        msgs_delivered: delivered,
        ..Default::default()
    };
    let interval = Some(Box::new(interval));
    Snapshot { core, at_ns: 0, last: false, counters, interval, windows: Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_merge_exactly() {
        let mut a = CoreStats::default();
        let mut b = CoreStats::default();
        a.counters.msgs_sent = 3;
        a.counters.msgs_expected = 9;
        a.counters.msgs_delivered = 8;
        a.counters.error(ErrorKind::Reset);
        b.counters.msgs_sent = 2;
        b.counters.msgs_expected = 6;
        b.counters.msgs_delivered = 6;
        a.record_delivery(1_500_000, 1_000_000);
        b.record_delivery(3_000_000, 2_000_000);
        b.record_delivery(5_000, 0);
        a.record_send_lag(0);
        b.record_send_lag(9_000_000);

        let mut m = Merged::new(2);
        m.fold(&a.snapshot(0, 1, false));
        m.fold(&b.snapshot(1, 1, false));
        assert_eq!(m.counters.msgs_sent, 5);
        assert_eq!(m.counters.pending(), 1);
        assert_eq!(m.counters.errors_of(ErrorKind::Reset), 1);
        assert_eq!(m.total.corrected.len(), 3);
        assert_eq!(m.total.uncorrected.min(), 1, "sub-microsecond values count as 1 µs");
        let lag = &m.total.send_lag;
        assert_eq!(lag.len(), 2, "send lag merges like latency");
        assert!(lag.equivalent(lag.max(), 9_000) && lag.min() == 1, "{} {}", lag.min(), lag.max());

        // A later cumulative snapshot of core 0 replaces its counters, and adds its new interval.
        a.counters.msgs_sent = 4;
        a.record_delivery(2_000_000, 1_000_000);
        m.fold(&a.snapshot(0, 2, true));
        assert_eq!(m.counters.msgs_sent, 6);
        assert_eq!(m.total.corrected.len(), 4);
        assert_eq!(m.take_interval().corrected.len(), 4);
        assert_eq!(m.interval.corrected.len(), 0);
    }

    #[test]
    fn error_names_are_unique_and_indexed_in_order() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::COUNT);
    }

    #[test]
    fn phases_recorded_on_a_thread_reach_its_next_snapshot() {
        std::thread::spawn(|| {
            let mut a = CoreStats::default();
            record_phase(ConnectPhase::Tcp, 2_000_000);
            record_phase(ConnectPhase::Tls, 5_000_000);
            record_phase(ConnectPhase::Tls, 7_000_000);
            record_tls_handshake(true);
            record_tls_handshake(false);
            // Before the send phase a read is not counted; from it on, it is.
            record_read_lag(900_000);
            count_read_lag(true);
            record_read_lag(250_000);
            let s = a.snapshot(0, 1, false);
            let h = s.interval.as_ref().expect("phases were recorded");
            assert_eq!(h.phases[ConnectPhase::Tcp as usize].len(), 1);
            assert_eq!(h.phases[ConnectPhase::Tls as usize].len(), 2);
            assert_eq!(h.phases[ConnectPhase::Upgrade as usize].len(), 0);
            assert_eq!((s.counters.tls_handshakes, s.counters.tls_resumed), (2, 1));
            assert_eq!((h.read_lag.len(), h.read_lag.min()), (1, 250), "read lags reach the snapshot");
            // Taken once: the next snapshot has only what came since.
            let s = a.snapshot(0, 2, false);
            assert!(s.interval.is_none(), "nothing recorded since: no histograms sent");
            assert_eq!(s.counters.tls_handshakes, 2, "counters stay cumulative");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_receipt_counts_once_in_the_run_and_in_its_window() {
        use crate::measure::accounting::Receipt;
        let mut s = CoreStats::default();
        s.windows.classes = vec![Default::default(), Default::default()];
        assert_eq!(s.count_receipt(Receipt::First, (3_000, 2_000), |w| w.classes.get_mut(1)), Some((3_000, 2_000)));
        assert_eq!(s.count_receipt(Receipt::Reordered, (5_000, 4_000), |w| w.classes.get_mut(1)), Some((5_000, 4_000)));
        assert_eq!(s.count_receipt(Receipt::Duplicate, (9_000, 9_000), |w| w.classes.get_mut(1)), None);
        // No window (a stage past the run's): the run's counts still move.
        assert_eq!(s.count_receipt(Receipt::First, (1_000, 1_000), |w| w.classes.get_mut(7)), Some((1_000, 1_000)));
        let c = &s.counters;
        assert_eq!((c.msgs_delivered, c.msgs_reordered, c.msgs_duplicated), (3, 1, 1));
        assert_eq!(s.interval.corrected.len(), 3, "duplicates record no latency");
        let w = &s.windows.classes[1];
        assert_eq!((w.delivered, w.duplicated, w.corrected.as_ref().map(|h| h.len())), (2, 1, Some(2)));
        assert_eq!(s.windows.classes[0].delivered, 0);
    }

    #[test]
    fn open_connections_exclude_both_kinds_of_close() {
        let c = Counters { conns_established: 10, conns_closed_by_peer: 3, conns_closed: 2, ..Default::default() };
        assert_eq!(c.open(), 5);
    }
}
