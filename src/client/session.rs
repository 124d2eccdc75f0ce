//! The run's protocol on one connection: the upgrade request (headers, tokens, subprotocols) and
//! the check of the answer, the join frames, the frame of a chat message, keep-alives, and how a
//! connection is failed when the server breaks the WebSocket rules.
//!
//! Nothing here keeps state per connection: templates, patterns, tokens and the keep-alive ring
//! belong to the run or the core, and are rendered into buffers that are reused.

use super::target::{Target, Ws};
use crate::config::protocol::steps::{self, Automatic, Pattern, Step};
use crate::config::protocol::Protocol;
use crate::config::template::{Fill, Vars};
use crate::measure::stats::{self, CoreStats, ErrorKind};
use crate::ws::deflate::{codec::Failure, Params};
use crate::ws::handshake::{self, ResponseError};
use crate::ws::wire::WireCounters;
use futures_lite::AsyncReadExt;
use futures_util::{SinkExt, StreamExt};
use std::cell::{Cell, RefCell};
use std::time::Duration;
use tungstenite::error::ProtocolError;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Error as WsError, Message};

/// Payload of herd's WebSocket pings.
const PING_PAYLOAD: &[u8] = b"herd";
/// How long a failed connection waits for the server's close answer before dropping TCP.
const FAIL_LINGER: Duration = Duration::from_secs(1);

/// The upgrade request of one connection (in `rooms`, for `{rooms}`: a population's user).
/// `path` is a buffer for the request target.
pub fn upgrade_request(t: &Target, vars: &Vars, rooms: &[u32], key: &str, path: &mut String) -> Vec<u8> {
    let fill = Fill { rooms, ..Fill::new(*vars, t.tokens.get(vars.user)) };
    t.template.render_target_fill(&fill, path);
    let p = &t.protocol;
    let mut extra = Vec::with_capacity(p.headers.len() + 1);
    for h in &p.headers {
        let mut v = String::new();
        h.value.render(&fill, &mut v);
        extra.push((h.name.clone(), v));
    }
    if !p.subprotocols.is_empty() {
        extra.push(("Sec-WebSocket-Protocol".to_string(), p.subprotocols.join(", ")));
    }
    if let Some(offer) = t.deflate.offer() {
        extra.push(("Sec-WebSocket-Extensions".to_string(), offer.to_string()));
    }
    handshake::client_request(&t.template.host_header(), path, key, &extra)
}

/// Checks the server's answer to the upgrade; returns the permessage-deflate parameters in force,
/// if any. A refusal's status and the first line of its body (`body`: what came with the head) go
/// to the core's statistics.
pub fn check_answer(t: &Target, head: &[u8], body: &[u8], key: &str) -> Result<Option<Params>, ErrorKind> {
    let r = handshake::check_response_ext(head, key, &t.protocol.subprotocols, t.deflate);
    r.map(|(_, deflate)| deflate).map_err(|e| match e {
        ResponseError::Status(code) => {
            stats::record_wire(|w| w.handshake_rejected(code, body));
            ErrorKind::HandshakeRejected
        }
        ResponseError::Invalid(_) => ErrorKind::HandshakeInvalid,
    })
}

/// Runs the join sequence: sends the `--join` frames and waits at each `--expect` step for a
/// matching server frame (at most `--expect-timeout`: `join_timeout`), then hands the connection
/// back. While waiting, the server's pings are answered (`--reply`) and other frames are
/// skipped; a close from the server fails the join with its code and reason counted.
pub async fn joined(ws: &mut Ws, t: &Target, vars: &Vars) -> Result<(), ErrorKind> {
    run_steps(ws, t, vars, &t.protocol.join).await
}

/// The join sequence of a connection in many rooms: the steps before the first that names
/// `{room}` once, then the rest once per room, in order, each room's acknowledgement awaited
/// before the next room's join goes out.
pub async fn joined_rooms(ws: &mut Ws, t: &Target, vars: &Vars, rooms: &[u32]) -> Result<(), ErrorKind> {
    let (once, per_room) = t.protocol.join.split_at(t.protocol.room_steps_from());
    run_steps(ws, t, vars, once).await?;
    for &room in rooms {
        if per_room.is_empty() {
            break;
        }
        run_steps(ws, t, &Vars { conv: room as u64, ..*vars }, per_room).await?;
    }
    Ok(())
}

