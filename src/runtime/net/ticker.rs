//! A core's own sleep: a timerfd in the core's epoll set. The core's scheduler sleeps on it
//! rather than on a glommio timer, so that the executor's one wake-up path (the io_uring poll of
//! the epoll set) also serves the scheduler, and every wake also fires any glommio timer that is
//! due. Seen with many executors per CPU: an executor asleep in io_uring whose glommio timer
//! never woke it, while its epoll set still did. A bell (an eventfd) can end a sleep early.

use super::reactor::Reactor;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

/// A sleep shorter than this may be over by its first poll: read the timerfd at once.
const FIRST_READ_BELOW: Duration = Duration::from_micros(50);

pub struct Ticker {
    fd: OwnedFd,
    token: u32,
    reactor: Rc<Reactor>,
    /// An eventfd that ends a sleep early when written (see [`Ticker::with_bell`]): its fd
    /// (owned elsewhere) and its token in the core's control set.
    bell: Option<(RawFd, u32)>,
}

impl Ticker {
    /// A ticker whose sleeps also end when `bell` (an eventfd that outlives the ticker) is
    /// written: a core can sleep long between looks at its control state and still answer a
    /// phase change at once.
    pub fn with_bell(bell: RawFd) -> io::Result<Ticker> {
        let mut t = Ticker::new()?;
        let token = t.reactor.register_control(bell)?;
        t.bell = Some((bell, token));
        Ok(t)
    }

    /// Whether the bell rang since the last look (and takes the ring).
    fn rung(&self) -> bool {
        let Some((fd, token)) = self.bell else { return false };
        if !self.reactor.readable(token) {
            return false;
        }
        if super::sys::take_count(fd) {
            return true;
        }
        self.reactor.drained(token);
        false
    }

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
        Ok(Ticker { fd, token, reactor, bell: None })
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
            self.reactor.defer_until(crate::measure::clock::now_ns() + d.as_nanos() as u64);
        }
        let _awake = Awake(&self.reactor);
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long },
        };
        // SAFETY: a valid timerfd and spec; re-arming replaces any earlier expiry.
        if unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
            // Cannot arm: fall back on glommio's timer rather than not sleeping.
            crate::runtime::net::idle::sleep(d).await;
            return;
        }
        // Just armed: the first look needs no read (an expiry from now on is an edge in the
        // epoll set, which wakes the waker registered here).
        let mut first = true;
        std::future::poll_fn(|cx| {
            if let Some((_, bell)) = self.bell {
                if self.rung() {
                    return Poll::Ready(());
                }
                self.reactor.wait_read(bell, cx.waker());
            }
            if std::mem::take(&mut first) && d > FIRST_READ_BELOW {
                self.reactor.wait_read(self.token, cx.waker());
                return Poll::Pending;
            }
            if super::sys::take_count(self.fd.as_raw_fd()) {
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
        if let Some((fd, token)) = self.bell {
            // The bell stays open: take it out of the set.
            let _ = self.reactor.remove_control(fd);
            self.reactor.deregister(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A sleep ends when its bell is written from another thread, long before its own timer.
    #[test]
    fn a_bell_ends_a_sleep_early() {
        let bell = crate::runtime::net::sys::eventfd().unwrap();
        let fd = bell.as_raw_fd();
        // The eventfd outlives this thread (joined below).
        let ringer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            crate::runtime::net::sys::ring(fd);
        });
        let hb = crate::runtime::watchdog::Heartbeats::new(1);
        let ex = crate::runtime::executor::spawn_pinned("ticker-test", 0, (hb, 0), move || async move {
            let reactor = Reactor::install().unwrap();
            let t = Ticker::with_bell(fd).unwrap();
            let start = Instant::now();
            t.sleep(Duration::from_secs(60)).await;
            let rung = start.elapsed();
            // The ring was taken: the next short sleep runs to its own timer.
            t.sleep(Duration::from_millis(1)).await;
            drop(t);
            reactor.stop();
            rung
        })
        .unwrap();
        let rung = ex.join().unwrap();
        ringer.join().unwrap();
        assert!(rung < Duration::from_secs(30), "the sleep lasted {rung:?}: the bell did not end it");
        drop(bell);
    }
}
