//! One client connection's life: connect, then wait on one of four things — a frame from the
//! server, the scheduler saying messages are due (senders only), the keep-alive ring saying a
//! ping is due, or the core closing. With `--reconnect`, a lost connection is opened again.
//!
//! Accounting happens here, on the core that owns the whole conversation:
//! - at send, `expected += (members connected now) - 1`;
//! - at receipt, a message counts toward `delivered` only if it was sent after this receiver
//!   connected (the same rule, seen from the other side), once per (sender, seq).
//!
//! A close frame from the server ends the connection at once: it counts as closed by the peer,
//! with its code, and herd's echo goes out; the socket is then closed after at most
//! [`PEER_CLOSE_LINGER`] even if the server never ends the TCP connection. A server
//! that breaks the rules (invalid UTF-8, a message above `--max-frame`, a protocol violation)
//! gets the connection failed with the matching close code (see `session::failure`).

use super::connect;
use super::direct;
use super::reconnect::{self, Backoff};
use super::serving::{self, rx_time, Got, Wire};
use super::session;
use super::shaping;
use super::state::{Conv, CoreCtx, Slot};
use super::target::Ws;
use crate::config::template::Fill;
use crate::measure::accounting::Trackers;
use crate::measure::clock::now_ns;
use crate::measure::marker::Marker;
use crate::measure::stats::ErrorKind;
use crate::ws::wire;
use futures_util::{SinkExt, StreamExt};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;
use tungstenite::{Error as WsError, Message};

enum Event {
    Read(direct::Read),
    Send,
    Leave(Leave),
    KeepAlive,
    Close,
}

/// The body of a connection task.
pub async fn run(ctx: Rc<CoreCtx>, conv_idx: usize, member: u32) {
    let conv = &ctx.convs[conv_idx];
    // Boxed: the connect future is large and needed once; the task keeps only what serving needs.
    // A run that closes (end, Ctrl-C) while this connection is still connecting does not wait
    // for it: the attempt is cut short and neither failed nor succeeded.
    let first = futures_lite::future::or(async { Some(Box::pin(connect::member(&ctx, conv, member)).await) }, async {
        reconnect::closing(&ctx, &conv.slots[member as usize]).await;
        None
    })
    .await;
    ctx.connect_settled();
    let mut ws = first.unwrap_or_else(|| {
        ctx.stats.borrow_mut().counters.conns_attempted -= 1;
        None
    });
    let mut backoff =
        ctx.plan.scenario.reconnect.then(|| Backoff::new(ctx.plan.scenario.seed ^ ctx.vars(conv, member).user));
    while let Some(w) = ws.take() {
        let (how, established_ns) = session(&ctx, conv_idx, member, w).await;
        match how {
            // A ramp down closed the conversation: this member is done.
            Ended::Left(Leave::Closed) => {}
            Ended::Left(Leave::Churn) => ws = Box::pin(reconnect::rejoin(&ctx, conv, member, None)).await,
            Ended::Left(Leave::Storm) => {
                let at = ctx.plan.scenario.storm.map(|st| shaping::storm_return_ns(&ctx, &st, conv.id, member));
                ctx.went_away(conv);
                ws = Box::pin(reconnect::rejoin(&ctx, conv, member, at)).await;
                ctx.came_back(conv);
            }
            how if how.by_peer() => {
                if let Some(b) = backoff.as_mut() {
                    b.connected_for(Duration::from_nanos(now_ns().saturating_sub(established_ns)));
                    ctx.went_away(conv);
                    ws = Box::pin(reconnect::again(&ctx, conv, member, b)).await;
                    ctx.came_back(conv);
                }
            }
            _ => {}
        }
    }
    ctx.live.set(ctx.live.get() - 1);
    conv.tasks.set(conv.tasks.get() - 1);
    if ctx.live.get() == 0 {
        ctx.nudge();
    }
}