async fn run_steps(ws: &mut Ws, t: &Target, vars: &Vars, join: &[Step]) -> Result<(), ErrorKind> {
    let fill = Fill::new(*vars, t.tokens.get(vars.user));
    let mut buf = String::new();
    for step in join {
        match step {
            Step::Send(j) => {
                j.render(&fill, &mut buf);
                ws.feed(Message::text(buf.as_str())).await.map_err(|_| ErrorKind::SendFailed)?;
            }
            Step::Expect(p) => {
                ws.flush().await.map_err(|_| ErrorKind::SendFailed)?;
                let waited = crate::runtime::net::idle::timeout(t.protocol.expect_timeout, async {
                    Ok(expect(ws, t, &fill, p).await)
                })
                .await;
                waited.map_err(|_| ErrorKind::JoinTimeout)??;
            }
        }
    }
    ws.flush().await.map_err(|_| ErrorKind::SendFailed)
}

/// Reads until a text frame matches `p`.
async fn expect(ws: &mut Ws, t: &Target, fill: &Fill<'_>, p: &Pattern) -> Result<(), ErrorKind> {
    let mut buf = String::new();
    let mut peer_close = None;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(s))) => {
                if p.matches_room(s.as_str(), fill.vars.conv) {
                    return Ok(());
                }
                if let Some(Automatic::Reply(i)) = steps::classify(None, &t.protocol.replies, s.as_str()) {
                    stats::record_wire(|w| {
                        w.pings_received += 1;
                        w.pongs_sent += 1;
                    });
                    t.protocol.replies[i].response.render(fill, &mut buf);
                    // Boxed: a rare answer should not size every join in flight.
                    Box::pin(ws.send(Message::text(buf.as_str()))).await.map_err(|_| ErrorKind::SendFailed)?;
                }
            }
            Some(Ok(Message::Close(f))) => {
                stats::record_wire(|w| peer_close = Some(self::peer_close(w, ws, f.as_ref())));
            }
            Some(Ok(Message::Ping(_))) => stats::record_wire(|w| w.pings_received += 1),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let kind = failure(&e).0;
                stats::record_wire(|w| {
                    w.close_failed(ws.get_ref().close());
                    w.close_received(peer_close.unwrap_or(crate::ws::wire::ABNORMAL));
                });
                return Err(kind);
            }
            None => {
                stats::record_wire(|w| w.close_received(peer_close.unwrap_or(crate::ws::wire::ABNORMAL)));
                return Err(ErrorKind::ClosedByPeer);
            }
        }
    }
}

/// A close frame from the server: counts its reason and whether its code is invalid, and
/// returns the code the server sent (1005 without one), which tungstenite does not report when
/// RFC 6455 does not allow it (see [`crate::ws::frames`]).
pub fn peer_close(w: &mut WireCounters, ws: &Ws, f: Option<&CloseFrame>) -> u16 {
    let (code, reason) = f.map_or((crate::ws::wire::NO_STATUS, ""), |f| (f.code.into(), f.reason.as_str()));
    w.close_frame(ws.get_ref().close(), code, reason)
}

/// The automatic part of the protocol, for a frame that arrived on an established connection:
/// a pong to herd's `--ping-frame` (counted, and the keep-alive no longer awaits it), a ping to
/// answer (`--reply`: counted; [`answer`] sends the response), or neither (`None`: the frame is
/// an ordinary one).
pub fn automatic(t: &Target, msg: &Message, awaiting_pong: &mut bool, stats: &RefCell<CoreStats>) -> Option<Automatic> {
    let p = &t.protocol;
    match msg {
        Message::Text(s) if p.has_automatic() => {
            let a = steps::classify(p.pong_frame.as_ref(), &p.replies, s.as_str())?;
            let w = &mut stats.borrow_mut().counters.wire;
            match a {
                Automatic::Pong => {
                    *awaiting_pong = false;
                    w.pongs_received += 1;
                }
                Automatic::Reply(_) => {
                    w.pings_received += 1;
                    w.pongs_sent += 1;
                }
            }
            Some(a)
        }
        _ => None,
    }
}

/// Whether [`automatic`] would answer this text frame (a `--reply` rule or `--pong-frame`).
pub fn answers(t: &Target, text: &[u8]) -> bool {
    let p = &t.protocol;
    p.has_automatic()
        && std::str::from_utf8(text).is_ok_and(|s| steps::classify(p.pong_frame.as_ref(), &p.replies, s).is_some())
}

