//! One generator executor: its conversations, the connect ramp, the send scheduler (one per
//! core, not one timer per sender) and the periodic snapshot.

use super::connect::Target;
use super::protocol::PingRing;
use super::{conn, Control, CorePlan, Phase};
use crate::clock::now_ns;
use crate::pacing::{self, Schedule};
use crate::stats::{CoreStats, Snapshot};
use glommio::{Latency, Shares};
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

/// A connection's doorbell: the scheduler and the core ring it; the connection's task waits on it.
#[derive(Default)]
pub struct Slot {
    waker: RefCell<Option<Waker>>,
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
        let mut s = self.waker.borrow_mut();
        match &*s {
            Some(old) if old.will_wake(w) => {}
            _ => *s = Some(w.clone()),
        }
    }

    pub fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

pub struct SenderState {
    /// Messages due so far (set by the scheduler).
    pub due: Cell<u64>,
    /// Messages written so far; the next one to send has this sequence number.
    pub sent: Cell<u64>,
    pub schedule: Cell<Option<Sched>>,
    /// Whether the sender's connection is open; only open senders add to the backlog.
    pub connected: Cell<bool>,
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
}

impl CoreCtx {
    /// Raises a sender's due count, keeping the core's backlog in step.
    pub(super) fn set_due(&self, st: &SenderState, due: u64) {
        let old = st.due.get();
        if due > old {
            st.due.set(due);
            if st.connected.get() {
                self.backlog.set(self.backlog.get() + (due - old));
            }
        }
    }

    /// A sender's connection opened or closed: its unsent messages join or leave the backlog.
    pub fn set_connected(&self, st: &SenderState, connected: bool) {
        if st.connected.replace(connected) == connected {
            return;
        }
        let unsent = st.due.get() - st.sent.get();
        if connected {
            self.backlog.set(self.backlog.get() + unsent);
        } else {
            self.backlog.set(self.backlog.get() - unsent);
        }
    }

    /// A connection's index on this core, as the keep-alive ring counts them.
    pub fn conn_index(&self, conv_idx: usize, member: u32) -> u64 {
        conv_idx as u64 * self.plan.members as u64 + member as u64
    }

    /// When a sender's message `seq` is (or was) due.
    pub fn due_ns(&self, sched: &Sched, seq: u64) -> u64 {
        match (sched, &self.plan.shape) {
            (Sched::Fixed(f), _) => f.due_ns(seq),
            (Sched::Shaped(sh), Some(shape)) => sh.due_ns(shape, seq).unwrap_or(sh.end_ns),
            (Sched::Shaped(sh), None) => sh.end_ns,
        }
    }

    pub(super) fn due_count(&self, sched: &Sched, now: u64) -> u64 {
        match (sched, &self.plan.shape) {
            (Sched::Fixed(f), _) => f.due_count(now),
            (Sched::Shaped(sh), Some(shape)) => sh.due_count(shape, now),
            (Sched::Shaped(_), None) => 0,
        }
    }

    fn next_due_ns(&self, sched: &Sched, count: u64) -> Option<u64> {
        match (sched, &self.plan.shape) {
            (Sched::Fixed(f), _) => f.next_due_ns(count),
            (Sched::Shaped(sh), Some(shape)) => sh.next_due_ns(shape, count),
            (Sched::Shaped(_), None) => None,
        }
    }