/// One established connection, from open to close: membership, serving, and how it ended.
/// Returns how it ended and when it counted as connected (a reconnect gets a fresh time, so
/// what was sent while it was away is never taken for a delivery).
async fn session(ctx: &CoreCtx, conv_idx: usize, member: u32, mut ws: Box<Ws>) -> (Ended, u64) {
    let conv = &ctx.convs[conv_idx];
    let slot = &conv.slots[member as usize];
    conv.open.set(conv.open.get() + 1);
    slot.set(Slot::OPEN, true);
    let sender = conv.senders.get(member as usize);
    if let Some(st) = sender {
        ctx.set_connected(st, true);
        if ctx.plan.scenario.shape.is_some() && ctx.control.phase() >= crate::client::phase::Phase::Sending {
            // A shaped sender's schedule starts once it is connected (the scheduler starts it).
            ctx.joining.borrow_mut().push((conv_idx as u32, member, now_ns()));
        }
    }
    let established_ns = now_ns();
    let how = serve(ctx, conv_idx, member, established_ns, &mut ws).await;
    slot.set(Slot::OPEN | Slot::CHURN | Slot::STORM, false);
    if let Some(st) = sender {
        ctx.set_connected(st, false);
    }
    // A member that left took itself out of `open` when it started leaving.
    if !matches!(how, Ended::Left(_)) {
        conv.open.set(conv.open.get() - 1);
    }
    {
        let mut st = ctx.stats.borrow_mut();
        match how {
            Ended::ByUs => st.counters.conns_closed += 1,
            Ended::Left(_) => {
                st.counters.conns_closed += 1;
                st.counters.conns_left += 1;
            }
            Ended::ByPeer(kind) | Ended::ClosedByPeer(kind) => {
                st.counters.conns_closed_by_peer += 1;
                st.counters.error(kind.unwrap_or(ErrorKind::ClosedByPeer));
            }
        }
    }
    if let Ended::ClosedByPeer(_) = how {
        // Counted above, before this wait: the server's close is the end of the connection,
        // whether or not it ever ends the TCP connection.
        Box::pin(linger(&mut ws)).await;
    }
    (how, established_ns)
}

#[derive(Clone, Copy)]
enum Ended {
    ByUs,
    /// herd closed it mid-run, after everything owed to it had arrived (see `shaping.rs`).
    Left(Leave),
    /// The connection broke, or the peer ended it (and its TCP connection too).
    ByPeer(Option<ErrorKind>),
    /// The peer sent its close frame: the socket is still open, for the echo and the peer's end
    /// of TCP, which [`linger`] waits for.
    ClosedByPeer(Option<ErrorKind>),
}

impl Ended {
    fn by_peer(self) -> bool {
        matches!(self, Ended::ByPeer(_) | Ended::ClosedByPeer(_))
    }
}

/// Why a member leaves mid-run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Leave {
    /// Its conversation was closed by a stage ramping down.
    Closed,
    Churn,
    Storm,
}

/// How long a leaving member waits for what it is owed before closing anyway (what has not
/// arrived by then counts as missed).
pub const LEAVE_LINGER: Duration = Duration::from_secs(2);

/// How long herd waits, after a peer's close frame, for its echo to go out and the peer to end
/// the TCP connection before closing the socket itself.
pub const PEER_CLOSE_LINGER: Duration = Duration::from_secs(1);

/// What serving does next: the event, without what it carried.
enum Act {
    Close,
    Leave(Leave),
    Send,
    KeepAlive,
    Got(Got),
}