/// Sends the response [`automatic`] found owed (nothing for a pong).
pub async fn answer(
    ws: &mut Ws,
    t: &Target,
    vars: &Vars,
    a: Automatic,
    scratch: &RefCell<String>,
) -> Result<(), WsError> {
    let Automatic::Reply(i) = a else { return Ok(()) };
    let msg = {
        let mut s = scratch.borrow_mut();
        t.protocol.replies[i].response.render(&Fill::new(*vars, t.tokens.get(vars.user)), &mut s);
        Message::text(s.as_str())
    };
    ws.send(msg).await
}

/// The frame of one chat message: the payload alone, or the `--send` envelope around it
/// (rendered into `scratch`).
pub fn message(p: &Protocol, fill: &Fill, scratch: &mut String) -> Message {
    let text = match &p.send {
        Some(t) => {
            t.render(fill, scratch);
            scratch.as_str()
        }
        None => fill.payload,
    };
    if p.binary {
        Message::Binary(Bytes::copy_from_slice(text.as_bytes()))
    } else {
        Message::text(text)
    }
}

/// Sends one keep-alive: a WebSocket PING, or the `--ping-frame` text frame. A PING (or, with
/// `--pong-frame`, a ping frame) still unanswered from last time counts as a missed pong.
pub async fn keepalive(
    ws: &mut Ws,
    t: &Target,
    vars: &Vars,
    awaiting_pong: &mut bool,
    stats: &RefCell<CoreStats>,
    scratch: &RefCell<String>,
) -> Result<(), WsError> {
    let msg = match &t.protocol.ping_frame {
        Some(frame) => {
            if t.protocol.pong_frame.is_some() && std::mem::replace(awaiting_pong, true) {
                stats.borrow_mut().counters.wire.pongs_missed += 1;
            }
            let mut s = scratch.borrow_mut();
            frame.render(&Fill::new(*vars, t.tokens.get(vars.user)), &mut s);
            Message::text(s.as_str())
        }
        None => {
            if std::mem::replace(awaiting_pong, true) {
                stats.borrow_mut().counters.wire.pongs_missed += 1;
            }
            Message::Ping(Bytes::from_static(PING_PAYLOAD))
        }
    };
    stats.borrow_mut().counters.wire.pings_sent += 1;
    ws.send(msg).await
}

/// What an error read from the server means: its category, and the close code herd fails the
/// connection with (`None`: the connection is already gone, nothing is sent).
pub fn failure(e: &WsError) -> (ErrorKind, Option<u16>) {
    match e {
        WsError::Utf8(_) => (ErrorKind::InvalidUtf8, Some(1007)),
        WsError::Capacity(_) => (ErrorKind::FrameTooLarge, Some(1009)),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => (ErrorKind::Reset, None),
        WsError::Protocol(ProtocolError::NonZeroReservedBits) => (ErrorKind::ReservedBits, Some(1002)),
        // Refused by the permessage-deflate stream (`ws/deflate/stream.rs`).
        WsError::Io(io) if Failure::of(io) == Some(Failure::TooBig) => (ErrorKind::FrameTooLarge, Some(1009)),
        WsError::Io(io) if Failure::of(io) == Some(Failure::Corrupt) => (ErrorKind::DeflateCorrupt, Some(1007)),
        WsError::Protocol(_) | WsError::AttackAttempt => (ErrorKind::Protocol, Some(1002)),
        WsError::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::UnexpectedEof => (ErrorKind::Reset, None),
            _ => (ErrorKind::Io, None),
        },
        WsError::ConnectionClosed | WsError::AlreadyClosed => (ErrorKind::Reset, None),
        _ => (ErrorKind::Protocol, None),
    }
}

/// herd's own close at the end of a run: 1000, normal closure.
pub fn normal_close() -> CloseFrame {
    CloseFrame { code: CloseCode::Normal, reason: "".into() }
}

