//! One generator executor: its conversations, the send scheduler (one per core, not one timer
//! per sender) and the periodic snapshot; the connect ramp runs beside it (`ramp.rs`).

use super::control::Control;
use super::plan::CorePlan;
use super::session::PingRing;
use super::state::{Conv, CoreCtx, Sched, SenderState, Slot};
use super::target::Target;
use super::{ramp, shaping};
use crate::client::phase::Phase;
use crate::measure::clock::now_ns;
use crate::measure::pacing::{self, Schedule};
use crate::measure::stats::{CoreStats, Snapshot};
use glommio::{Latency, Shares};
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// How often an otherwise idle core looks at the run's phase and publishes its counts. Idle
/// connections cost nothing between these wakes, so this sets an idle core's CPU. Phase changes
/// and the core's own news (ramp done, every connection closed) ring its bell and wake it at
/// once; within the watchdog's `LATE` (the look is also the heartbeat).
const CONTROL_POLL: Duration = Duration::from_millis(150);
/// The same for a core without a bell (no eventfd to be had), and while connection stages run:
/// a shaped sender that joins starts at the next look, by when the rest of its conversation
/// (opened with it) has usually connected too.
const CONTROL_POLL_OFTEN: Duration = Duration::from_millis(50);

pub async fn run_core(plan: CorePlan, target: Arc<Target>, control: Arc<Control>, tx: Sender<Snapshot>) {
    let conn_tq = glommio::executor().create_task_queue(Shares::default(), Latency::NotImportant, "conns");
    let reactor = match crate::runtime::net::Reactor::install() {
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
            active: Cell::new(!plan.scenario.shape.as_ref().is_some_and(|s| s.ramps_connections())),
            tasks: Cell::new(0),
            open: Cell::new(0),
            away: Cell::new(0),
            senders: (0..plan.scenario.senders)
                .map(|_| SenderState {
                    due: Cell::new(0),
                    sent: Cell::new(0),
                    schedule: Cell::new(None),
                    connected: Cell::new(false),
                })
                .collect(),
            slots: (0..plan.scenario.members).map(|_| Slot::default()).collect(),
        })
        .collect();
    let ping = target.protocol.ping_interval.and_then(|every| PingRing::new(every, now_ns(), plan.total_conns()));
    let stages_ramp = plan.scenario.shape.as_ref().is_some_and(|s| s.ramps_connections());
    let ctx = Rc::new(CoreCtx {
        plan,
        target,
        control,
        stats: RefCell::new(CoreStats::default()),
        convs,
        sending_over: Cell::new(false),
        marker_buf: RefCell::new(String::new()),
        read_buf: RefCell::new(Vec::new()),
        backlog: Cell::new(0),
        closing: Cell::new(false),
        live: Cell::new(0),
        connecting: Cell::new(0),
        ramp_over: Cell::new(false),
        stages_over: Cell::new(!stages_ramp),
        ping,
        scratch: RefCell::new(String::new()),
        joining: RefCell::new(Vec::new()),
        away: Cell::new(0),
        closing_slots: glommio::sync::Semaphore::new(super::conn::CLOSING_AT_ONCE),
    });
    ctx.stats.borrow_mut().windows =
        crate::measure::windows::CoreWindows::new(ctx.plan.scenario.shape.as_ref().map_or(0, |s| s.stages().len()));
    let idx = ctx.plan.idx;

    // The connect ramp runs beside the ticker below; under a connection ramp (`--stage`) the
    // stages open and close conversations during the send phase instead.
    {
        let ctx = ctx.clone();
        crate::runtime::net::idle::spawn(async move {
            if ctx.plan.scenario.shape.as_ref().is_some_and(|s| s.ramps_connections()) {
                ctx.ramp_over.set(true);
                ctx.nudge();
                ramp::follow_stages(&ctx, conn_tq).await;
                ctx.stages_over.set(true);
                ctx.nudge();
            } else {
                ramp::ramp(&ctx, conn_tq).await;
                ctx.ramp_over.set(true);
                ctx.nudge();
            }
        })
        .detach();
    }
    let mut storm = ctx.plan.scenario.storm;
    let mut churn = shaping::Churn::new(ctx.plan.churn, ctx.plan.scenario.seed ^ idx as u64);

    let belled = ctx.control.bell(idx).and_then(|b| crate::runtime::net::ticker::Ticker::with_bell(b).ok());
    let belled_poll = if belled.is_some() { CONTROL_POLL } else { CONTROL_POLL_OFTEN };
    let ticker = match belled.map_or_else(crate::runtime::net::ticker::Ticker::new, Ok) {
        Ok(t) => Some(t),
        Err(e) => {
            crate::errln!("herd: core {idx}: no timerfd ({e}); sleeping on glommio timers");
            None
        }
    };
    let interval_ns = ctx.plan.interval.as_nanos() as u64;
    let window_ns = ctx.plan.scenario.send_window.as_nanos() as u64;
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
            crate::measure::stats::count_read_lag(true);
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
                shaping::storm(&ctx, &st);
            }
            churn.tick(&ctx, now);
        }
        // Ring the senders whose next message is due.
        // Messages due within the send window go out on this wake too (early, and timed from
        // their send): one timer wake per window rather than one per message.
        let horizon = now.saturating_add(window_ns);
        while let Some(&Reverse((due, c, s))) = heap.peek() {
            if due > horizon {
                break;
            }
            heap.pop();
            let conv = &ctx.convs[c as usize];
            let st = &conv.senders[s as usize];
            let Some(sched) = st.schedule.get() else { continue };
            let count = ctx.due_count(&sched, horizon);
            ctx.set_due(st, count);
            conv.slots[s as usize].wake();
            if let Some(next) = ctx.next_due_ns(&sched, count) {
                heap.push(Reverse((next, c, s)));
            }
        }
        if let (Some(ring), false) = (&ctx.ping, ctx.closing.get()) {
            let members = ctx.plan.scenario.members as u64;
            ring.advance(now, |i| ctx.convs[(i / members) as usize].slots[(i % members) as usize].wake());
        }
        if phase >= Phase::Closing && !ctx.closing.get() {
            ctx.closing.set(true);
            // The closing handshakes' reads are not the send phase's.
            crate::measure::stats::count_read_lag(false);
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
        // After the counts above: a driver that sees this reads counts of this phase. The drain
        // (and what follows) waits for the last connection stage's closes.
        let applied = if phase >= Phase::Draining && !ctx.stages_over.get() { Phase::Sending } else { phase };
        ctx.control.ack(idx, applied);
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
        let control_poll = if ctx.stages_over.get() { belled_poll } else { CONTROL_POLL_OFTEN };
        let mut wake_at = next_snapshot.min(now + control_poll.as_nanos() as u64);
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
                // Reads may wait for this wake (they take the kernel's receive time), unless a
                // handshake is under way: connect times are taken when their reads run.
                Some(t) if ctx.connecting.get() == 0 => t.sleep_deferring_reads(Duration::from_nanos(wait)).await,
                Some(t) => t.sleep(Duration::from_nanos(wait)).await,
                None => crate::runtime::net::idle::sleep(Duration::from_nanos(wait)).await,
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
    let Some(shape) = &ctx.plan.scenario.shape else { return };
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
        let global = conv.id * ctx.plan.scenario.senders as u64 + s as u64;
        let phase = crate::shape::phase(ctx.plan.scenario.seed, global);
        let sched = crate::shape::Shaped::joining(shape, start, at.max(start), phase, st.sent.get());
        st.schedule.set(Some(Sched::Shaped(sched)));
        if let Some(first) = sched.next_due_ns(shape, st.sent.get()) {
            heap.push(Reverse((first, c, s)));
        }
    }
}

fn start_schedules(ctx: &CoreCtx, heap: &mut Heap) {
    let p = &*ctx.plan.scenario;
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
