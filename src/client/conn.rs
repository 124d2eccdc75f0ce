//! One client connection's life: connect, then wait on one of three things — a frame from the
//! server, the scheduler saying messages are due (senders only), or the core closing.
//!
//! Accounting happens here, on the core that owns the whole conversation:
//! - at send, `expected += (members connected now) - 1`;
//! - at receipt, a message counts toward `delivered` only if it was sent after this receiver
//!   connected (the same rule, seen from the other side), once per (sender, seq).

use super::connect::{self, Ws};
use super::core::{Conv, CoreCtx};
use super::reconnect::{self, Backoff};
use crate::accounting::{Receipt, StreamTracker};
use crate::clock::now_ns;
use crate::marker::{self, DecodeError, Marker};
use crate::stats::ErrorKind;
use crate::template::Vars;
use futures_util::{SinkExt, StreamExt};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Error as WsError, Message};

enum Event {
    Frame(Option<Result<Message, WsError>>),
    Send,
    Close,
}

/// The body of a connection task.
pub async fn run(ctx: Rc<CoreCtx>, conv_idx: usize, member: u32) {
    let conv = &ctx.convs[conv_idx];
    // Boxed: the connect future is large and needed once; the task keeps only what serving needs.
    let mut ws = Box::pin(connect(&ctx, conv, member)).await;
    ctx.connecting.set(ctx.connecting.get() - 1);
    let mut backoff = ctx.plan.reconnect.then(|| {
        let user = conv.id * ctx.plan.members as u64 + member as u64;
        Backoff::new(ctx.plan.seed ^ user)
    });
    while let Some(w) = ws.take() {
        let (how, established_ns) = session(&ctx, conv, member, w).await;
        if let (Ended::ByPeer(_), Some(b)) = (&how, backoff.as_mut()) {
            b.connected_for(Duration::from_nanos(now_ns().saturating_sub(established_ns)));
            conv.away.set(conv.away.get() + 1);
            ws = Box::pin(reconnect::again(&ctx, conv, member, b)).await;
            conv.away.set(conv.away.get() - 1);
        }
    }
    ctx.live.set(ctx.live.get() - 1);
}

/// One established connection, from open to close: membership, serving, and how it ended.
/// Returns how it ended and when it counted as connected (a reconnect gets a fresh time, so
/// what was sent while it was away is never taken for a delivery).
async fn session(ctx: &CoreCtx, conv: &Conv, member: u32, ws: Box<Ws>) -> (Ended, u64) {
    conv.open.set(conv.open.get() + 1);
    let sender = conv.senders.get(member as usize);
    if let Some(st) = sender {
        ctx.set_connected(st, true);
    }
    let established_ns = now_ns();
    let how = serve(ctx, conv, member, established_ns, ws).await;
    if let Some(st) = sender {
        ctx.set_connected(st, false);
    }
    conv.open.set(conv.open.get() - 1);
    let mut st = ctx.stats.borrow_mut();
    match how {
        Ended::ByUs => st.counters.conns_closed += 1,
        Ended::ByPeer(kind) => {
            st.counters.conns_closed_by_peer += 1;
            st.counters.error(kind.unwrap_or(ErrorKind::ClosedByPeer));
        }
    }
    (how, established_ns)
}

pub(super) async fn connect(ctx: &CoreCtx, conv: &Conv, member: u32) -> Option<Box<Ws>> {
    let p = &ctx.plan;
    let vars = Vars {
        conv: conv.id,
        member,
        user: conv.id * p.members as u64 + member as u64,
    };
    let t0 = now_ns();
    let mut path = String::new();
    let seed = p.seed ^ vars.user.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let r = glommio::timer::timeout(p.connect_timeout, async {
        let source = (!p.sources.is_empty()).then(|| p.sources[(vars.user % p.sources.len() as u64) as usize]);
        Ok(connect::open(&ctx.target, &vars, seed, source, &mut path).await)
    })
    .await;
    let mut st = ctx.stats.borrow_mut();
    match r {
        Ok(Ok(ws)) => {
            st.counters.conns_established += 1;
            st.record_connect(now_ns() - t0);
            // On the heap, so the task's state machine holds a pointer rather than a copy per
            // state.
            Some(Box::new(ws))
        }
        Ok(Err(kind)) => {
            st.counters.conns_failed += 1;
            st.counters.error(kind);
            None
        }
        Err(_) => {
            st.counters.conns_failed += 1;
            st.counters.error(ErrorKind::ConnectTimeout);
            None
        }
    }
}

