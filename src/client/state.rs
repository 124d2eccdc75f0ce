//! The state of one executor that its connection tasks, its scheduler and its load shapes share
//! (single-threaded: `Cell`s and `RefCell`s, never held across an await): the core's context,
//! its conversations, each member's doorbell and each sender's schedule and counts.

use super::control::Control;
use super::plan::CorePlan;
use super::session::PingRing;
use super::target::Target;
use crate::config::template::Vars;
use crate::measure::clock::now_ns;
use crate::measure::pacing::Schedule;
use crate::measure::stats::CoreStats;
use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;

/// A connection's doorbell: the scheduler and the core ring it; the connection's task waits on it.
#[derive(Default)]
pub struct Slot {
    waker: crate::runtime::net::waker::WakerSlot,
    /// [`Slot::OPEN`], and what the core asks of the connection ([`Slot::CHURN`], [`Slot::STORM`]).
    pub flags: Cell<u8>,
}

impl Slot {
    /// The member's connection is established.
    pub const OPEN: u8 = 1;
    /// `--churn`: leave once everything owed has arrived, then join again.
    pub const CHURN: u8 = 2;
    /// `--storm`: leave the same way, stay away until the storm's reconnect time, come back.
    pub const STORM: u8 = 4;

    pub fn has(&self, f: u8) -> bool {
        self.flags.get() & f != 0
    }

    pub fn set(&self, f: u8, on: bool) {
        let v = self.flags.get();
        self.flags.set(if on { v | f } else { v & !f });
    }

    pub fn register(&self, w: &Waker) {
        self.waker.register(w);
    }

    pub fn wake(&self) {
        self.waker.wake();
    }
}

#[derive(Default)]
pub struct SenderState {
    /// Messages due so far (set by the scheduler).
    pub due: Cell<u64>,
    /// Messages written so far; the next one to send has this sequence number.
    pub sent: Cell<u64>,
    pub schedule: Cell<Option<Sched>>,
    /// Whether the sender's connection is open; only open senders add to the backlog.
    pub connected: Cell<bool>,
}

impl SenderState {
    /// Raises the due count, keeping the core's `backlog` (messages due, not yet written, of
    /// connected senders) in step.
    pub fn raise_due(&self, due: u64, backlog: &Cell<u64>) {
        let old = self.due.get();
        if due > old {
            self.due.set(due);
            if self.connected.get() {
                backlog.set(backlog.get() + (due - old));
            }
        }
    }

    /// The sender's connection opened or closed: its unsent messages join or leave `backlog`.
    pub fn set_connected(&self, connected: bool, backlog: &Cell<u64>) {
        if self.connected.replace(connected) == connected {
            return;
        }
        let unsent = self.due.get() - self.sent.get();
        if connected {
            backlog.set(backlog.get() + unsent);
        } else {
            backlog.set(backlog.get() - unsent);
        }
    }
}

/// A sender's schedule: a fixed rate, or shaped by `--stage`.
#[derive(Clone, Copy, Debug)]
pub enum Sched {
    Fixed(Schedule),
    Shaped(crate::shape::Shaped),
}

pub struct Conv {
    pub id: u64,
    /// Whether its members belong connected now: always, except under a connection ramp, which
    /// opens and closes conversations (`shaping.rs`).
    pub active: Cell<bool>,
    /// Its members' connection tasks still running.
    pub tasks: Cell<u32>,
    /// Members connected now.
    pub open: Cell<u32>,
    /// Members whose connection was lost and is being opened again (`--reconnect`).
    pub away: Cell<u32>,
    pub senders: Vec<SenderState>,
    pub slots: Vec<Slot>,
}

pub struct CoreCtx {
    pub plan: CorePlan,
    pub target: Arc<Target>,
    pub control: Arc<Control>,
    pub stats: RefCell<CoreStats>,
    pub convs: Vec<Conv>,
    /// Set once the send phase is over (end of duration or Ctrl-C): no more messages become due.
    pub sending_over: Cell<bool>,
    /// Where senders encode their markers (one per core, not one per connection).
    pub marker_buf: RefCell<String>,
    /// Direct reads land here (`direct.rs`); never held across an await.
    pub read_buf: RefCell<Vec<u8>>,
    /// Messages due but not yet written, over all senders of the core.
    pub backlog: Cell<u64>,
    /// Set when connections must close.
    pub closing: Cell<bool>,
    /// Connection tasks still running.
    pub live: Cell<u64>,
    /// Connection tasks still connecting.
    pub connecting: Cell<u64>,
    /// The ramp has attempted every connection, or given up because the run is closing.
    pub ramp_over: Cell<bool>,
    /// Connection stages (`--stage` with connection counts) have applied their last step: the
    /// conversations the last stage closes have left. Until then the core does not acknowledge
    /// the drain, so the run cannot close them first. True from the start without such stages.
    pub stages_over: Cell<bool>,
    /// The keep-alive ticker (`--ping-interval`), advanced by the scheduler below.
    pub ping: Option<PingRing>,
    /// A buffer for rendering frames; never held across an await.
    pub scratch: RefCell<String>,
    /// Shaped senders that connected and wait for the scheduler to start their schedule.
    /// (conversation, sender, when it connected): due times count from then, not from when
    /// the scheduler gets to it.
    pub joining: RefCell<Vec<(u32, u32, u64)>>,
    /// Connections away to come back (lost under `--reconnect`, or closed by a storm).
    pub away: Cell<u64>,
    /// Closing handshakes waiting for the server's answer at once (see `conn::close`).
    pub closing_slots: glommio::sync::Semaphore,
}

