//! Opening a core's connections: the connect ramp before the send phase, at the core's share of
//! `--connect-rate` (held back by the allowance of a gated run), or, under a connection ramp
//! (`--stage`), the stages' connection target followed during the send phase by opening and
//! closing whole conversations.

use super::conn;
use super::state::{CoreCtx, Sched};
use crate::measure::clock::now_ns;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Starts the connection task of one member (counted as attempted and connecting).
pub fn spawn_member(ctx: &Rc<CoreCtx>, tq: glommio::TaskQueueHandle, ci: usize, member: u32) {
    ctx.stats.borrow_mut().counters.conns_attempted += 1;
    ctx.connecting.set(ctx.connecting.get() + 1);
    ctx.live.set(ctx.live.get() + 1);
    let conv = &ctx.convs[ci];
    conv.tasks.set(conv.tasks.get() + 1);
    let fut = conn::run(ctx.clone(), ci, member);
    match crate::runtime::net::idle::spawn_into(fut, tq) {
        Ok(t) => {
            t.detach();
        }
        Err(_) => {
            ctx.stats.borrow_mut().counters.conns_attempted -= 1;
            ctx.connect_settled();
            ctx.live.set(ctx.live.get() - 1);
            conv.tasks.set(conv.tasks.get() - 1);
        }
    }
}

/// Opens this core's connections at its share of the connect rate, conversation by conversation.
pub async fn ramp(ctx: &Rc<CoreCtx>, tq: glommio::TaskQueueHandle) {
    let mut start = now_ns();
    let per_conn_ns = (1e9 / ctx.plan.connect_rate.max(1e-3)) as u64;
    let total = ctx.plan.total_conns();
    let mut i: u64 = 0;
    for ci in 0..ctx.convs.len() {
        for member in 0..ctx.plan.scenario.members {
            if ctx.closing.get() || ctx.control.abort.load(Ordering::Relaxed) {
                return;
            }
            // Gated runs (the ceiling) open connections in steps.
            while i >= ctx.control.allowance(total) {
                if ctx.closing.get() || ctx.control.abort.load(Ordering::Relaxed) {
                    return;
                }
                crate::runtime::net::idle::sleep(Duration::from_millis(5)).await;
                // The connect rate counts from the moment the gate opens.
                start = now_ns().saturating_sub(i * per_conn_ns);
            }
            let due = start + i * per_conn_ns;
            let now = now_ns();
            if due > now + 1_000_000 {
                crate::runtime::net::idle::sleep(Duration::from_nanos(due - now)).await;
            }
            i += 1;
            spawn_member(ctx, tq, ci, member);
            if i % 64 == 0 {
                glommio::yield_if_needed().await;
            }
        }
    }
}

/// How often a connection ramp looks at its target.
const STEP: Duration = Duration::from_millis(10);

/// During the send phase, holds this core's share of the stages' connection target: the
/// conversations numbered below `ceil(target / members)`, opened at the connect rate and closed
/// whole, newest first.
pub async fn follow_stages(ctx: &Rc<CoreCtx>, tq: glommio::TaskQueueHandle) {
    let Some(shape) = &ctx.plan.scenario.shape else { return };
    let members = ctx.plan.scenario.members as u64;
    let per_conn_ns = (1e9 / ctx.plan.connect_rate.max(1e-3)) as u64;
    let mut next_spawn = 0u64;
    let mut active = 0usize;
    loop {
        let start = ctx.control.send_start_ns.load(Ordering::SeqCst);
        let phase = ctx.control.phase();
        // A run that ends before sending (interrupted while connecting) has no stages to apply.
        let never_sent = start == 0 && phase >= crate::client::phase::Phase::Draining;
        if ctx.closing.get() || ctx.control.abort.load(Ordering::Relaxed) || never_sent {
            return;
        }
        let now = now_ns();
        if start == 0 || now < start || phase < crate::client::phase::Phase::Sending {
            crate::runtime::net::idle::sleep(STEP).await;
            continue;
        }
        // After the last stage the run drains: conversations stay as the last stage left them.
        let t = (now - start).min(shape.total_ns());
        let target = shape.connections_at(t).max(0.0).ceil() as u64;
        let want_global = target.div_ceil(members).min(ctx.plan.scenario.conversations as u64);
        let want = ctx.plan.convs.partition_point(|&id| id < want_global);
        while active > want {
            active -= 1;
            close_conversation(ctx, active, now);
        }
        while active < want {
            let conv = &ctx.convs[active];
            if conv.tasks.get() > 0 {
                break; // its members from an earlier opening are still leaving
            }
            conv.active.set(true);
            for st in &conv.senders {
                st.schedule.set(None);
            }
            for member in 0..ctx.plan.scenario.members {
                let now = now_ns();
                if next_spawn > now + 1_000_000 {
                    crate::runtime::net::idle::sleep(Duration::from_nanos(next_spawn - now)).await;
                }
                next_spawn = next_spawn.max(now_ns().saturating_sub(per_conn_ns)) + per_conn_ns;
                spawn_member(ctx, tq, active, member);
            }
            active += 1;
            glommio::yield_if_needed().await;
        }
        if now - start >= shape.total_ns() {
            return;
        }
        crate::runtime::net::idle::sleep(STEP).await;
    }
}

/// A ramp down: the conversation's senders stop at `now`, and its members leave.
fn close_conversation(ctx: &CoreCtx, ci: usize, now: u64) {
    let conv = &ctx.convs[ci];
    conv.active.set(false);
    for st in &conv.senders {
        if let Some(Sched::Shaped(mut sh)) = st.schedule.get() {
            // Whatever is due by now still goes out (before the sender leaves); nothing later.
            ctx.set_due(st, ctx.due_count(&Sched::Shaped(sh), now));
            sh.end_ns = sh.end_ns.min(now);
            st.schedule.set(Some(Sched::Shaped(sh)));
        }
    }
    for s in &conv.slots {
        s.wake();
    }
}