async fn serve(ctx: &CoreCtx, conv_idx: usize, member: u32, established_ns: u64, ws: &mut Ws) -> Ended {
    let conv = &ctx.convs[conv_idx];
    let is_sender = member < ctx.plan.scenario.senders;
    let slot = &conv.slots[member as usize];
    let idx = ctx.conn_index(conv_idx, member);
    let owed_pings = || ctx.ping.as_ref().map_or(0, |r| r.owed(idx));
    // What the senders sent before this connection was established is not owed to it.
    let mut trackers = Trackers::joining(ctx.plan.scenario.senders as usize, |i| conv.senders[i].sent.get());
    let mut pings_done = owed_pings();
    let mut w = Wire::default();
    loop {
        let act = {
            let ev = poll_fn(|cx| {
                if ctx.closing.get() {
                    return Poll::Ready(Event::Close);
                }
                if is_sender {
                    let st = &conv.senders[member as usize];
                    if st.due.get() > st.sent.get() {
                        return Poll::Ready(Event::Send);
                    }
                }
                if !conv.active.get() {
                    return Poll::Ready(Event::Leave(Leave::Closed));
                }
                if slot.has(Slot::STORM) {
                    return Poll::Ready(Event::Leave(Leave::Storm));
                }
                if slot.has(Slot::CHURN) {
                    return Poll::Ready(Event::Leave(Leave::Churn));
                }
                if owed_pings() > pings_done {
                    return Poll::Ready(Event::KeepAlive);
                }
                if let Poll::Ready(read) = direct::poll_stream(ws, cx, &ctx.read_buf, &mut w.direct) {
                    return Poll::Ready(Event::Read(read));
                }
                slot.register(cx.waker());
                Poll::Pending
            })
            .await;
            // The event is handled here without waiting; only a small `Act` is left for the waits
            // below, so nothing of a frame is held across them (see `serving.rs`).
            match ev {
                Event::Close => Act::Close,
                Event::Leave(why) => Act::Leave(why),
                Event::Send => Act::Send,
                Event::KeepAlive => Act::KeepAlive,
                Event::Read(read) => {
                    Act::Got(serving::on_read(&ctx.target, &ctx.stats, &ctx.read_buf, ws, read, &mut w, |b, now| {
                        on_frame(ctx, conv, member, (established_ns, u64::MAX), &mut trackers, b, now)
                    }))
                }
            }
        };
        let got = match act {
            Act::Close => {
                Box::pin(close_bounded(ctx, ws)).await;
                return Ended::ByUs;
            }
            Act::Leave(why) => {
                Box::pin(leave(ctx, conv, member, established_ns, &mut trackers, ws)).await;
                return Ended::Left(why);
            }
            Act::Send => {
                // Boxed so that the (rare) sending state does not size every connection's task.
                if let Err(e) = Box::pin(send_due(ctx, conv, member, ws)).await {
                    return write_failed(ctx, &e);
                }
                Got::Next
            }
            Act::KeepAlive => {
                pings_done = owed_pings();
                let v = ctx.vars(conv, member);
                let sent =
                    Box::pin(session::keepalive(ws, &ctx.target, &v, &mut w.awaiting_pong, &ctx.stats, &ctx.scratch))
                        .await;
                if let Err(e) = sent {
                    return write_failed(ctx, &e);
                }
                Got::Next
            }
            Act::Got(got) => got,
        };
        match got {
            Got::Next => {}
            Got::Answer(auto) => {
                let v = ctx.vars(conv, member);
                let sent = Box::pin(session::answer(ws, &ctx.target, &v, auto, &ctx.scratch)).await;
                if let Err(e) = sent {
                    return write_failed(ctx, &e);
                }
            }
            Got::Fail(kind, code) => {
                // Boxed: the failure path should not grow every connection's future.
                Box::pin(session::fail(ws, code)).await;
                ctx.stats.borrow_mut().counters.wire.close_sent(code);
                return Ended::ByPeer(Some(kind));
            }
            Got::PeerClosed => return Ended::ClosedByPeer(None),
            Got::Gone(kind) => return Ended::ByPeer(kind),
        }
        glommio::yield_if_needed().await;
    }
}
/// Leaving mid-run: from now on nothing sent is owed to this member; it reads until everything
/// sent to it before now has arrived (at most [`LEAVE_LINGER`]), then closes with 1000.
async fn leave(ctx: &CoreCtx, conv: &Conv, member: u32, established_ns: u64, trackers: &mut Trackers, ws: &mut Ws) {
    conv.open.set(conv.open.get() - 1);
    let left_ns = now_ns();
    let senders = ctx.plan.scenario.senders as usize;
    let owed: Vec<u64> = conv.senders.iter().map(|s| s.sent.get()).collect();
    let complete = |t: &Trackers| (0..senders).all(|i| i == member as usize || t.get(i).complete_below(owed[i]));
    let _ = crate::runtime::net::idle::timeout(LEAVE_LINGER, async {
        while !complete(trackers) && !ctx.closing.get() {
            let Some(Ok(msg)) = ws.next().await else { break };
            let now = rx_time(ws);
            let bytes: &[u8] = match &msg {
                Message::Text(t) => t.as_bytes(),
                Message::Binary(b) => b,
                _ => continue,
            };
            on_frame(ctx, conv, member, (established_ns, left_ns), trackers, bytes, now);
        }
        Ok(())
    })
    .await;
    close(ws).await;
}

/// Closing handshakes in flight at once per core. Every connection closes at the end of a run,
/// and each handshake holds a timer and read buffers until the server answers: unbounded, that
/// was the run's peak memory (about 500 B per connection over what connections hold).
pub const CLOSING_AT_ONCE: u64 = 1024;

/// [`close`], once one of the core's [`CLOSING_AT_ONCE`] slots is free. Only this small future
/// waits for a slot; the handshake's own state is allocated once it has one.
async fn close_bounded(ctx: &CoreCtx, ws: &mut Ws) {
    let _slot = ctx.closing_slots.acquire_permit(1).await;
    Box::pin(close(ws)).await;
}

/// herd's own close at the end of a run (1000), then reading until the server's answer and its
/// end of the TCP connection; a server that never answers or never hangs up is not waited for
/// long. (An aborted run does not wait at all: its cores stop without waiting for these.)
pub(super) async fn close(ws: &mut Ws) {
    let _ = crate::runtime::net::idle::timeout(Duration::from_secs(2), async {
        let _ = ws.close(Some(session::normal_close())).await;
        while let Some(Ok(_)) = ws.next().await {}
        Ok(())
    })
    .await;
}

/// After the peer's close frame: sends herd's echo (tungstenite queued it) and reads until the
/// peer ends the TCP connection, for at most [`PEER_CLOSE_LINGER`].
pub(super) async fn linger(ws: &mut Ws) {
    let _ = crate::runtime::net::idle::timeout(PEER_CLOSE_LINGER, async {
        let _ = ws.flush().await;
        while let Some(Ok(_)) = ws.next().await {}
        Ok(())
    })
    .await;
}

