//! What the run's driver and the cores share: the phase, the cores' acknowledgements and
//! counts, the connection allowance of gated runs (the ceiling), abort and abandonment.

use crate::client::phase::Phase;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the orchestrator and the cores share: phase changes one way, progress the other.
pub struct Control {
    phase: AtomicU8,
    /// Clock ns when sending starts (set with the Sending phase).
    pub send_start_ns: AtomicU64,
    /// Cores whose connect ramp has finished.
    pub ramped: AtomicUsize,
    /// Per core: deliveries owed and not yet received.
    pub pending: Vec<AtomicU64>,
    /// Per core: connections open now.
    pub open: Vec<AtomicU64>,
    /// Per core: connections attempted, and attempts settled (established or failed).
    pub attempted: Vec<AtomicU64>,
    pub settled: Vec<AtomicU64>,
    /// Stop at once, without closing handshakes (second Ctrl-C).
    pub abort: AtomicBool,
    /// Set when a core did not stop in time: the reporter stops waiting for it.
    pub abandoned: AtomicBool,
    /// Per core: the last phase it has applied, stored after the counters above are published
    /// for that phase (so a driver that sees the acknowledgement reads fresh counts).
    acked: Vec<AtomicU8>,
    /// The cores' heartbeats, watched by the watchdog (see `watchdog.rs`).
    pub heartbeats: Arc<crate::runtime::watchdog::Heartbeats>,
    /// Connections the run may attempt so far, across all cores (the ceiling raises it in
    /// steps; a plain run allows everything at once), and how many the run has in all.
    allowed: AtomicU64,
    all_conns: AtomicU64,
    /// Per core: an eventfd rung on every phase change (and by the core's own tasks on news its
    /// scheduler waits for), so that a core between control looks wakes at once. `None` where
    /// the kernel gave none: that core looks every 50 ms instead.
    bells: Vec<Option<OwnedFd>>,
    /// `--storm`: how many connections the cores found open so far, so that the run closes
    /// exactly its fraction (taken once per core per run, never on a per-event path).
    pub storm_tally: std::sync::Mutex<crate::shape::tally::StormTally>,
}

impl Control {
    pub fn new(cores: usize) -> Control {
        Control {
            phase: AtomicU8::new(Phase::Connecting as u8),
            send_start_ns: AtomicU64::new(0),
            ramped: AtomicUsize::new(0),
            pending: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            open: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            attempted: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            settled: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            abort: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            acked: (0..cores).map(|_| AtomicU8::new(0)).collect(),
            heartbeats: crate::runtime::watchdog::Heartbeats::new(cores),
            allowed: AtomicU64::new(0),
            all_conns: AtomicU64::new(1),
            bells: (0..cores).map(|_| crate::runtime::net::sys::eventfd().ok()).collect(),
            storm_tally: Default::default(),
        }
    }

    /// Core `core`'s bell (open for the life of this `Control`).
    pub fn bell(&self, core: usize) -> Option<RawFd> {
        self.bells.get(core)?.as_ref().map(|b| b.as_raw_fd())
    }

    /// Wakes core `core`'s scheduler.
    pub fn ring(&self, core: usize) {
        if let Some(fd) = self.bell(core) {
            crate::runtime::net::sys::ring(fd);
        }
    }

    fn ring_all(&self) {
        (0..self.bells.len()).for_each(|c| self.ring(c));
    }

    /// Lets the cores attempt up to `n` connections in all.
    pub fn allow(&self, n: u64) {
        self.allowed.store(n, Ordering::SeqCst);
    }

    pub fn set_all_conns(&self, n: u64) {
        self.all_conns.store(n.max(1), Ordering::SeqCst);
    }

    /// How many of its `core_conns` connections a core may attempt now: its share of the
    /// allowance.
    pub fn allowance(&self, core_conns: u64) -> u64 {
        let allowed = self.allowed.load(Ordering::SeqCst) as u128;
        let all = self.all_conns.load(Ordering::SeqCst) as u128;
        ((allowed * core_conns as u128) / all).min(core_conns as u128) as u64
    }

    pub fn attempted_total(&self) -> u64 {
        self.attempted.iter().map(|p| p.load(Ordering::Relaxed)).sum()
    }

    pub fn settled_total(&self) -> u64 {
        self.settled.iter().map(|p| p.load(Ordering::Relaxed)).sum()
    }

    pub fn phase(&self) -> Phase {
        Phase::from_number(self.phase.load(Ordering::SeqCst))
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::SeqCst);
        self.ring_all();
    }

    /// Stop at once (see `abort`).
    pub fn set_abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.ring_all();
    }

    /// A core has applied `p` and published its counters for it.
    pub fn ack(&self, core: usize, p: Phase) {
        self.acked[core].store(p as u8, Ordering::SeqCst);
    }

    /// Cores that have not yet acknowledged `p`.
    pub fn not_acked(&self, p: Phase) -> Vec<usize> {
        (0..self.acked.len()).filter(|&i| self.acked[i].load(Ordering::SeqCst) < p as u8).collect()
    }

    /// Moves every core to `p` and waits (up to `limit`, or until `give_up()`) until each has
    /// applied it; returns the cores that had not.
    pub fn change_phase(&self, p: Phase, limit: Duration, give_up: impl Fn() -> bool) -> Vec<usize> {
        self.set_phase(p);
        crate::measure::clock::wait_until(limit, || give_up() || self.not_acked(p).is_empty());
        self.not_acked(p)
    }

    pub fn pending_total(&self) -> u64 {
        self.pending.iter().map(|p| p.load(Ordering::Relaxed)).sum()
    }

    pub fn open_total(&self) -> u64 {
        self.open.iter().map(|p| p.load(Ordering::Relaxed)).sum()
    }
}