/// Fails the connection (RFC 6455 section 7.1.7): sends a close frame with `code`, then reads
/// and discards whatever the server still sends until it closes, for at most a second, so that
/// the close frame is not lost to a reset.
pub async fn fail(ws: &mut Ws, code: u16) {
    let reason = match code {
        1007 => "invalid UTF-8 or compressed data",
        1009 => "message too big",
        _ => "protocol error",
    };
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
    let _ = crate::runtime::net::idle::timeout(FAIL_LINGER, async {
        if ws.close(Some(frame)).await.is_ok() {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = ws.get_mut().read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
        Ok(())
    })
    .await;
}

/// One core's keep-alive ticker: the core's scheduler advances it, and it rings each connection
/// once per interval, spread evenly (connection `i` of `total` at `i/total` of the interval), so
/// no connection needs a timer of its own. A connection compares [`PingRing::owed`] with the
/// pings it has sent.
pub struct PingRing {
    start_ns: u64,
    interval_ns: u64,
    total: u64,
    /// Rings so far; connection `i` is rung at cursor values `i`, `i + total`, ...
    cursor: Cell<u64>,
}

impl PingRing {
    pub fn new(interval: Duration, start_ns: u64, total: u64) -> Option<PingRing> {
        let interval_ns = interval.as_nanos().min(u64::MAX as u128) as u64;
        (interval_ns > 0 && total > 0).then(|| PingRing { start_ns, interval_ns, total, cursor: Cell::new(0) })
    }

    /// Moves the ring to `now`, calling `ring(i)` for each connection index whose ping became
    /// due. After a stall it rings every connection at most once.
    pub fn advance(&self, now: u64, mut ring: impl FnMut(u64)) {
        let elapsed = now.saturating_sub(self.start_ns) as u128;
        let target = (elapsed * self.total as u128 / self.interval_ns as u128).min(u64::MAX as u128) as u64;
        let mut c = self.cursor.get();
        if target > c + self.total {
            c = target - self.total;
        }
        while c < target {
            ring(c % self.total);
            c += 1;
        }
        self.cursor.set(c);
    }

    /// Pings connection `i` is owed so far.
    pub fn owed(&self, i: u64) -> u64 {
        let c = self.cursor.get();
        if c > i {
            (c - i - 1) / self.total + 1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_spreads_pings_and_owes_each_connection_one_per_interval() {
        let r = PingRing::new(Duration::from_millis(100), 1_000, 4).unwrap();
        let mut rung = vec![];
        r.advance(1_000 + 50_000_000, |i| rung.push(i));
        assert_eq!(rung, vec![0, 1]);
        assert_eq!((r.owed(0), r.owed(1), r.owed(2)), (1, 1, 0));
        rung.clear();
        r.advance(1_000 + 150_000_000, |i| rung.push(i));
        assert_eq!(rung, vec![2, 3, 0, 1]);
        assert_eq!((r.owed(0), r.owed(1), r.owed(2), r.owed(3)), (2, 2, 1, 1));
        // A long stall rings each connection once, not once per missed interval.
        rung.clear();
        r.advance(1_000 + 10_000_000_000, |i| rung.push(i));
        assert_eq!(rung.len(), 4);
        assert!(PingRing::new(Duration::ZERO, 0, 4).is_none());
        assert!(PingRing::new(Duration::from_secs(1), 0, 0).is_none());
    }

    #[test]
    fn errors_map_to_categories_and_close_codes() {
        assert_eq!(failure(&WsError::Utf8("x".into())), (ErrorKind::InvalidUtf8, Some(1007)));
        let big = WsError::Capacity(tungstenite::error::CapacityError::MessageTooLong { size: 2, max_size: 1 });
        assert_eq!(failure(&big), (ErrorKind::FrameTooLarge, Some(1009)));
        let masked = WsError::Protocol(ProtocolError::MaskedFrameFromServer);
        assert_eq!(failure(&masked), (ErrorKind::Protocol, Some(1002)));
        let dropped = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(failure(&dropped), (ErrorKind::Reset, None));
        let reset = WsError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(failure(&reset), (ErrorKind::Reset, None));
    }

    #[test]
    fn messages_are_bare_or_enveloped_text_or_binary() {
        let vars = Vars { conv: 3, member: 0, user: 12 };
        let fill = Fill { vars, token: "", seq: 9, payload: "~h1.m~", rooms: &[] };
        let mut scratch = String::new();
        let mut p = Protocol::default();
        assert_eq!(message(&p, &fill, &mut scratch), Message::text("~h1.m~"));
        let envelope = r#"{"c":{conv},"s":{seq},"b":"{payload}"}"#;
        p.send = Some(crate::config::template::Text::parse(envelope, crate::config::template::Var::MESSAGE).unwrap());
        assert_eq!(message(&p, &fill, &mut scratch), Message::text(r#"{"c":3,"s":9,"b":"~h1.m~"}"#));
        p.binary = true;
        assert_eq!(
            message(&p, &fill, &mut scratch),
            Message::Binary(Bytes::from_static(br#"{"c":3,"s":9,"b":"~h1.m~"}"#))
        );
    }
}