enum Ended {
    ByUs,
    ByPeer(Option<ErrorKind>),
}

async fn serve(ctx: &CoreCtx, conv: &Conv, member: u32, established_ns: u64, mut ws: Box<Ws>) -> Ended {
    let is_sender = member < ctx.plan.senders;
    let mut trackers: Box<[StreamTracker]> = vec![StreamTracker::default(); ctx.plan.senders as usize].into();
    let slot = &conv.slots[member as usize];
    let mut peer_closed = false;
    loop {
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
            if let Poll::Ready(f) = ws.poll_next_unpin(cx) {
                return Poll::Ready(Event::Frame(f));
            }
            slot.register(cx.waker());
            Poll::Pending
        })
        .await;
        match ev {
            Event::Close => {
                Box::pin(close(&mut ws)).await;
                return Ended::ByUs;
            }
            Event::Send => {
                // Boxed so that the (rare) sending state does not size every connection's task.
                if let Err(e) = Box::pin(send_due(ctx, conv, member, &mut ws)).await {
                    ctx.stats.borrow_mut().counters.error(ErrorKind::SendFailed);
                    return Ended::ByPeer(Some(ws_error_kind(&e)));
                }
            }
            Event::Frame(Some(Ok(msg))) => {
                let now = now_ns();
                match &msg {
                    Message::Text(t) => on_frame(ctx, conv, member, established_ns, &mut trackers, t.as_bytes(), now),
                    Message::Binary(b) => {
                        ctx.stats.borrow_mut().counters.error(ErrorKind::BinaryFrame);
                        on_frame(ctx, conv, member, established_ns, &mut trackers, b, now);
                    }
                    // tungstenite answers; the stream ends next, and whatever the peer does
                    // after its close frame, the connection was closed by the peer.
                    Message::Close(_) => peer_closed = true,
                    _ => {}                 // ping/pong: tungstenite answers pings itself
                }
            }
            Event::Frame(None) => return Ended::ByPeer(None),
            Event::Frame(Some(Err(_))) if peer_closed => return Ended::ByPeer(None),
            Event::Frame(Some(Err(e))) => {
                let kind = ws_error_kind(&e);
                let code = match kind {
                    ErrorKind::FrameTooLarge => Some((CloseCode::Size, "frame too large")),
                    ErrorKind::InvalidUtf8 => Some((CloseCode::Invalid, "invalid UTF-8")),
                    _ => None,
                };
                if let Some((code, reason)) = code {
                    Box::pin(close_with(&mut ws, code, reason)).await;
                }
                return Ended::ByPeer(Some(kind));
            }
        }
        // Nothing of the event is held across this await, which keeps the task small.
        glommio::yield_if_needed().await;
    }
}

/// Closes from our side, then reads until the server's answer and its end of the TCP connection;
/// a server that never answers or never hangs up is not waited for long.
async fn close(ws: &mut Ws) {
    let _ = glommio::timer::timeout(Duration::from_secs(2), async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
        Ok(())
    })
    .await;
}

/// Tells the server why herd closes, without waiting on an answer it may never send.
async fn close_with(ws: &mut Ws, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = glommio::timer::timeout(Duration::from_secs(1), async {
        let _ = ws.close(Some(frame)).await;
        Ok(())
    })
    .await;
}

