//! One generator executor running a population's communities: it opens their connections at
//! the connect rate, paces every room's senders from one scheduler (open model, from intended
//! send times), and sends a snapshot every interval. The grid's executor is `client::core`;
//! this one has no load shapes (a population refuses them while resolving).

use super::conn;
use super::state::RoomsCtx;
use crate::client::control::Control;
use crate::client::phase::Phase;
use crate::client::plan::CorePlan;
use crate::client::session::PingRing;
use crate::client::state::Sched;
use crate::client::target::Target;
use crate::measure::clock::now_ns;
use crate::measure::pacing::{self, Schedule};
use crate::measure::stats::{CoreStats, Snapshot};
use crate::population::Shared;
use glommio::{Latency, Shares};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// How often an idle core looks at the run's phase (as `client::core`).
const CONTROL_POLL: Duration = Duration::from_millis(150);
const CONTROL_POLL_OFTEN: Duration = Duration::from_millis(50);

type Heap = BinaryHeap<Reverse<(u64, u32, u32)>>;

pub async fn run_core(plan: CorePlan, pop: Shared, target: Arc<Target>, control: Arc<Control>, tx: Sender<Snapshot>) {
    let conn_tq = glommio::executor().create_task_queue(Shares::default(), Latency::NotImportant, "conns");
    let total = plan.total_conns();
    let reactor = match crate::runtime::net::Reactor::install() {
        Ok(r) => r,
        Err(e) => {
            crate::errln!("herd: core {}: cannot create its epoll set: {e}", plan.idx);
            let mut stats = CoreStats::default();
            stats.counters.conns_attempted = total;
            stats.counters.conns_failed = total;
            let _ = tx.send(stats.snapshot(plan.idx, now_ns(), true));
            return;
        }
    };
    let ping = target.protocol.ping_interval.and_then(|every| PingRing::new(every, now_ns(), total));
    let classes = pop.spec.classes.len();
    let ctx = Rc::new(RoomsCtx::new(plan, pop, target, control, ping));
    ctx.stats.borrow_mut().windows = crate::measure::windows::CoreWindows::with_classes(0, classes);
    let idx = ctx.plan.idx;
    {
        let ctx = ctx.clone();
        crate::runtime::net::idle::spawn(async move {
            ramp(&ctx, conn_tq).await;
            ctx.ramp_over.set(true);
            ctx.nudge();
        })
        .detach();
    }
    let belled = ctx.control.bell(idx).and_then(|b| crate::runtime::net::ticker::Ticker::with_bell(b).ok());
    let control_poll = if belled.is_some() { CONTROL_POLL } else { CONTROL_POLL_OFTEN };
    let ticker = belled.map_or_else(crate::runtime::net::ticker::Ticker::new, Ok).ok();
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
        if !ramp_reported && ctx.ramp_over.get() && ctx.connecting.get() == 0 {
            ramp_reported = true;
            ctx.control.ramped.fetch_add(1, Ordering::SeqCst);
        }
        if phase >= Phase::Sending && !sending_started {
            sending_started = true;
            crate::measure::stats::count_read_lag(true);
            start_schedules(&ctx, &mut heap);
        }
        if phase >= Phase::Draining && !ctx.sending_over.get() {
            // Whatever is due by now still goes out; nothing later is scheduled.
            ctx.sending_over.set(true);
            for Reverse((_, r, s)) in heap.drain() {
                let st = &ctx.senders(&ctx.rooms[r as usize])[s as usize];
                if let Some(Sched::Fixed(sched)) = st.schedule.get() {
                    ctx.set_due(st, sched.due_count(now));
                    wake_sender(&ctx, r, s);
                }
            }
        }
        // Messages due within the send window go out on this wake too (as `client::core`).
        let horizon = now.saturating_add(window_ns);
        while let Some(&Reverse((due, r, s))) = heap.peek() {
            if due > horizon {
                break;
            }
            heap.pop();
            let st = &ctx.senders(&ctx.rooms[r as usize])[s as usize];
            let Some(Sched::Fixed(sched)) = st.schedule.get() else { continue };
            let count = sched.due_count(horizon);
            ctx.set_due(st, count);
            wake_sender(&ctx, r, s);
            if let Some(next) = sched.next_due_ns(count) {
                heap.push(Reverse((next, r, s)));
            }
        }
        if let (Some(ring), false) = (&ctx.ping, ctx.closing.get()) {
            ring.advance(now, |i| ctx.conns[i as usize].slot.wake());
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
        ctx.control.ack(idx, phase);
        if now >= next_snapshot {
            next_snapshot = now + interval_ns;
            publish(&ctx, &tx, false);
        }
        let all_closed = ctx.live.get() == 0 && (ramp_reported || ctx.closing.get());
        let close_timed_out = closing_since.is_some_and(|t| now - t > 3_000_000_000);
        if ctx.closing.get() && (all_closed || close_timed_out || ctx.control.abort.load(Ordering::Relaxed)) {
            break;
        }
        let mut wake_at = next_snapshot.min(now + control_poll.as_nanos() as u64);
        if let Some(&Reverse((due, _, _))) = heap.peek() {
            wake_at = wake_at.min(due);
        }
        let wait = wake_at.saturating_sub(now_ns());
        if wait > 0 {
            match &ticker {
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

/// Rings the connection that sends for sender `s` of local room `r`: its user's first device.
fn wake_sender(ctx: &RoomsCtx, r: u32, s: u32) {
    let room = &ctx.rooms[r as usize];
    let user = ctx.pop.members(room.id)[s as usize];
    if let Some(ci) = ctx.conn_of(user) {
        ctx.conns[ci].slot.wake();
    }
}

fn publish(ctx: &RoomsCtx, tx: &Sender<Snapshot>, last: bool) {
    let mut stats = ctx.stats.borrow_mut();
    let idx = ctx.plan.idx;
    stats.counters.conns_connecting = ctx.connecting.get();
    stats.counters.msgs_unsent = ctx.all_senders().iter().map(|st| st.due.get() - st.sent.get()).sum();
    ctx.control.open[idx].store(stats.counters.open(), Ordering::Relaxed);
    ctx.control.pending[idx].store(stats.counters.pending() + ctx.backlog.get(), Ordering::Relaxed);
    let _ = tx.send(stats.snapshot(idx, now_ns(), last));
}

/// Every sender's schedule from the send phase's start: its class's rate, a phase spread by the
/// seed (the same on every node).
fn start_schedules(ctx: &RoomsCtx, heap: &mut Heap) {
    let p = &*ctx.plan.scenario;
    let start = ctx.control.send_start_ns.load(Ordering::SeqCst);
    for (ri, room) in ctx.rooms.iter().enumerate() {
        let class = ctx.pop.class_of(room.id);
        if class.rate <= 0.0 {
            continue;
        }
        let period = pacing::period_ns(class.rate);
        for (si, st) in ctx.senders(room).iter().enumerate() {
            let global = ((room.id as u64) << 20) | si as u64;
            let phase = pacing::phase_ns(p.seed, global, period);
            let sched = Schedule::new(start, phase, class.rate, p.duration.as_nanos() as u64);
            st.schedule.set(Some(Sched::Fixed(sched)));
            if let Some(first) = sched.next_due_ns(0) {
                heap.push(Reverse((first, ri as u32, si as u32)));
            }
        }
    }
}

/// Opens this core's connections at its share of the connect rate, community by community.
async fn ramp(ctx: &Rc<RoomsCtx>, tq: glommio::TaskQueueHandle) {
    let mut start = now_ns();
    let per_conn_ns = (1e9 / ctx.plan.connect_rate.max(1e-3)) as u64;
    let total = ctx.conns.len() as u64;
    for i in 0..total {
        if ctx.closing.get() || ctx.control.abort.load(Ordering::Relaxed) {
            return;
        }
        // Gated runs (the ceiling) open connections in steps.
        while i >= ctx.control.allowance(total) {
            if ctx.closing.get() || ctx.control.abort.load(Ordering::Relaxed) {
                return;
            }
            crate::runtime::net::idle::sleep(Duration::from_millis(5)).await;
            start = now_ns().saturating_sub(i * per_conn_ns);
        }
        let due = start + i * per_conn_ns;
        let now = now_ns();
        if due > now + 1_000_000 {
            crate::runtime::net::idle::sleep(Duration::from_nanos(due - now)).await;
        }
        ctx.stats.borrow_mut().counters.conns_attempted += 1;
        ctx.connecting.set(ctx.connecting.get() + 1);
        ctx.live.set(ctx.live.get() + 1);
        if crate::runtime::net::idle::spawn_into(conn::run(ctx.clone(), i as usize), tq).map(|t| t.detach()).is_err() {
            ctx.stats.borrow_mut().counters.conns_attempted -= 1;
            ctx.connect_settled();
            ctx.live.set(ctx.live.get() - 1);
        }
        if i % 64 == 63 {
            glommio::yield_if_needed().await;
        }
    }
}
