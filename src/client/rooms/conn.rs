//! One connection of a population: a device of a user, in every room of its user. It connects,
//! joins each room (waiting for each acknowledgement), then waits on a frame from the server,
//! the scheduler saying messages are due (the user's first device sends for the user), a
//! keep-alive, or the core closing.
//!
//! Accounting, on the core that owns the user's whole community:
//! - at send, `expected += (connections joined in the room now) - 1`: every other connected
//!   device of the room's members, the sender's own other devices included;
//! - at receipt, a message counts toward `delivered` only if it was sent after this connection
//!   had joined its rooms, once per (room, sender, seq) on this connection (`Ledger`).

use super::state::{Conn, RoomsCtx};
use crate::client::conn::{close, linger};
use crate::client::serving::{self, Got, Wire};
use crate::client::target::Ws;
use crate::client::{connect, direct, session};
use crate::config::template::{Fill, Vars};
use crate::measure::clock::now_ns;
use crate::measure::marker::Marker;
use crate::measure::stats::ErrorKind;
use crate::population::ledger::Ledger;
use crate::ws::wire;
use futures_util::SinkExt;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use tungstenite::Error as WsError;

enum Event {
    Read(direct::Read),
    Send,
    KeepAlive,
    Close,
}

/// What serving does next: the event, without what it carried.
enum Act {
    Close,
    Send,
    KeepAlive,
    Got(Got),
}

/// The body of a connection task.
pub async fn run(ctx: Rc<RoomsCtx>, ci: usize) {
    let c = &ctx.conns[ci];
    let first = futures_lite::future::or(async { Some(Box::pin(attempt(&ctx, c)).await) }, async {
        closing(&ctx, c).await;
        None
    })
    .await;
    ctx.connect_settled();
    match first {
        Some(Some(ws)) => session(&ctx, ci, ws).await,
        Some(None) => {}
        // Cut short by the run closing: neither failed nor succeeded.
        None => ctx.stats.borrow_mut().counters.conns_attempted -= 1,
    }
    ctx.live.set(ctx.live.get() - 1);
    if ctx.live.get() == 0 {
        ctx.nudge();
    }
}

async fn closing(ctx: &RoomsCtx, c: &Conn) {
    poll_fn(|cx| {
        if ctx.closing.get() || ctx.control.abort.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        c.slot.register(cx.waker());
        Poll::Pending
    })
    .await
}

fn vars(c: &Conn, room: u32) -> Vars {
    Vars { conv: room as u64, member: c.device, user: c.user as u64 }
}

/// One attempt within `--connect-timeout`: connected and joined in every room, or failed.
async fn attempt(ctx: &RoomsCtx, c: &Conn) -> Option<Box<Ws>> {
    let rooms = ctx.pop.rooms_of(c.user);
    let v = vars(c, rooms.first().copied().unwrap_or(0));
    let conn_id = ctx.pop.devices(c.user).start as u64 + c.device as u64;
    connect::attempt(&ctx.plan, &ctx.target, &ctx.stats, &v, Some(rooms), conn_id).await
}

/// What one connection knows of its rooms while it serves.
/// Its user's rooms are `pop.rooms_of(user)` (global ids, ascending); their local indices are
/// looked up when needed (`RoomsCtx::local`) rather than held: a connection keeps 4 bytes per
/// membership here (`prefix`) and 4 per stream it is owed (`ledger`).
struct Joined {
    /// Stream `prefix[i] + s` is sender `s` of the user's `i`-th room.
    prefix: Vec<u32>,
    /// (local room, sender index) this connection sends for (the first device only).
    sends: Vec<(u32, u32)>,
    ledger: Ledger,
}

fn join(ctx: &RoomsCtx, c: &Conn) -> Joined {
    let rooms = ctx.pop.rooms_of(c.user);
    let local: Vec<u32> = rooms.iter().map(|&r| ctx.local(r).map_or(u32::MAX, |l| l as u32)).collect();
    let mut prefix = Vec::with_capacity(rooms.len() + 1);
    let mut total = 0u32;
    let mut sends = Vec::new();
    for &l in &local {
        prefix.push(total);
        let Some(room) = ctx.rooms.get(l as usize) else { continue };
        total += ctx.senders(room).len() as u32;
        if c.device == 0 {
            let members = ctx.pop.members(room.id);
            if let Some(s) = members[..ctx.senders(room).len()].iter().position(|&u| u == c.user) {
                sends.push((l, s as u32));
            }
        }
    }
    prefix.push(total);
    // Owed from now: what each sender sent so far is not.
    let sent_at = |i: usize| -> u64 {
        let k = prefix.partition_point(|&p| p as usize <= i) - 1;
        let room = &ctx.rooms[local[k] as usize];
        ctx.senders(room)[i - prefix[k] as usize].sent.get()
    };
    let ledger = Ledger::new(total as usize, sent_at);
    Joined { prefix, sends, ledger }
}

