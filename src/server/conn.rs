//! One server connection: HTTP routing (`/conv/{id}`, `/user/{id}`, `/metrics`, `/healthz`), the
//! upgrade, and the loop that relays what the client sends (or runs its commands, `commands.rs`)
//! and writes what its rooms send it.

use super::commands::{self, Command};
use super::core::Core;
use super::mailbox::Mailbox;
use super::metrics::{add, inc};
use super::rooms::Slot;
use crate::runtime::net::{Listener, Socket};
use crate::ws::deflate::{self, Codec, Deflated, Params};
use crate::ws::handshake::{self, ReadHeadError};
use async_tungstenite::WebSocketStream;
use futures_lite::{AsyncWrite, AsyncWriteExt};
use futures_util::{SinkExt, StreamExt};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, Utf8Bytes};

/// Longest room (or user) id accepted in a path.
const MAX_ROOM: usize = 256;

/// What an upgraded connection is.
enum Endpoint {
    /// `/conv/{id}`: a member of room `{id}` from the start; its text frames go to that room.
    Conv(String),
    /// `/user/{id}`: in no room at first; its text frames are commands.
    User,
}

enum Route {
    /// The endpoint, the client's key, and permessage-deflate when offered and accepted.
    Upgrade(Endpoint, String, Option<Params>),
    Metrics,
    Health,
    Reply(u16, &'static str, String),
}

fn route(head: &[u8], core: &Core) -> Route {
    let req = match handshake::parse_request(head) {
        Ok(r) => r,
        Err(e) => return Route::Reply(400, "Bad Request", e),
    };
    let path = req.path.split('?').next().unwrap_or("");
    if req.method != "GET" {
        return Route::Reply(405, "Method Not Allowed", "only GET\n".into());
    }
    match path {
        "/metrics" => return Route::Metrics,
        "/healthz" => return Route::Health,
        _ => {}
    }
    let (id, endpoint) = if let Some(room) = path.strip_prefix("/conv/") {
        (room, Endpoint::Conv(room.to_string()))
    } else if let Some(user) = path.strip_prefix("/user/") {
        (user, Endpoint::User)
    } else {
        return Route::Reply(404, "Not Found", "WebSocket endpoints are /conv/{id} and /user/{id}\n".into());
    };
    if id.is_empty() || id.len() > MAX_ROOM || id.contains('/') {
        return Route::Reply(404, "Not Found", "the id must be 1-256 characters without '/'\n".into());
    }
    if let Some(p) = req.ws_problem {
        return Route::Reply(400, "Bad Request", format!("{p}\n"));
    }
    let Some(key) = req.ws_key else {
        return Route::Reply(426, "Upgrade Required", "this endpoint speaks WebSocket\n".into());
    };
    if let Some(max) = core.shared.cfg.max_connections {
        if core.shared.totals().connections >= max {
            inc(&core.counters().connections_refused);
            return Route::Reply(503, "Service Unavailable", "connection limit reached\n".into());
        }
    }
    let deflate = if core.shared.cfg.deflate { deflate::params::accept(&req.extensions) } else { None };
    Route::Upgrade(endpoint, key, deflate)
}

async fn reply<S: AsyncWrite + Unpin>(s: &mut S, status: u16, reason: &str, ctype: &str, body: &[u8]) {
    let _ = s.write_all(&handshake::http_response(status, reason, ctype, body)).await;
    let _ = s.flush().await;
}

type Stream = crate::tls::Stream<Socket>;

/// An upgraded connection: permessage-deflate below tungstenite when accepted.
type Ws = WebSocketStream<Deflated<Stream>>;

/// The TLS hook: the handshake of a wss:// server, bounded by the handshake timeout.
async fn secure(core: &Core, socket: Socket) -> Option<Stream> {
    let Some(cfg) = &core.shared.cfg.tls else { return Some(Stream::Plain(socket)) };
    let timeout = core.shared.cfg.handshake_timeout;
    // Boxed: a handshake in flight should not grow every connection's future.
    let accepted = crate::runtime::net::idle::timeout(timeout, async {
        Ok(Box::pin(crate::tls::server::accept(cfg, socket)).await)
    });
    accepted.await.ok().and_then(|r| r.ok())
}

/// Serves a freshly accepted connection until it closes.
pub async fn handle(core: Rc<Core>, socket: Socket) {
    let _ = socket.set_nodelay(true);
    let Some(mut stream) = secure(&core, socket).await else {
        inc(&core.counters().handshakes_failed);
        return;
    };
    let timeout = core.shared.cfg.handshake_timeout;
    let head = crate::runtime::net::idle::timeout(timeout, async { Ok(handshake::read_head(&mut stream).await) }).await;
    let (buf, end) = match head {
        Ok(Ok(h)) => h,
        Ok(Err(ReadHeadError::TooLarge)) => {
            inc(&core.counters().handshakes_failed);
            reply(&mut stream, 431, "Request Header Fields Too Large", "text/plain", b"").await;
            return;
        }
        // TLS to a plain server, or any other binary protocol: answered at once, not after the
        // handshake timeout.
        Ok(Err(ReadHeadError::NotHttp)) => {
            inc(&core.counters().handshakes_failed);
            reply(&mut stream, 400, "Bad Request", "text/plain", b"not an HTTP request\n").await;
            return;
        }
        // Timed out, closed early, or an I/O error: nothing sensible to answer.
        _ => {
            inc(&core.counters().handshakes_failed);
            return;
        }
    };
    let (endpoint, key, deflate) = match route(&buf[..end], &core) {
        Route::Upgrade(e, k, d) => (e, k, d),
        Route::Metrics => {
            inc(&core.counters().http_requests);
            let body = super::metrics::render(&core.shared.totals());
            reply(&mut stream, 200, "OK", "text/plain; version=0.0.4", body.as_bytes()).await;
            return;
        }
        Route::Health => {
            reply(&mut stream, 200, "OK", "text/plain", b"ok\n").await;
            return;
        }
        Route::Reply(code, reason, body) => {
            inc(&core.counters().handshakes_failed);
            reply(&mut stream, code, reason, "text/plain", body.as_bytes()).await;
            return;
        }
    };
    let leftover = buf[end..].to_vec();
    drop(buf);

    let mailbox = Rc::new(Mailbox::new(core.shared.cfg.queue));
    let slot = core.open(mailbox.clone());
    // Join before answering 101, and answer once the membership is effective on every core, so
    // everything sent after the client sees 101 reaches it.
    let room = match endpoint {
        Endpoint::Conv(name) => {
            let (room, epoch) = core.join(slot, &name);
            core.effective(epoch).await;
            Some(room)
        }
        Endpoint::User => None,
    };

    if stream.write_all(&handshake::accept_response_ext(&key, deflate.as_ref())).await.is_ok() {
        let max = core.shared.cfg.max_frame;
        let (stream, leftover) = match deflate {
            None => (Deflated::new(stream, None), leftover),
            // The codec rewrites the first bytes too, before tungstenite reads them.
            Some(p) => (Deflated::new(stream, Some(Box::new(Codec::server(&p, max, &leftover)))), Vec::new()),
        };
        let cfg = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let ws = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(cfg)).await;
        serve_ws(&core, room, slot, &mailbox, ws).await;
    }
    core.close(slot);
}

