//! The generator's executors: each pinned core owns whole conversations, opens their connections
//! at the connect rate, paces their senders from one scheduler, and reports a snapshot of its own
//! statistics every interval.
//!
//! Layout: `mod.rs` what the run's orchestrator sees (plan, control, start), `core.rs` one
//! executor's state, ramp and scheduler, `conn.rs` one connection, `connect.rs` connect and upgrade,
//! `protocol.rs` the run's protocol (templates, keep-alives, failing a connection) on a connection.

mod conn;
pub mod connect;
mod core;
pub mod protocol;

use crate::error::Result;
use crate::stats::Snapshot;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// Run phases, in order. The orchestrator moves them forward; cores follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Connecting = 1,
    Sending = 2,
    Draining = 3,
    Closing = 4,
    Done = 5,
}

impl Phase {
    pub fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Starting,
            1 => Phase::Connecting,
            2 => Phase::Sending,
            3 => Phase::Draining,
            4 => Phase::Closing,
            _ => Phase::Done,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Connecting => "connecting",
            Phase::Sending => "sending",
            Phase::Draining => "draining",
            Phase::Closing => "closing",
            Phase::Done => "done",
        }
    }
}

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
    /// Stop at once, without closing handshakes (second Ctrl-C).
    pub abort: AtomicBool,
}

impl Control {
    pub fn new(cores: usize) -> Control {
        Control {
            phase: AtomicU8::new(Phase::Connecting as u8),
            send_start_ns: AtomicU64::new(0),
            ramped: AtomicUsize::new(0),
            pending: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            open: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            abort: AtomicBool::new(false),
        }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::SeqCst);
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
    pub run_id: u32,
    pub seed: u64,
    pub interval: Duration,
}

/// Splits conversations over cores: conversation `c` goes to core `c % cores`, so every member of
/// a conversation lives on one core and accounting needs no cross-core state.
pub fn assign(conversations: u32, cores: usize) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new(); cores];
    for c in 0..conversations as u64 {
        out[(c % cores as u64) as usize].push(c);
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
        handles.push(crate::executor::spawn_pinned(&name, cpu, move || {
            core::run_core(plan, target, control, tx)
        })?);
    }
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_whole_and_balanced() {
        let a = assign(7, 3);
        assert_eq!(a, vec![vec![0, 3, 6], vec![1, 4], vec![2, 5]]);
        let total: usize = a.iter().map(|v| v.len()).sum();
        assert_eq!(total, 7);
    }

    #[test]
    fn phases_round_trip() {
        for p in [Phase::Starting, Phase::Connecting, Phase::Sending, Phase::Draining, Phase::Closing, Phase::Done] {
            assert_eq!(Phase::from_u8(p as u8), p);
        }
    }
}