    /// The stage a message intended at `intended_ns` belongs to (0 without stages).
    pub fn stage_of(&self, intended_ns: u64) -> usize {
        match &self.plan.shape {
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

    fn wake_all(&self) {
        for c in &self.convs {
            for s in &c.slots {
                s.wake();
            }
        }
    }
}

/// How often an otherwise idle core looks at the run's phase and publishes its counts. Idle
/// connections cost nothing between these wakes, so this sets an idle core's CPU.
const CONTROL_POLL: Duration = Duration::from_millis(50);

pub async fn run_core(plan: CorePlan, target: Arc<Target>, control: Arc<Control>, tx: Sender<Snapshot>) {
    let conn_tq = glommio::executor().create_task_queue(Shares::default(), Latency::NotImportant, "conns");
    let reactor = match crate::net::Reactor::install() {
        Ok(r) => r,
        Err(e) => {
            // Without its epoll set the core can open nothing: every connection fails, counted.
            crate::errln!("herd: core {}: cannot create its epoll set: {e}", plan.idx);
            let mut stats = CoreStats::default();
            stats.counters.conns_attempted = plan.total_conns();
            stats.counters.conns_failed = plan.total_conns();
            let _ = tx.send(stats.snapshot(plan.idx, now_ns(), true));
            return;
        }
    };
    let convs = plan
        .convs
        .iter()
        .map(|&id| Conv {
            id,
            active: Cell::new(!plan.shape.as_ref().is_some_and(|s| s.ramps_connections())),
            tasks: Cell::new(0),
            open: Cell::new(0),
            away: Cell::new(0),
            senders: (0..plan.senders)
                .map(|_| SenderState {
                    due: Cell::new(0),
                    sent: Cell::new(0),
                    schedule: Cell::new(None),
                    connected: Cell::new(false),
                })
                .collect(),
            slots: (0..plan.members).map(|_| Slot::default()).collect(),
        })
        .collect();
    let ping = target.protocol.ping_interval.and_then(|every| PingRing::new(every, now_ns(), plan.total_conns()));
    let ctx = Rc::new(CoreCtx {
        plan,
        target,
        control,
        stats: RefCell::new(CoreStats::default()),
        convs,
        sending_over: Cell::new(false),
        marker_buf: RefCell::new(String::new()),
        backlog: Cell::new(0),
        closing: Cell::new(false),
        live: Cell::new(0),
        connecting: Cell::new(0),
        ramp_over: Cell::new(false),
        ping,
        scratch: RefCell::new(String::new()),
        joining: RefCell::new(Vec::new()),
        away: Cell::new(0),
    });
    ctx.stats.borrow_mut().windows =
        crate::windows::CoreWindows::new(ctx.plan.shape.as_ref().map_or(0, |s| s.stages().len()));
    let idx = ctx.plan.idx;

    // The connect ramp runs beside the ticker below; under a connection ramp (`--stage`) the
    // stages open and close conversations during the send phase instead.
    {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            if ctx.plan.shape.as_ref().is_some_and(|s| s.ramps_connections()) {
                ctx.ramp_over.set(true);
                super::shaping::follow_stages(&ctx, conn_tq).await;
            } else {
                ramp(&ctx, conn_tq).await;
                ctx.ramp_over.set(true);
            }
        })
        .detach();
    }
    let mut storm = ctx.plan.storm;
    let mut churn = super::shaping::Churn::new(ctx.plan.churn, ctx.plan.seed ^ idx as u64);

    ctx.control.heartbeats.register(idx);
    let ticker = match crate::net::ticker::Ticker::new() {
        Ok(t) => Some(t),
        Err(e) => {
            crate::errln!("herd: core {idx}: no timerfd ({e}); sleeping on glommio timers");
            None
        }
    };
    let interval_ns = ctx.plan.interval.as_nanos() as u64;
    let mut next_snapshot = now_ns() + interval_ns;
    let mut ramp_reported = false;
    let mut heap: Heap = BinaryHeap::new();
    let mut sending_started = false;
    let mut closing_since: Option<u64> = None;