/// Sends every message that is due, each stamped with its intended and actual send time.
async fn send_due(ctx: &CoreCtx, conv: &Conv, member: u32, ws: &mut Ws) -> Result<(), WsError> {
    let st = &conv.senders[member as usize];
    let Some(sched) = st.schedule.get() else { return Ok(()) };
    let p = &ctx.plan;
    let mut wrote = 0u64;
    let mut owed_total = 0u64;
    let mut away_total = 0u64;
    while st.sent.get() < st.due.get() {
        let seq = st.sent.get();
        let m = Marker {
            run: p.run_id,
            conv: conv.id,
            sender: member,
            seq,
            intended_ns: sched.due_ns(seq),
            sent_ns: now_ns(),
        };
        // Encoded in the core's scratch buffer; the frame takes its own copy.
        let text = {
            let mut buf = ctx.scratch.borrow_mut();
            m.encode_padded(p.size, &mut buf);
            Message::text(buf.as_str())
        };
        // Counted before the write: a receiver on this core may read the message before this
        // task resumes.
        let owed = conv.open.get().saturating_sub(1) as u64;
        let away = conv.away.get() as u64;
        st.sent.set(seq + 1);
        ctx.backlog.set(ctx.backlog.get() - 1);
        {
            let mut s = ctx.stats.borrow_mut();
            s.counters.msgs_sent += 1;
            s.counters.msgs_expected += owed;
            s.counters.msgs_missed_away += away;
        }
        owed_total += owed;
        away_total += away;
        wrote += 1;
        if let Err(e) = ws.feed(text).await {
            // Nothing of this batch is known to have left: take it back.
            st.sent.set(st.sent.get() - wrote);
            ctx.backlog.set(ctx.backlog.get() + wrote);
            let mut s = ctx.stats.borrow_mut();
            s.counters.msgs_sent -= wrote;
            s.counters.msgs_expected -= owed_total;
            s.counters.msgs_missed_away -= away_total;
            return Err(e);
        }
    }
    ws.flush().await
}

fn on_frame(
    ctx: &CoreCtx,
    conv: &Conv,
    member: u32,
    established_ns: u64,
    trackers: &mut [StreamTracker],
    frame: &[u8],
    now: u64,
) {
    let mut stats = ctx.stats.borrow_mut();
    let found = marker::find_all(frame, |r| {
        let m = match r {
            Ok(m) => m,
            Err(DecodeError::Truncated) | Err(DecodeError::Malformed) => {
                stats.counters.error(ErrorKind::MarkerMalformed);
                return;
            }
        };
        if m.run != ctx.plan.run_id {
            stats.counters.error(ErrorKind::MarkerForeign);
            return;
        }
        if m.conv != conv.id || m.sender >= ctx.plan.senders {
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
        if m.sent_ns < established_ns {
            stats.counters.msgs_unexpected += 1;
            return;
        }
        match trackers[m.sender as usize].receive(m.seq) {
            Receipt::Duplicate => stats.counters.msgs_duplicated += 1,
            r => {
                if r == Receipt::Reordered {
                    stats.counters.msgs_reordered += 1;
                }
                stats.counters.msgs_delivered += 1;
                stats.record_delivery(now.saturating_sub(m.intended_ns), now.saturating_sub(m.sent_ns));
            }
        }
    });
    if found == 0 {
        stats.counters.error(ErrorKind::MarkerMissing);
    }
}

fn ws_error_kind(e: &WsError) -> ErrorKind {
    match e {
        WsError::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionAborted => {
                ErrorKind::Reset
            }
            _ => ErrorKind::Io,
        },
        WsError::ConnectionClosed | WsError::AlreadyClosed => ErrorKind::Reset,
        // EOF without a close frame: the peer went away (killed, crashed, reset).
        WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => ErrorKind::Reset,
        WsError::Capacity(_) => ErrorKind::FrameTooLarge,
        WsError::Utf8(_) => ErrorKind::InvalidUtf8,
        _ => ErrorKind::Protocol,
    }
}
