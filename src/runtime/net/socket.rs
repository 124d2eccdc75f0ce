//! A non-blocking TCP socket driven by its core's [`Reactor`]: plain `recv`/`send` syscalls, and a
//! wait on the core's epoll set only when one answers `EAGAIN`. Implements futures' `AsyncRead`
//! and `AsyncWrite`, so tungstenite (and a TLS layer) run over it unchanged.
//!
//! Receive times: with [`Socket::timestamps`] on, every read takes the kernel's receive time of
//! the data (`SO_TIMESTAMPNS`), so a receiver that reads late (a busy core, a wake that served
//! many sockets) still measures when the bytes arrived, not when it got round to them.

use super::reactor::Reactor;
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

pub struct Socket {
    fd: OwnedFd,
    token: u32,
    reactor: Rc<Reactor>,
    /// Kernel receive time of the last bytes read (clock ns), 0 when unknown.
    rx_ns: Cell<u64>,
    timestamps: bool,
}

impl Socket {
    /// Takes over a non-blocking socket and registers it with this core's reactor.
    pub fn from_socket(s: socket2::Socket) -> io::Result<Socket> {
        let reactor = Reactor::current()?;
        let token = reactor.register(s.as_raw_fd())?;
        // SAFETY: the fd comes from a socket we own; OwnedFd takes over closing it.
        let fd = unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) };
        Ok(Socket { fd, token, reactor, rx_ns: Cell::new(0), timestamps: false })
    }

    /// Asks the kernel for receive timestamps on every read (see [`Socket::rx_ns`]).
    pub fn timestamps(&mut self) -> io::Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket and an int option.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        self.timestamps = true;
        Ok(())
    }

    /// When the bytes of the last read arrived (the kernel's time, on herd's clock); 0 if the
    /// kernel gave none.
    pub fn rx_ns(&self) -> u64 {
        self.rx_ns.get()
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        socket2::SockRef::from(&self.fd).set_tcp_nodelay(on)
    }

    /// A non-blocking receive; `None` on `EAGAIN`, or without a syscall when the last read
    /// drained the socket and no edge came since. A TCP read shorter than asked for means the
    /// receive queue was empty, and data arriving after it raises a new edge.
    fn try_read(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        if !self.reactor.readable(self.token) {
            return None;
        }
        let r = self.read_syscall(buf);
        match &r {
            None => self.reactor.drained(self.token),
            Some(Ok(n)) if *n > 0 && *n < buf.len() => self.reactor.drained(self.token),
            _ => {}
        }
        r
    }

    fn read_syscall(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        loop {
            let r = if self.timestamps {
                recv_timestamped(self.fd.as_raw_fd(), buf).map(|(n, ts)| {
                    if n > 0 {
                        let rx = match ts {
                            Some(ts) => {
                                let (rx, now) = crate::measure::clock::from_realtime_ns_at(ts);
                                // How long the bytes waited for this read: herd's read lag.
                                crate::measure::stats::record_read_lag(now - rx);
                                rx
                            }
                            None => 0,
                        };
                        self.rx_ns.set(rx);
                    }
                    n
                })
            } else {
                super::sys::recv(self.fd.as_raw_fd(), buf, libc::MSG_DONTWAIT)
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                r => return Some(r),
            }
        }
    }

    fn try_write(&self, buf: &[u8]) -> Option<io::Result<usize>> {
        loop {
            let e = match super::sys::send(self.fd.as_raw_fd(), buf, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) {
                Ok(n) => return Some(Ok(n)),
                Err(e) => e,
            };
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return None,
                _ => return Some(Err(e)),
            }
        }
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Closing the fd (OwnedFd, right after) takes it out of the epoll set.
        self.reactor.deregister(self.token);
    }
}

impl futures_lite::AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.try_read(buf) {
            Some(r) => Poll::Ready(r),
            None => {
                self.reactor.wait_read(self.token, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl futures_lite::AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.try_write(buf) {
            Some(r) => Poll::Ready(r),
            None => {
                self.reactor.wait_write(self.token, cx.waker());
                Poll::Pending
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&self.fd).shutdown(std::net::Shutdown::Write))
    }
}

/// `recvmsg` that also returns the kernel's receive time (CLOCK_REALTIME ns) when it gave one.
fn recv_timestamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    // Room for one cmsghdr carrying a struct timespec, aligned.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: zeroed msghdr is a valid empty header; the fields set point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = super::sys::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT)?;
    let mut ts = None;
    // SAFETY: walking the control buffer the kernel filled, with the libc CMSG helpers.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if t.tv_sec > 0 {
                    ts = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, ts))
}