    loop {
        let now = now_ns();
        ctx.control.heartbeats.beat(idx);
        let phase = ctx.control.phase();
        if !ramp_reported && ramp_finished(&ctx) {
            ramp_reported = true;
            ctx.control.ramped.fetch_add(1, Ordering::SeqCst);
        }
        if phase >= Phase::Sending && !sending_started {
            sending_started = true;
            start_schedules(&ctx, &mut heap);
        }
        if phase >= Phase::Draining && !ctx.sending_over.get() {
            // Sending ends: whatever is due by now (never past the schedule's end) still goes
            // out; nothing later is scheduled.
            ctx.sending_over.set(true);
            for Reverse((_, c, s)) in heap.drain() {
                let conv = &ctx.convs[c as usize];
                let st = &conv.senders[s as usize];
                if let Some(sched) = st.schedule.get() {
                    ctx.set_due(st, ctx.due_count(&sched, now));
                    conv.slots[s as usize].wake();
                }
            }
        }
        if sending_started && !ctx.sending_over.get() {
            // Shaped senders that connected since: their schedules start from now.
            start_joining(&ctx, &mut heap, now);
            let start = ctx.control.send_start_ns.load(Ordering::Relaxed);
            if let Some(st) = storm.filter(|st| now >= start + st.at.as_nanos() as u64) {
                storm = None;
                super::shaping::storm(&ctx, &st);
            }
            churn.tick(&ctx, now);
        }
        // Ring the senders whose next message is due.
        while let Some(&Reverse((due, c, s))) = heap.peek() {
            if due > now {
                break;
            }
            heap.pop();
            let conv = &ctx.convs[c as usize];
            let st = &conv.senders[s as usize];
            let Some(sched) = st.schedule.get() else { continue };
            let count = ctx.due_count(&sched, now);
            ctx.set_due(st, count);
            conv.slots[s as usize].wake();
            if let Some(next) = ctx.next_due_ns(&sched, count) {
                heap.push(Reverse((next, c, s)));
            }
        }
        if let (Some(ring), false) = (&ctx.ping, ctx.closing.get()) {
            let members = ctx.plan.members as u64;
            ring.advance(now, |i| ctx.convs[(i / members) as usize].slots[(i % members) as usize].wake());
        }
        if phase >= Phase::Closing && !ctx.closing.get() {
            ctx.closing.set(true);
            closing_since = Some(now);
            ctx.wake_all();
        }
        {
            let c = &ctx.stats.borrow().counters;
            ctx.control.pending[idx].store(c.pending() + ctx.backlog.get(), Ordering::Relaxed);
            ctx.control.open[idx].store(c.open(), Ordering::Relaxed);
            ctx.control.attempted[idx].store(c.conns_attempted, Ordering::Relaxed);
            ctx.control.settled[idx].store(c.conns_established + c.conns_failed, Ordering::Relaxed);
        }
        // After the counts above: a driver that sees this reads counts of this phase.
        ctx.control.ack(idx, phase);
        if now >= next_snapshot {
            next_snapshot = now + interval_ns;
            publish(&ctx, &tx, false);
        }
        // Once closing, the ramp starts nothing more: a ramp asleep until its next connection
        // is not waited for.
        let all_closed = ctx.live.get() == 0 && (ramp_reported || ctx.closing.get());
        let close_timed_out = closing_since.is_some_and(|t| now - t > 3_000_000_000);
        if ctx.closing.get() && (all_closed || close_timed_out || ctx.control.abort.load(Ordering::Relaxed)) {
            break;
        }
        // Sleep until the next due message, snapshot or control check, whichever is first.
        let mut wake_at = next_snapshot.min(now + CONTROL_POLL.as_nanos() as u64);
        if let Some(next) = churn.next_ns().filter(|_| sending_started) {
            wake_at = wake_at.min(next);
        }
        if let Some(st) = storm.filter(|_| sending_started) {
            wake_at = wake_at.min(ctx.control.send_start_ns.load(Ordering::Relaxed) + st.at.as_nanos() as u64);
        }
        if let Some(&Reverse((due, _, _))) = heap.peek() {
            wake_at = wake_at.min(due);
        }
        let wait = wake_at.saturating_sub(now_ns());
        if wait > 0 {
            match &ticker {
                Some(t) => t.sleep(Duration::from_nanos(wait)).await,
                None => glommio::timer::sleep(Duration::from_nanos(wait)).await,
            }
        } else {
            glommio::yield_if_needed().await;
        }
    }
    ctx.control.open[idx].store(0, Ordering::Relaxed);
    publish(&ctx, &tx, true);
    ctx.control.heartbeats.retire(idx);
    reactor.stop();
}

/// Every connection of the core has been attempted and none is still connecting.
fn ramp_finished(ctx: &CoreCtx) -> bool {
    ctx.ramp_over.get() && ctx.connecting.get() == 0
}

impl CorePlan {
    pub fn total_conns(&self) -> u64 {
        self.convs.len() as u64 * self.members as u64
    }
}

fn publish(ctx: &CoreCtx, tx: &Sender<Snapshot>, last: bool) {
    let mut stats = ctx.stats.borrow_mut();
    let idx = ctx.plan.idx;
    // The gauges: where a stalled or dead target shows before any error does.
    stats.counters.conns_connecting = ctx.connecting.get();
    stats.counters.msgs_unsent =
        ctx.convs.iter().flat_map(|c| c.senders.iter()).map(|st| st.due.get() - st.sent.get()).sum();
    ctx.control.open[idx].store(stats.counters.open(), Ordering::Relaxed);
    ctx.control.pending[idx].store(stats.counters.pending() + ctx.backlog.get(), Ordering::Relaxed);
    let _ = tx.send(stats.snapshot(idx, now_ns(), last));
}

type Heap = BinaryHeap<Reverse<(u64, u32, u32)>>;