/// A `/user/` connection's text frame: a command, answered through its mailbox.
async fn command(core: &Core, slot: Slot, frame: Utf8Bytes) {
    match commands::parse(&frame) {
        Command::Join(name) => {
            let (_, epoch) = core.join(slot, name);
            core.reply(slot, epoch, commands::joined(name));
        }
        Command::Leave(name) => {
            core.leave(slot, name);
            core.reply(slot, 0, commands::left(name));
        }
        Command::To(name, at) => match core.member_of(slot, name) {
            Some(room) => core.relay(room, slot, commands::payload(&frame, at)).await,
            None => {
                inc(&core.counters().not_member);
                core.reply(slot, 0, commands::not_member(name));
            }
        },
        Command::Unknown => unknown_command(core, slot),
    }
}

fn unknown_command(core: &Core, slot: Slot) {
    inc(&core.counters().unknown_command);
    core.reply(slot, 0, commands::UNKNOWN.into());
}

enum Event {
    Frame(Option<Result<Message, WsError>>),
    Write,
    Overflow,
    Shutdown,
}

/// `room`: the room of a `/conv/` connection (`None` for `/user/`).
async fn serve_ws(core: &Core, room: Option<u32>, slot: Slot, mailbox: &Mailbox, mut ws: Ws) {
    let mut delay_timer: Option<crate::runtime::net::idle::Delay> = None;
    loop {
        let ev = poll_fn(|cx| {
            if mailbox.close_requested() {
                return Poll::Ready(Event::Shutdown);
            }
            if mailbox.overflowed() {
                return Poll::Ready(Event::Overflow);
            }
            if let Some(due) = mailbox.head_due() {
                if due == 0 {
                    return Poll::Ready(Event::Write);
                }
                let now = crate::measure::clock::now_ns();
                if due <= now {
                    delay_timer = None;
                    return Poll::Ready(Event::Write);
                }
                let t = delay_timer.get_or_insert_with(|| {
                    crate::runtime::net::idle::Delay::new(std::time::Duration::from_nanos(due - now))
                });
                if Pin::new(t).poll(cx).is_ready() {
                    delay_timer = None;
                    return Poll::Ready(Event::Write);
                }
            }
            if let Poll::Ready(f) = ws.poll_next_unpin(cx) {
                return Poll::Ready(Event::Frame(f));
            }
            mailbox.register(cx.waker());
            Poll::Pending
        })
        .await;
        match ev {
            Event::Write => {
                let now = crate::measure::clock::now_ns();
                // Relayed messages written (the server's answers to commands are not messages).
                let mut n = 0u64;
                // A consumer that stops reading blocks this write; its mailbox overflowing (or
                // the server stopping) must still end the connection, so both are raced.
                let write = async {
                    while mailbox.head_due().is_some_and(|d| d <= now) {
                        let Some(o) = mailbox.pop() else { break };
                        ws.feed(Message::Text(o.text)).await?;
                        n += u64::from(!o.reply);
                    }
                    ws.flush().await
                };
                let interrupted = poll_fn(|cx| {
                    if mailbox.overflowed() || mailbox.close_requested() {
                        return Poll::Ready(None);
                    }
                    mailbox.register(cx.waker());
                    Poll::Pending
                });
                let done = futures_lite::future::or(async { Some(write.await) }, interrupted).await;
                add(&core.counters().messages_delivered, n);
                match done {
                    Some(Ok(())) => {}
                    Some(Err(_)) => return,
                    // Back to the top, where overflow or shutdown closes the connection.
                    None => continue,
                }
            }
            Event::Frame(Some(Ok(Message::Text(t)))) => {
                match room {
                    Some(room) => core.relay(room, slot, t).await,
                    None => command(core, slot, t).await,
                }
                glommio::yield_if_needed().await;
            }
            // Commands only in text; a binary frame on `/user/` is answered, not closed on.
            Event::Frame(Some(Ok(Message::Binary(_)))) if room.is_none() => unknown_command(core, slot),
            Event::Frame(Some(Ok(Message::Binary(_)))) => {
                close(&mut ws, CloseCode::Unsupported, "text frames only").await;
                return;
            }
            Event::Frame(Some(Ok(_))) => {} // ping, pong, close: tungstenite answers them
            Event::Frame(None) => return,
            Event::Frame(Some(Err(e))) => {
                match e {
                    WsError::Capacity(_) => {
                        inc(&core.counters().frames_too_large);
                        close(&mut ws, CloseCode::Size, "frame too large").await;
                    }
                    WsError::Utf8(_) => {
                        inc(&core.counters().invalid_utf8);
                        close(&mut ws, CloseCode::Invalid, "invalid UTF-8").await;
                    }
                    // Refused by the permessage-deflate stream: a bomb, or corrupt data.
                    WsError::Io(e) => match deflate::codec::Failure::of(&e) {
                        Some(deflate::codec::Failure::TooBig) => {
                            inc(&core.counters().frames_too_large);
                            close(&mut ws, CloseCode::Size, "frame too large").await;
                        }
                        Some(deflate::codec::Failure::Corrupt) => {
                            close(&mut ws, CloseCode::Invalid, "corrupt compressed data").await;
                        }
                        None => {}
                    },
                    _ => {}
                }
                return;
            }
            Event::Overflow => {
                inc(&core.counters().slow_consumers_closed);
                close(&mut ws, CloseCode::Policy, "slow consumer").await;
                return;
            }
            Event::Shutdown => {
                close(&mut ws, CloseCode::Away, "server shutting down").await;
                return;
            }
        }
    }
}