/// A write failed: the connection is gone.
fn write_failed(ctx: &CoreCtx, e: &WsError) -> Ended {
    let mut st = ctx.stats.borrow_mut();
    st.counters.error(ErrorKind::SendFailed);
    st.counters.wire.close_received(wire::ABNORMAL);
    Ended::ByPeer(Some(session::failure(e).0))
}

/// Sends every message that is due, each stamped with its intended and actual send time.
async fn send_due(ctx: &CoreCtx, conv: &Conv, member: u32, ws: &mut Ws) -> Result<(), WsError> {
    let st = &conv.senders[member as usize];
    let Some(sched) = st.schedule.get() else { return Ok(()) };
    let p = &ctx.plan;
    let v = ctx.vars(conv, member);
    let token = ctx.target.tokens.get(v.user);
    while st.sent.get() < st.due.get() {
        let seq = st.sent.get();
        let m = Marker {
            run: p.run_id,
            conv: conv.id,
            sender: member,
            seq,
            intended_ns: ctx.due_ns(&sched, seq),
            sent_ns: now_ns(),
        };
        // Encoded in the core's buffers; the frame takes its own copy.
        let text = {
            let mut buf = ctx.marker_buf.borrow_mut();
            m.encode_padded(p.scenario.size, &mut buf);
            session::message(
                &ctx.target.protocol,
                &Fill { vars: v, token, seq, payload: buf.as_str(), rooms: &[] },
                &mut ctx.scratch.borrow_mut(),
            )
        };
        // Counted before the write: a receiver on this core may read the message before this
        // task resumes.
        let owed = conv.open.get().saturating_sub(1) as u64;
        let away = conv.away.get() as u64;
        let stage = ctx.stage_of(m.intended_ns);
        st.sent.set(seq + 1);
        ctx.backlog.set(ctx.backlog.get() - 1);
        {
            let mut s = ctx.stats.borrow_mut();
            s.counters.msgs_sent += 1;
            s.counters.msgs_expected += owed;
            s.counters.msgs_missed_away += away;
            // herd's own delay, which corrected latency includes.
            let lag = m.sent_ns.saturating_sub(m.intended_ns);
            s.record_send_lag(lag);
            if let Some(w) = s.windows.stages.get_mut(stage) {
                w.sent += 1;
                w.expected += owed;
                w.sent_late += u64::from(lag > crate::measure::windows::LATE_SEND_NS);
            }
        }
        if let Err(e) = ws.feed(text).await {
            // With no write buffer (`write_buffer_size(0)`) every earlier frame of this batch
            // went to the socket when it was fed: they stay sent (a peer may have relayed them,
            // and sending them again would make duplicates). Only this one is taken back.
            st.sent.set(st.sent.get() - 1);
            ctx.backlog.set(ctx.backlog.get() + 1);
            let mut s = ctx.stats.borrow_mut();
            s.counters.msgs_sent -= 1;
            s.counters.msgs_expected -= owed;
            s.counters.msgs_missed_away -= away;
            if let Some(w) = s.windows.stages.get_mut(stage) {
                w.sent -= 1;
                w.expected -= owed;
            }
            return Err(e);
        }
    }
    ws.flush().await
}

fn on_frame(
    ctx: &CoreCtx,
    conv: &Conv,
    member: u32,
    // Messages sent in [from, until) are owed to this connection: after it was established and
    // before it started leaving.
    (from, until): (u64, u64),
    trackers: &mut Trackers,
    frame: &[u8],
    now: u64,
) {
    serving::each_marker(&ctx.target, &ctx.stats, ctx.plan.run_id, frame, |stats, m| {
        if m.conv != conv.id || m.sender >= ctx.plan.scenario.senders {
            stats.counters.error(ErrorKind::MarkerOutOfRange);
            return;
        }
        if m.sender == member {
            stats.counters.msgs_echoed += 1;
            return;
        }
        if m.seq >= conv.senders[m.sender as usize].sent.get() {
            stats.counters.error(ErrorKind::MarkerOutOfRange);
            return;
        }
        if m.sent_ns < from || m.sent_ns >= until {
            stats.counters.msgs_unexpected += 1;
            return;
        }
        let stage = ctx.stage_of(m.intended_ns);
        let t = trackers.get_mut(m.sender as usize);
        let evicted = t.holes_evicted;
        let receipt = t.receive(m.seq);
        stats.counters.msgs_holes_evicted += t.holes_evicted - evicted;
        if let Some((corrected, uncorrected)) =
            stats.count_receipt(receipt, m.latencies(now), |w| w.stages.get_mut(stage))
        {
            if stats.windows.outages.active() {
                stats.windows.outages.record_delivery(corrected, uncorrected);
            }
        }
    });
}
