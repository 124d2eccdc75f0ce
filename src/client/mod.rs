//! The generator's executors: each pinned core owns whole conversations, opens their connections
//! at the connect rate, paces their senders from one scheduler, and reports a snapshot of its own
//! statistics every interval.
//!
//! Layout: `mod.rs` what the run's orchestrator sees (plan, control, start), `core.rs` one
//! executor's state, ramp and scheduler, `conn.rs` one connection, `connect.rs` connect and upgrade,
//! `reconnect.rs` backoff and retries after a loss (`--reconnect`), `shaping.rs` stages that
//! open and close conversations, churn and storms.
//! `protocol.rs` the run's protocol (templates, keep-alives, failing a connection) on a connection.

mod conn;
pub mod connect;
mod core;
pub mod protocol;
pub mod reconnect;
mod shaping;

use crate::error::Result;
use crate::stats::Snapshot;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

pub use crate::phase::Phase;

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
    pub heartbeats: Arc<crate::watchdog::Heartbeats>,
    /// Connections the run may attempt so far, across all cores (the ceiling raises it in
    /// steps; a plain run allows everything at once), and how many the run has in all.
    allowed: AtomicU64,
    all_conns: AtomicU64,
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
            heartbeats: crate::watchdog::Heartbeats::new(cores),
            allowed: AtomicU64::new(0),
            all_conns: AtomicU64::new(1),
        }
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
        crate::load::wait_until(limit, || give_up() || self.not_acked(p).is_empty());
        self.not_acked(p)
    }

    pub fn pending_total(&self) -> u64 {
        self.pending.iter().map(|p| p.load(Ordering::Relaxed)).sum()
    }

    pub fn open_total(&self) -> u64 {
        self.open.iter().map(|p| p.load(Ordering::Relaxed)).sum()
    }
}

/// What one core needs to run its share.
#[derive(Clone)]
pub struct CorePlan {
    pub idx: usize,
    pub cpu: usize,
    /// The conversations it owns (global numbers).
    pub convs: Vec<u64>,
    pub members: u32,
    pub senders: u32,
    pub rate: f64,
    pub size: usize,
    pub duration: Duration,
    /// Connections per second for this core.
    pub connect_rate: f64,
    pub connect_timeout: Duration,
    /// Source addresses, used round-robin by connection number; empty: the kernel chooses.
    pub sources: Arc<[std::net::IpAddr]>,
    /// Open lost connections again (`--reconnect`).
    pub reconnect: bool,
    pub run_id: u32,
    pub seed: u64,
    pub interval: Duration,
    /// `--stage`: the send phase's targets; `None`: `rate` for `duration`, every connection
    /// opened before sending.
    pub shape: Option<Arc<crate::shape::Shape>>,
    /// Conversations in the whole scenario: a connection ramp holds the first
    /// `ceil(connections / members)` of them.
    pub all_conversations: u32,
    /// `--churn`: this core's share of leaves and joins per second.
    pub churn: f64,
    pub storm: Option<crate::shape::Storm>,
}

/// Splits conversations over cores round-robin (the i-th of the list to core `i % cores`), so
/// every member of a conversation lives on one core and accounting needs no cross-core state.
pub fn assign(conversations: impl IntoIterator<Item = u64>, cores: usize) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new(); cores];
    for (i, c) in conversations.into_iter().enumerate() {
        out[i % cores].push(c);
    }
    out
}

/// Starts one executor per plan. Each sends snapshots on `tx` and a final one marked `last`.
pub fn start(
    plans: Vec<CorePlan>,
    target: Arc<connect::Target>,
    control: Arc<Control>,
    tx: Sender<Snapshot>,
) -> Result<Vec<glommio::ExecutorJoinHandle<()>>> {
    let mut handles = Vec::with_capacity(plans.len());
    for plan in plans {
        let (target, control, tx) = (target.clone(), control.clone(), tx.clone());
        let name = format!("herd-core-{}", plan.idx);
        let cpu = plan.cpu;
        handles.push(crate::executor::spawn_pinned(&name, cpu, move || core::run_core(plan, target, control, tx))?);
    }
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_whole_and_balanced() {
        let a = assign(0..7, 3);
        assert_eq!(a, vec![vec![0, 3, 6], vec![1, 4], vec![2, 5]]);
        let total: usize = a.iter().map(|v| v.len()).sum();
        assert_eq!(total, 7);
    }
}