/// One established connection, joined in its rooms, until it closes.
async fn session(ctx: &RoomsCtx, ci: usize, mut ws: Box<Ws>) {
    let c = &ctx.conns[ci];
    let mut j = join(ctx, c);
    for l in ctx.pop.rooms_of(c.user).iter().filter_map(|&r| ctx.local(r)) {
        let room = &ctx.rooms[l];
        room.open.set(room.open.get() + 1);
    }
    for &(l, s) in &j.sends {
        ctx.set_connected(&ctx.senders(&ctx.rooms[l as usize])[s as usize], true);
    }
    c.slot.set(crate::client::state::Slot::OPEN, true);
    let established_ns = now_ns();
    let by_peer = serve(ctx, ci, established_ns, &mut j, &mut ws).await;
    c.slot.set(crate::client::state::Slot::OPEN, false);
    for &(l, s) in &j.sends {
        ctx.set_connected(&ctx.senders(&ctx.rooms[l as usize])[s as usize], false);
    }
    for l in ctx.pop.rooms_of(c.user).iter().filter_map(|&r| ctx.local(r)) {
        let room = &ctx.rooms[l];
        room.open.set(room.open.get() - 1);
    }
    {
        let mut st = ctx.stats.borrow_mut();
        st.counters.msgs_holes_evicted += j.ledger.holes_evicted;
        match by_peer {
            None => st.counters.conns_closed += 1,
            Some((kind, _)) => {
                st.counters.conns_closed_by_peer += 1;
                st.counters.error(kind.unwrap_or(ErrorKind::ClosedByPeer));
            }
        }
    }
    if let Some((_, true)) = by_peer {
        // The peer's close frame ended it: herd's echo goes out, and the peer ends TCP.
        Box::pin(linger(&mut ws)).await;
    }
}

/// Serves until the run closes (`None`) or the peer ends the connection (its error category,
/// and whether it sent a close frame).
async fn serve(
    ctx: &RoomsCtx,
    ci: usize,
    established_ns: u64,
    j: &mut Joined,
    ws: &mut Ws,
) -> Option<(Option<ErrorKind>, bool)> {
    let c = &ctx.conns[ci];
    let owed_pings = || ctx.ping.as_ref().map_or(0, |r| r.owed(ci as u64));
    let mut pings_done = owed_pings();
    let mut w = Wire::default();
    loop {
        // The event is handled without waiting; only a small `Act` is left for the waits below,
        // so nothing of a frame is held across them (see `client/serving.rs`).
        let act = {
            let ev = poll_fn(|cx| {
                if ctx.closing.get() {
                    return Poll::Ready(Event::Close);
                }
                let due = j.sends.iter().any(|&(l, s)| {
                    let st = &ctx.senders(&ctx.rooms[l as usize])[s as usize];
                    st.due.get() > st.sent.get()
                });
                if due {
                    return Poll::Ready(Event::Send);
                }
                if owed_pings() > pings_done {
                    return Poll::Ready(Event::KeepAlive);
                }
                if let Poll::Ready(read) = direct::poll_stream(ws, cx, &ctx.read_buf, &mut w.direct) {
                    return Poll::Ready(Event::Read(read));
                }
                c.slot.register(cx.waker());
                Poll::Pending
            })
            .await;
            match ev {
                Event::Close => Act::Close,
                Event::Send => Act::Send,
                Event::KeepAlive => Act::KeepAlive,
                Event::Read(read) => {
                    Act::Got(serving::on_read(&ctx.target, &ctx.stats, &ctx.read_buf, ws, read, &mut w, |b, now| {
                        on_frame(ctx, c, established_ns, j, b, now)
                    }))
                }
            }
        };
        let got = match act {
            Act::Close => {
                let _slot = ctx.closing_slots.acquire_permit(1).await;
                Box::pin(close(ws)).await;
                return None;
            }
            Act::Send => {
                if let Err(e) = Box::pin(send_due(ctx, c, j, ws)).await {
                    let mut st = ctx.stats.borrow_mut();
                    st.counters.error(ErrorKind::SendFailed);
                    st.counters.wire.close_received(wire::ABNORMAL);
                    return Some((Some(session::failure(&e).0), false));
                }
                Got::Next
            }
            Act::KeepAlive => {
                pings_done = owed_pings();
                let v = vars(c, 0);
                let sent =
                    Box::pin(session::keepalive(ws, &ctx.target, &v, &mut w.awaiting_pong, &ctx.stats, &ctx.scratch))
                        .await;
                if let Err(e) = sent {
                    ctx.stats.borrow_mut().counters.error(ErrorKind::SendFailed);
                    return Some((Some(session::failure(&e).0), false));
                }
                Got::Next
            }
            Act::Got(got) => got,
        };
        match got {
            Got::Next => {}
            Got::Answer(auto) => {
                let v = vars(c, 0);
                let sent = Box::pin(session::answer(ws, &ctx.target, &v, auto, &ctx.scratch)).await;
                if let Err(e) = sent {
                    ctx.stats.borrow_mut().counters.error(ErrorKind::SendFailed);
                    return Some((Some(session::failure(&e).0), false));
                }
            }
            Got::Fail(kind, code) => {
                Box::pin(session::fail(ws, code)).await;
                ctx.stats.borrow_mut().counters.wire.close_sent(code);
                return Some((Some(kind), false));
            }
            Got::PeerClosed => return Some((None, true)),
            Got::Gone(kind) => return Some((kind, false)),
        }
        glommio::yield_if_needed().await;
    }
}

