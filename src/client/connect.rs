//! Opening one client connection: a non-blocking TCP connect through socket2 (so a source address
//! can be bound), the TLS handshake for wss:// (`crate::tls`), herd's own WebSocket upgrade, then
//! a tungstenite stream over the socket and the protocol's join sequence. Each phase's time goes to
//! the core's statistics (`stats::record_phase`). [`member`] is one member's attempt, bounded by
//! `--connect-timeout` and counted; the first connection and every reconnect go through it.

use super::plan::CorePlan;
use super::session;
use super::state::{Conv, CoreCtx};
use super::target::{Target, Ws};
use crate::config::template::Vars;
use crate::measure::clock::now_ns;
use crate::measure::stats::{self, ConnectPhase, CoreStats, ErrorKind};
use crate::runtime::net::Socket;
use crate::tls;
use crate::ws::deflate::Codec;
use crate::ws::frames::CloseWatch;
use crate::ws::handshake::{self, ReadHeadError};
use async_tungstenite::WebSocketStream;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use socket2::{Domain, Protocol, Type};
use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use tungstenite::protocol::Role;

pub use crate::measure::stats::connect_error_kind;

/// Starts a non-blocking connect, bound to `source` if given (with IP_BIND_ADDRESS_NO_PORT so the
/// kernel picks the port per destination, not per source address).
fn start_connect(t: &Target, source: Option<IpAddr>) -> io::Result<Socket> {
    let addr = t.addr;
    let s = socket2::Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
    s.set_tcp_nodelay(true)?;
    // Set before connect, so the window the kernel advertises follows them.
    if let Some(n) = t.sndbuf {
        s.set_send_buffer_size(n)?;
    }
    if let Some(n) = t.rcvbuf {
        s.set_recv_buffer_size(n)?;
    }
    if let Some(ip) = source {
        s.set_reuse_address(true)?;
        set_bind_address_no_port(&s)?;
        s.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let mut s = Socket::from_socket(s)?;
    // Receipt times come from the kernel, so a core that reads late does not add to latency.
    s.timestamps()?;
    Ok(s)
}

/// IP_BIND_ADDRESS_NO_PORT: defer the port choice to connect(), where the kernel can reuse a
/// port for different destinations.
fn set_bind_address_no_port(s: &socket2::Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a c_int of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Connects, upgrades and joins; the caller bounds the time it may take. For a connection in
/// `rooms` (a population's user), `{rooms}` in the URL lists them, and the join steps that name
/// `{room}` run once per room (`session::joined_rooms`); `None`: a grid connection, in its one
/// conversation.
///
/// The connect-and-upgrade state and the join's are each boxed and freed once done, so a
/// connection waiting for its joins' acknowledgements (thousands at once, when a server is slow
/// to acknowledge) holds only the join's state, and the stream is on the heap as soon as it
/// exists, so no state holds a copy of it.
pub async fn open_in(
    t: &Target,
    vars: &Vars,
    rooms: Option<&[u32]>,
    key_seed: u64,
    source: Option<IpAddr>,
    path_buf: &mut String,
) -> Result<Box<Ws>, ErrorKind> {
    let mut ws = Box::pin(upgraded(t, vars, rooms.unwrap_or(&[]), key_seed, source, path_buf)).await?;
    if t.protocol.join.is_empty() {
        return Ok(ws);
    }
    let t0 = now_ns();
    match rooms {
        None => Box::pin(session::joined(&mut ws, t, vars)).await?,
        Some(rooms) => Box::pin(session::joined_rooms(&mut ws, t, vars, rooms)).await?,
    }
    stats::record_phase(ConnectPhase::Join, now_ns() - t0);
    Ok(ws)
}

/// A connected, upgraded stream (TLS for wss://), each phase timed.
async fn upgraded(
    t: &Target,
    vars: &Vars,
    rooms: &[u32],
    key_seed: u64,
    source: Option<IpAddr>,
    path_buf: &mut String,
) -> Result<Box<Ws>, ErrorKind> {
    let t0 = now_ns();
    let mut socket = start_connect(t, source).map_err(|e| connect_error_kind(&e))?;
    // An empty write completes once the TCP connection is established (or fails with its error).
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut socket).poll_write(cx, &[]))
        .await
        .map_err(|e| connect_error_kind(&e))?;
    stats::record_phase(ConnectPhase::Tcp, now_ns() - t0);
    let stream = secure(t, socket).await?;
    Ok(Box::new(upgrade(t, vars, rooms, key_seed, path_buf, stream).await?))
}

/// One attempt of a member's connection, bounded by `--connect-timeout`: established or failed
/// (with its error category), counted in the core's statistics either way.
pub(super) async fn member(ctx: &CoreCtx, conv: &Conv, member: u32) -> Option<Box<Ws>> {
    let vars = ctx.vars(conv, member);
    attempt(&ctx.plan, &ctx.target, &ctx.stats, &vars, None, vars.user).await
}

