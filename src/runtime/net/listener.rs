//! A listening socket on the core's [`Reactor`]: `accept4` until `EAGAIN`, then wait on the epoll
//! set (no io_uring request per accept).

use super::reactor::Reactor;
use super::socket::Socket;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

pub struct Listener {
    fd: OwnedFd,
    token: u32,
    reactor: Rc<Reactor>,
}

impl Listener {
    /// Binds `addr` with `SO_REUSEPORT` (so every core can have its own listener on the port) and
    /// a deep backlog (capped by net.core.somaxconn).
    pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
        let s = reuseport_socket(addr)?;
        s.listen(65535)?;
        Listener::from_std(s.into())
    }

    /// Takes over a bound, listening socket.
    pub fn from_std(l: std::net::TcpListener) -> io::Result<Listener> {
        l.set_nonblocking(true)?;
        let reactor = Reactor::current()?;
        let token = reactor.register(l.as_raw_fd())?;
        // SAFETY: the fd comes from a listener we own.
        let fd = unsafe { OwnedFd::from_raw_fd(l.into_raw_fd()) };
        Ok(Listener { fd, token, reactor })
    }

    /// The next connection, non-blocking and registered with this core's reactor.
    pub async fn accept(&self) -> io::Result<Socket> {
        std::future::poll_fn(|cx| loop {
            // SAFETY: accept4 on a listening socket; no address wanted.
            let fd = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd >= 0 {
                // SAFETY: a fresh connected socket we own.
                let s = unsafe { socket2::Socket::from_raw_fd(fd) };
                return std::task::Poll::Ready(Socket::from_socket(s));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => continue,
                io::ErrorKind::WouldBlock => {
                    self.reactor.wait_read(self.token, cx.waker());
                    return std::task::Poll::Pending;
                }
                _ => return std::task::Poll::Ready(Err(e)),
            }
        })
        .await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.reactor.deregister(self.token);
    }
}

/// A bound TCP socket with `SO_REUSEADDR` and `SO_REUSEPORT`.
pub fn reuseport_socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}