/// Starts the schedules of shaped senders that connected: each from its first tick after now.
fn start_joining(ctx: &CoreCtx, heap: &mut Heap, now: u64) {
    let Some(shape) = &ctx.plan.shape else { return };
    let joining = std::mem::take(&mut *ctx.joining.borrow_mut());
    let start = ctx.control.send_start_ns.load(Ordering::Relaxed);
    for (c, s, at) in joining {
        let conv = &ctx.convs[c as usize];
        let st = &conv.senders[s as usize];
        let running = matches!(st.schedule.get(), Some(Sched::Shaped(sh)) if sh.end_ns > now);
        if running || !conv.active.get() || !st.connected.get() {
            // Back from a loss (its schedule goes on), or gone again already.
            continue;
        }
        let global = conv.id * ctx.plan.senders as u64 + s as u64;
        let phase = crate::shape::phase(ctx.plan.seed, global);
        let sched = crate::shape::Shaped::joining(shape, start, at.max(start), phase, st.sent.get());
        st.schedule.set(Some(Sched::Shaped(sched)));
        if let Some(first) = sched.next_due_ns(shape, st.sent.get()) {
            heap.push(Reverse((first, c, s)));
        }
    }
}

fn start_schedules(ctx: &CoreCtx, heap: &mut Heap) {
    let p = &ctx.plan;
    if p.rate <= 0.0 {
        return;
    }
    if p.shape.is_some() {
        // Shaped senders start when they are connected and their conversation is open.
        for (ci, conv) in ctx.convs.iter().enumerate() {
            for (si, st) in conv.senders.iter().enumerate() {
                if st.connected.get() && conv.active.get() && st.schedule.get().is_none() {
                    ctx.joining.borrow_mut().push((ci as u32, si as u32, 0));
                }
            }
        }
        return;
    }
    let start = ctx.control.send_start_ns.load(Ordering::SeqCst);
    let period = pacing::period_ns(p.rate);
    for (ci, conv) in ctx.convs.iter().enumerate() {
        for (si, st) in conv.senders.iter().enumerate() {
            let global = conv.id * p.senders as u64 + si as u64;
            let phase = pacing::phase_ns(p.seed, global, period);
            let sched = Schedule::new(start, phase, p.rate, p.duration.as_nanos() as u64);
            st.schedule.set(Some(Sched::Fixed(sched)));
            if let Some(first) = sched.next_due_ns(0) {
                heap.push(Reverse((first, ci as u32, si as u32)));
            }
        }
    }
}

/// Starts the connection task of one member (counted as attempted and connecting).
pub(super) fn spawn_member(ctx: &Rc<CoreCtx>, tq: glommio::TaskQueueHandle, ci: usize, member: u32) {
    ctx.stats.borrow_mut().counters.conns_attempted += 1;
    ctx.connecting.set(ctx.connecting.get() + 1);
    ctx.live.set(ctx.live.get() + 1);
    let conv = &ctx.convs[ci];
    conv.tasks.set(conv.tasks.get() + 1);
    let fut = conn::run(ctx.clone(), ci, member);
    match glommio::spawn_local_into(fut, tq) {
        Ok(t) => {
            t.detach();
        }
        Err(_) => {
            ctx.stats.borrow_mut().counters.conns_attempted -= 1;
            ctx.connecting.set(ctx.connecting.get() - 1);
            ctx.live.set(ctx.live.get() - 1);
            conv.tasks.set(conv.tasks.get() - 1);
        }
    }
}

/// Opens this core's connections at its share of the connect rate, conversation by conversation.
async fn ramp(ctx: &Rc<CoreCtx>, tq: glommio::TaskQueueHandle) {
    let mut start = now_ns();
    let per_conn_ns = (1e9 / ctx.plan.connect_rate.max(1e-3)) as u64;
    let total = ctx.plan.total_conns();
    let mut i: u64 = 0;
    for ci in 0..ctx.convs.len() {
        for member in 0..ctx.plan.members {
            if ctx.closing.get() || ctx.control.abort.load(Ordering::Relaxed) {
                return;
            }
            // Gated runs (the ceiling) open connections in steps.
            while i >= ctx.control.allowance(total) {
                if ctx.closing.get() || ctx.control.abort.load(Ordering::Relaxed) {
                    return;
                }
                glommio::timer::sleep(Duration::from_millis(5)).await;
                // The connect rate counts from the moment the gate opens.
                start = now_ns().saturating_sub(i * per_conn_ns);
            }
            let due = start + i * per_conn_ns;
            let now = now_ns();
            if due > now + 1_000_000 {
                glommio::timer::sleep(Duration::from_nanos(due - now)).await;
            }
            i += 1;
            spawn_member(ctx, tq, ci, member);
            if i % 64 == 0 {
                glommio::yield_if_needed().await;
            }
        }
    }
}