impl CoreCtx {
    /// Wakes this core's scheduler for news it waits for (see `core::CONTROL_POLL`).
    pub fn nudge(&self) {
        self.control.ring(self.plan.idx);
    }

    /// A connection attempt ended: the ramp may be over.
    pub fn connect_settled(&self) {
        self.connecting.set(self.connecting.get() - 1);
        if self.connecting.get() == 0 && self.ramp_over.get() {
            self.nudge();
        }
    }

    /// Raises a sender's due count, keeping the core's backlog in step.
    pub(super) fn set_due(&self, st: &SenderState, due: u64) {
        st.raise_due(due, &self.backlog);
    }

    /// A sender's connection opened or closed: its unsent messages join or leave the backlog.
    pub fn set_connected(&self, st: &SenderState, connected: bool) {
        st.set_connected(connected, &self.backlog);
    }

    /// A member's template variables (its user number is global across the run).
    pub fn vars(&self, conv: &Conv, member: u32) -> Vars {
        Vars { conv: conv.id, member, user: conv.id * self.plan.scenario.members as u64 + member as u64 }
    }

    /// A connection's index on this core, as the keep-alive ring counts them.
    pub fn conn_index(&self, conv_idx: usize, member: u32) -> u64 {
        conv_idx as u64 * self.plan.scenario.members as u64 + member as u64
    }

    /// When a sender's message `seq` is (or was) due.
    pub fn due_ns(&self, sched: &Sched, seq: u64) -> u64 {
        match (sched, &self.plan.scenario.shape) {
            (Sched::Fixed(f), _) => f.due_ns(seq),
            (Sched::Shaped(sh), Some(shape)) => sh.due_ns(shape, seq).unwrap_or(sh.end_ns),
            (Sched::Shaped(sh), None) => sh.end_ns,
        }
    }

    pub(super) fn due_count(&self, sched: &Sched, now: u64) -> u64 {
        match (sched, &self.plan.scenario.shape) {
            (Sched::Fixed(f), _) => f.due_count(now),
            (Sched::Shaped(sh), Some(shape)) => sh.due_count(shape, now),
            (Sched::Shaped(_), None) => 0,
        }
    }

    pub(super) fn next_due_ns(&self, sched: &Sched, count: u64) -> Option<u64> {
        match (sched, &self.plan.scenario.shape) {
            (Sched::Fixed(f), _) => f.next_due_ns(count),
            (Sched::Shaped(sh), Some(shape)) => sh.next_due_ns(shape, count),
            (Sched::Shaped(_), None) => None,
        }
    }

    /// The stage a message intended at `intended_ns` belongs to (0 without stages).
    pub fn stage_of(&self, intended_ns: u64) -> usize {
        match &self.plan.scenario.shape {
            Some(shape) => {
                let start = self.control.send_start_ns.load(Ordering::Relaxed);
                shape.stage_of(intended_ns.saturating_sub(start))
            }
            None => 0,
        }
    }

    /// A connection goes away to come back (an outage starts or grows).
    pub fn went_away(&self, conv: &Conv) {
        conv.away.set(conv.away.get() + 1);
        self.away.set(self.away.get() + 1);
        self.stats.borrow_mut().windows.outages.went_away(now_ns());
    }

    /// A connection that was away is back, or gave up coming back.
    pub fn came_back(&self, conv: &Conv) {
        conv.away.set(conv.away.get() - 1);
        self.away.set(self.away.get() - 1);
        self.stats.borrow_mut().windows.outages.came_back(now_ns(), self.away.get());
    }

    pub(super) fn wake_all(&self) {
        for c in &self.convs {
            for s in &c.slots {
                s.wake();
            }
        }
    }
}