/// Sends every message due in each room this connection sends in, each stamped with its
/// intended and actual send time.
async fn send_due(ctx: &RoomsCtx, c: &Conn, j: &Joined, ws: &mut Ws) -> Result<(), WsError> {
    let token = ctx.target.tokens.get(c.user as u64);
    for &(l, s) in &j.sends {
        let room = &ctx.rooms[l as usize];
        let st = &ctx.senders(room)[s as usize];
        let Some(crate::client::state::Sched::Fixed(sched)) = st.schedule.get() else { continue };
        let class = ctx.pop.room_class[room.id as usize] as usize;
        let size = ctx.pop.spec.classes[class].message_size;
        while st.sent.get() < st.due.get() {
            let seq = st.sent.get();
            let m = Marker {
                run: ctx.plan.run_id,
                conv: room.id as u64,
                sender: s,
                seq,
                intended_ns: sched.due_ns(seq),
                sent_ns: now_ns(),
            };
            let text = {
                let mut buf = ctx.marker_buf.borrow_mut();
                m.encode_padded(size, &mut buf);
                let fill = Fill { seq, payload: buf.as_str(), ..Fill::new(vars(c, room.id), token) };
                session::message(&ctx.target.protocol, &fill, &mut ctx.scratch.borrow_mut())
            };
            // Counted before the write: a receiver on this core may read it before this task
            // resumes.
            let owed = room.open.get().saturating_sub(1) as u64;
            st.sent.set(seq + 1);
            ctx.backlog.set(ctx.backlog.get() - 1);
            {
                let mut t = ctx.stats.borrow_mut();
                t.counters.msgs_sent += 1;
                t.counters.msgs_expected += owed;
                t.windows.class_sent(class, owed, false);
            }
            if let Err(e) = ws.feed(text).await {
                // Earlier frames of this batch went out when fed; only this one is taken back.
                st.sent.set(st.sent.get() - 1);
                ctx.backlog.set(ctx.backlog.get() + 1);
                let mut t = ctx.stats.borrow_mut();
                t.counters.msgs_sent -= 1;
                t.counters.msgs_expected -= owed;
                t.windows.class_sent(class, owed, true);
                return Err(e);
            }
        }
    }
    ws.flush().await
}

fn on_frame(ctx: &RoomsCtx, c: &Conn, from: u64, j: &mut Joined, frame: &[u8], now: u64) {
    let rooms = ctx.pop.rooms_of(c.user);
    serving::each_marker(&ctx.target, &ctx.stats, ctx.plan.run_id, frame, |stats, m| {
        // The room must be one of this user's, and the sender one of the room's.
        let Some(pos) = u32::try_from(m.conv).ok().and_then(|r| rooms.binary_search(&r).ok()) else {
            stats.counters.error(ErrorKind::MarkerOutOfRange);
            return;
        };
        let Some(l) = ctx.local(rooms[pos]) else {
            stats.counters.error(ErrorKind::MarkerOutOfRange);
            return;
        };
        let Some(room) = ctx.rooms.get(l) else {
            stats.counters.error(ErrorKind::MarkerOutOfRange);
            return;
        };
        let Some(st) = ctx.senders(room).get(m.sender as usize) else {
            stats.counters.error(ErrorKind::MarkerOutOfRange);
            return;
        };
        // Its own message (this device sends for its user): `sends` lists what it sends, a few
        // entries, where the room's member table would be a cache miss per delivery.
        if c.device == 0 && j.sends.contains(&(l as u32, m.sender)) {
            stats.counters.msgs_echoed += 1;
            return;
        }
        if m.seq >= st.sent.get() {
            stats.counters.error(ErrorKind::MarkerOutOfRange);
            return;
        }
        if m.sent_ns < from {
            stats.counters.msgs_unexpected += 1;
            return;
        }
        let class = ctx.pop.room_class[room.id as usize] as usize;
        let r = j.ledger.receive((j.prefix[pos] + m.sender) as usize, m.seq);
        stats.count_receipt(r, m.latencies(now), |w| w.classes.get_mut(class));
    });
}
