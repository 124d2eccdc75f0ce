//! A core's own sleep: a timerfd in the core's epoll set. The core's scheduler sleeps on it
//! rather than on a glommio timer, so that the executor's one wake-up path (the io_uring poll of
//! the epoll set) also serves the scheduler, and every wake also fires any glommio timer that is
//! due. Seen with many executors per CPU: an executor asleep in io_uring whose glommio timer
//! never woke it, while its epoll set still did.

use super::reactor::Reactor;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

/// A sleep shorter than this may be over by its first poll: read the timerfd at once.
const FIRST_READ_BELOW: Duration = Duration::from_micros(50);

pub struct Ticker {
    fd: OwnedFd,
    token: u32,
    reactor: Rc<Reactor>,
}

impl Ticker {
    pub fn new() -> io::Result<Ticker> {
        // SAFETY: timerfd_create has no preconditions.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let reactor = Reactor::current()?;
        let token = reactor.register_control(fd.as_raw_fd())?;
        Ok(Ticker { fd, token, reactor })
    }

    /// Sleeps for `d` (at least 1 µs).
    pub async fn sleep(&self, d: Duration) {
        self.sleep_with(d, false).await
    }

    /// Sleeps for `d`; sockets that become readable meanwhile may wait for this wake rather than
    /// wake the core (see [`Reactor::defer_until`]). Only for a caller whose reads all take the
    /// kernel's receive time: a read that takes `now` instead (a handshake, a relaying server)
    /// would count the wait.
    pub async fn sleep_deferring_reads(&self, d: Duration) {
        self.sleep_with(d, true).await
    }

    async fn sleep_with(&self, d: Duration, defer: bool) {
        let d = d.max(Duration::from_micros(1));
        if defer {
            self.reactor.defer_until(crate::clock::now_ns() + d.as_nanos() as u64);
        }
        let _awake = Awake(&self.reactor);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long },
        };
        // SAFETY: a valid timerfd and spec; re-arming replaces any earlier expiry.
        if unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
            // Cannot arm: fall back on glommio's timer rather than not sleeping.
            crate::net::idle::sleep(d).await;
            return;
        }
        // Just armed: the first look needs no read (an expiry from now on is an edge in the
        // epoll set, which wakes the waker registered here).
        let mut first = true;
        std::future::poll_fn(|cx| {
            if std::mem::take(&mut first) && d > FIRST_READ_BELOW {
                self.reactor.wait_read(self.token, cx.waker());
                return Poll::Pending;
            }
            let mut n = 0u64;
            // SAFETY: reading the 8-byte expiry count of a non-blocking timerfd.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
            if r == 8 {
                return Poll::Ready(());
            }
            self.reactor.wait_read(self.token, cx.waker());
            Poll::Pending
        })
        .await
    }
}

/// Clears the scheduler's wake time when the sleep ends (or is dropped).
struct Awake<'a>(&'a Reactor);

impl Drop for Awake<'_> {
    fn drop(&mut self) {
        self.0.defer_until(0);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.reactor.deregister(self.token);
    }
}
