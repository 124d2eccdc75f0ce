//! One server connection: HTTP routing (`/conv/{id}`, `/metrics`, `/healthz`), the upgrade, and
//! the loop that relays what the client sends and writes what its room sends it.

use super::core::Core;
use super::mailbox::Mailbox;
use super::metrics::{add, inc};
use crate::runtime::net::{Listener, Socket};
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
use tungstenite::{Error as WsError, Message};

/// Longest room name accepted.
const MAX_ROOM: usize = 256;

enum Route {
    Room(String, String),
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
    let Some(room) = path.strip_prefix("/conv/") else {
        return Route::Reply(404, "Not Found", "WebSocket endpoint is /conv/{id}\n".into());
    };
    if room.is_empty() || room.len() > MAX_ROOM || room.contains('/') {
        return Route::Reply(404, "Not Found", "room id must be 1-256 characters without '/'\n".into());
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
    Route::Room(room.to_string(), key)
}

async fn reply<S: AsyncWrite + Unpin>(s: &mut S, status: u16, reason: &str, ctype: &str, body: &[u8]) {
    let _ = s.write_all(&handshake::http_response(status, reason, ctype, body)).await;
    let _ = s.flush().await;
}

type Stream = crate::tls::Stream<Socket>;

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
    let (room, key) = match route(&buf[..end], &core) {
        Route::Room(r, k) => (r, k),
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

    // Join before answering 101, so everything sent after the client sees 101 reaches it.
    let id = core.new_id();
    let mailbox = Rc::new(Mailbox::new(core.shared.cfg.queue));
    let (room, first) = core.rooms.borrow_mut().join(&room, id, mailbox.clone());
    core.mailboxes.borrow_mut().insert(id, mailbox.clone());
    core.live.set(core.live.get() + 1);
    inc(&core.counters().connections_opened);
    if first {
        core.publish_rooms();
        core.announce_join(&room).await;
    }

    if stream.write_all(&handshake::accept_response(&key)).await.is_ok() {
        let max = core.shared.cfg.max_frame;
        let cfg = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let ws = WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(cfg)).await;
        serve_ws(&core, &room, id, &mailbox, ws).await;
    }

    let last = core.rooms.borrow_mut().leave(&room, id);
    if last {
        core.announce_leave(&room);
        core.publish_rooms();
    }
    core.mailboxes.borrow_mut().remove(&id);
    core.live.set(core.live.get() - 1);
    inc(&core.counters().connections_closed);
}

enum Event {
    Frame(Option<Result<Message, WsError>>),
    Write,
    Overflow,
    Shutdown,
}

async fn serve_ws(
    core: &Core,
    room: &std::sync::Arc<str>,
    id: u64,
    mailbox: &Mailbox,
    mut ws: WebSocketStream<Stream>,
) {
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
                let mut n = 0u64;
                // A consumer that stops reading blocks this write; its mailbox overflowing (or
                // the server stopping) must still end the connection, so both are raced.
                let write = async {
                    while mailbox.head_due().is_some_and(|d| d <= now) {
                        let Some(o) = mailbox.pop() else { break };
                        ws.feed(Message::Text(o.text)).await?;
                        n += 1;
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
                core.relay(room, id, t).await;
                glommio::yield_if_needed().await;
            }
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
async fn close(ws: &mut WebSocketStream<Stream>, code: CloseCode, reason: &'static str) {
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