/// One connection attempt (a grid member's, or a population device's in `rooms`), bounded by
/// `--connect-timeout`: established or failed (with its error category), counted in `stats`
/// either way. `id` picks the source address and seeds the handshake key.
pub async fn attempt(
    p: &CorePlan,
    target: &Target,
    stats: &RefCell<CoreStats>,
    vars: &Vars,
    rooms: Option<&[u32]>,
    id: u64,
) -> Option<Box<Ws>> {
    let t0 = now_ns();
    let mut path = String::new();
    let seed = p.scenario.seed ^ id.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let r = crate::runtime::net::idle::timeout(p.scenario.connect_timeout, async {
        let source = (!p.sources.is_empty()).then(|| p.sources[(id % p.sources.len() as u64) as usize]);
        Ok(open_in(target, vars, rooms, seed, source, &mut path).await)
    })
    .await;
    let mut st = stats.borrow_mut();
    match r {
        Ok(Ok(ws)) => {
            st.counters.conns_established += 1;
            st.record_connect(now_ns() - t0);
            Some(ws)
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

/// The TLS hook: wraps a connected socket of any kind, with a TLS handshake for wss://.
async fn secure<S: AsyncRead + AsyncWrite + Unpin>(t: &Target, socket: S) -> Result<tls::Stream<S>, ErrorKind> {
    let Some(client) = &t.tls else { return Ok(tls::Stream::Plain(socket)) };
    let t0 = now_ns();
    // Boxed: a handshake in flight should not grow every connection's future.
    let (s, resumed) = Box::pin(client.handshake(socket)).await?;
    stats::record_phase(ConnectPhase::Tls, now_ns() - t0);
    stats::record_tls_handshake(resumed);
    Ok(tls::Stream::Client(Box::new(s)))
}

/// herd's WebSocket upgrade on a connected stream.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    t: &Target,
    vars: &Vars,
    rooms: &[u32],
    key_seed: u64,
    path_buf: &mut String,
    mut stream: S,
) -> Result<WebSocketStream<CloseWatch<S>>, ErrorKind> {
    let t0 = now_ns();
    let key = handshake::client_key(key_seed);
    let req = session::upgrade_request(t, vars, rooms, &key, path_buf);
    stream.write_all(&req).await.map_err(|e| upgrade_error_kind(t, &e))?;
    stream.flush().await.map_err(|e| upgrade_error_kind(t, &e))?;
    drop(req);
    let (buf, end) = handshake::read_head(&mut stream).await.map_err(|e| match e {
        ReadHeadError::Io(e) => upgrade_error_kind(t, &e),
        ReadHeadError::Eof => ErrorKind::HandshakeRejected,
        ReadHeadError::TooLarge | ReadHeadError::NotHttp => ErrorKind::HandshakeInvalid,
    })?;
    let deflate = session::check_answer(t, &buf[..end], &buf[end..], &key)?;
    if t.deflate.offer().is_some() {
        crate::ws::deflate::tally::answered(deflate.map(|p| p.header()).as_deref());
    }
    let leftover = buf[end..].to_vec();
    drop(buf);
    let (stream, leftover) = match deflate {
        None => (CloseWatch::new(stream, &leftover), leftover),
        // The codec rewrites the first bytes too, before tungstenite reads them.
        Some(p) => {
            let max = t.ws_config.max_message_size.unwrap_or(usize::MAX);
            (CloseWatch::with_deflate(stream, Box::new(Codec::client(&p, max, &leftover))), Vec::new())
        }
    };
    let ws = WebSocketStream::from_partially_read(stream, leftover, Role::Client, Some(t.ws_config)).await;
    stats::record_phase(ConnectPhase::Upgrade, now_ns() - t0);
    Ok(ws)
}

/// Over TLS a refusal can still arrive after the handshake (TLS 1.3 servers check a client
/// certificate after the client has finished): rustls errors keep their TLS category.
fn upgrade_error_kind(t: &Target, e: &io::Error) -> ErrorKind {
    match t.tls {
        Some(_) if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => tls::verify::classify_io(e),
        _ => connect_error_kind(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_map_to_categories() {
        let k = |kind| connect_error_kind(&io::Error::from(kind));
        assert_eq!(k(io::ErrorKind::ConnectionRefused), ErrorKind::ConnectRefused);
        assert_eq!(k(io::ErrorKind::AddrNotAvailable), ErrorKind::AddrNotAvailable);
        assert_eq!(k(io::ErrorKind::ConnectionReset), ErrorKind::Reset);
        assert_eq!(k(io::ErrorKind::PermissionDenied), ErrorKind::ConnectOther);
    }
}