/// Sends a close frame and waits briefly for the client's answer.
async fn close(ws: &mut Ws, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = crate::runtime::net::idle::timeout(std::time::Duration::from_secs(1), async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
        Ok(())
    })
    .await;
}

/// `--metrics-listen`: a plain HTTP listener that serves only `/metrics`.
pub async fn serve_metrics_only(core: Rc<Core>, listener: Listener) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            core.stopping.wait().await;
            None
        })
        .await;
        let mut s = match accepted {
            None => return,
            Some(Ok(s)) => s,
            Some(Err(_)) => {
                crate::runtime::net::idle::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        let core = core.clone();
        crate::runtime::net::idle::spawn(async move {
            if let Ok(Ok((buf, end))) = crate::runtime::net::idle::timeout(core.shared.cfg.handshake_timeout, async {
                Ok(handshake::read_head(&mut s).await)
            })
            .await
            {
                let is_metrics =
                    handshake::parse_request(&buf[..end]).is_ok_and(|r| r.path.split('?').next() == Some("/metrics"));
                if is_metrics {
                    let body = super::metrics::render(&core.shared.totals());
                    reply(&mut s, 200, "OK", "text/plain; version=0.0.4", body.as_bytes()).await;
                } else {
                    reply(&mut s, 404, "Not Found", "text/plain", b"only /metrics here\n").await;
                }
            }
        })
        .detach();
    }
}
