//! One readiness source per executor: every socket of a core sits in the core's epoll set
//! (edge-triggered, registered once for its whole life). When the core has nothing else to do,
//! the driver waits on that set in the kernel (`idle.rs` says when it may); otherwise the
//! executor watches it through a single io_uring poll.
//!
//! Why not one io_uring poll per socket (glommio's own streams): every pending poll sits in the
//! ring's cancel hash table (at most 256 buckets), and glommio cancels a timeout on that ring on
//! every loop of the executor, so each wake walked a bucket of every idle socket — the cost of a
//! wake grew with the connections a core held. Here the ring holds one poll per core, and one
//! wake drains every socket that became ready since the last one.
//!
//! Readiness is only a hint: sockets always try the syscall first and wait only on `EAGAIN`.
//! With edge triggering a new edge follows any `EAGAIN`, so a task that registered its waker after
//! an `EAGAIN` is always woken (the executor is single-threaded: nothing runs in between).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::task::Waker;

/// Events taken from an epoll set per `epoll_wait`.
const BATCH: usize = 1024;
/// The control set's token for the socket set inside it.
const DATA_TOKEN: u64 = u64::MAX;
/// Longest a readable socket waits for the scheduler's next wake rather than waking the core.
/// Long enough to cover the gaps between a busy sender's wakes (a core sending 750 messages/s
/// wakes every 1-3 ms with the 1 ms send window), so that replies to its sends do not wake it
/// in between; short next to the 50-150 ms of its control looks.
pub const DEFER: std::time::Duration = std::time::Duration::from_millis(10);
/// Longest the driver waits in the kernel at a time: a safety net, since every wake-up a core
/// needs reaches its epoll set or is a noted timer (and both kinds of core look at their control
/// state on their own timerfd at least every 50 ms).
const BLOCK_CAP: u64 = 250_000_000;
/// A glommio timer due this soon is left to glommio's sleep, which fires it.
const TIMER_MARGIN: std::time::Duration = std::time::Duration::from_micros(500);
/// Turns the driver yields to runnable tasks before it waits through glommio instead.
const RUNNABLE_YIELDS: u32 = 3;

struct Entry {
    read: Option<Waker>,
    write: Option<Waker>,
    /// Data may be waiting: set by every readable edge, cleared by a read that drained the
    /// socket. While clear, a read waits without a syscall (no `EAGAIN` read per message).
    readable: bool,
    /// The peer hung up (or the socket failed): reads no longer wait for edges, since no edge
    /// follows an end of stream that was already seen.
    hup: bool,
}

impl Default for Entry {
    fn default() -> Entry {
        Entry { read: None, write: None, readable: true, hup: false }
    }
}

/// Which wakers an epoll event wakes. Pure, so the mapping is tested without sockets.
pub fn wakes(events: u32) -> (bool, bool) {
    let err = events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
    let read = err || events & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0;
    let write = err || events & libc::EPOLLOUT as u32 != 0;
    (read, write)
}

/// A core's epoll set and the wakers of the tasks waiting on its sockets.
pub struct Reactor {
    /// Sockets.
    epfd: OwnedFd,
    /// The core's own wake-ups: its scheduler's timerfd, its inbox. Watched always; the socket
    /// set is not watched while the scheduler is about to wake anyway (see `defer_until`).
    ctl_epfd: OwnedFd,
    /// When the core's scheduler will wake next (clock ns; 0: not asleep).
    next_wake: Cell<u64>,
    /// The socket set's one-shot entry in the control set is armed.
    data_armed: Cell<bool>,
    entries: RefCell<Vec<Entry>>,
    free: RefCell<Vec<u32>>,
    events: RefCell<Vec<libc::epoll_event>>,
    /// Wakers taken from the entries, woken after the borrow ends (kept to reuse its memory).
    to_wake: RefCell<Vec<Waker>>,
    stopped: Cell<bool>,
    /// `epoll_pwait2` failed (a kernel before 5.11, or a seccomp profile without it): block with
    /// `ppoll`.
    no_pwait2: Cell<bool>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

impl Reactor {
    /// Creates this executor's reactor and starts the task that drives it. Sockets created on
    /// this thread afterwards register with it.
    pub fn install() -> io::Result<Rc<Reactor>> {
        let epoll = || {
            // SAFETY: epoll_create1 has no preconditions.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a fresh fd we own.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let r = Rc::new(Reactor {
            epfd: epoll()?,
            ctl_epfd: epoll()?,
            next_wake: Cell::new(0),
            data_armed: Cell::new(true),
            entries: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            events: RefCell::new(vec![libc::epoll_event { events: 0, u64: 0 }; BATCH]),
            to_wake: RefCell::new(Vec::new()),
            stopped: Cell::new(false),
            no_pwait2: Cell::new(false),
        });
        // The socket set inside the control set, one-shot (see `drive`).
        let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32, u64: DATA_TOKEN };
        // SAFETY: valid epoll fds and event.
        if unsafe { libc::epoll_ctl(r.ctl_epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, r.epfd.as_raw_fd(), &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        CURRENT.with(|c| *c.borrow_mut() = Some(r.clone()));
        let driver = r.clone();
        crate::runtime::net::idle::spawn(async move { driver.drive().await }).detach();
        Ok(r)
    }

    /// This executor's reactor.
    pub fn current() -> io::Result<Rc<Reactor>> {
        CURRENT.with(|c| c.borrow().clone()).ok_or_else(|| io::Error::other("no reactor on this executor"))
    }

    /// Stops the driver (the executor is finishing) and forgets this thread's reactor.
    pub fn stop(&self) {
        self.stopped.set(true);
        CURRENT.with(|c| c.borrow_mut().take());
    }

    /// Adds `fd` to the socket set for its life (it leaves the set when it is closed).
    pub fn register(&self, fd: RawFd) -> io::Result<u32> {
        self.add(self.epfd.as_raw_fd(), fd)
    }

    /// Adds one of the core's own wake-up fds (timerfd, eventfd): always watched.
    pub fn register_control(&self, fd: RawFd) -> io::Result<u32> {
        self.add(self.ctl_epfd.as_raw_fd(), fd)
    }

    /// The core's scheduler sleeps until `at` (clock ns; 0: it is awake). While that is less than
    /// [`DEFER`] away, sockets that become readable are read when it wakes rather than waking
    /// the core on their own: one wake instead of two, and their receive times are the kernel's
    /// either way.
    pub fn defer_until(&self, at: u64) {
        self.next_wake.set(at);
    }

    fn add(&self, epfd: RawFd, fd: RawFd) -> io::Result<u32> {
        let token = match self.free.borrow_mut().pop() {
            Some(t) => t,
            None => {
                let mut e = self.entries.borrow_mut();
                e.push(Entry::default());
                (e.len() - 1) as u32
            }
        };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token as u64,
        };
        // SAFETY: valid epoll fd and event struct.
        if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            let e = io::Error::last_os_error();
            self.free.borrow_mut().push(token);
            return Err(e);
        }
        Ok(token)
    }

    /// Takes a control fd that stays open out of its set (a closed fd leaves it by itself).
    pub fn remove_control(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: valid epoll fd; the event is ignored for DEL.
        if unsafe { libc::epoll_ctl(self.ctl_epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Forgets a token whose fd is being closed.
    pub fn deregister(&self, token: u32) {
        if let Some(e) = self.entries.borrow_mut().get_mut(token as usize) {
            *e = Entry::default();
        }
        self.free.borrow_mut().push(token);
    }

    pub fn wait_read(&self, token: u32, w: &Waker) {
        if let Some(e) = self.entries.borrow_mut().get_mut(token as usize) {
            super::waker::store(&mut e.read, w);
        }
    }

    /// Whether data may be waiting on `token` (see `Entry::readable`).
    pub fn readable(&self, token: u32) -> bool {
        self.entries.borrow().get(token as usize).is_none_or(|e| e.readable)
    }

    /// A read found the socket drained: the next read waits for an edge first.
    pub fn drained(&self, token: u32) {
        if let Some(e) = self.entries.borrow_mut().get_mut(token as usize) {
            e.readable = e.hup;
        }
    }

    pub fn wait_write(&self, token: u32, w: &Waker) {
        if let Some(e) = self.entries.borrow_mut().get_mut(token as usize) {
            super::waker::store(&mut e.write, w);
        }
    }

    /// Takes what is ready in both sets and wakes its tasks; returns how many events there were.
    fn poll_once(&self) -> usize {
        let ctl = self.poll_set(self.ctl_epfd.as_raw_fd(), None).unwrap_or(0);
        ctl + self.poll_data()
    }

    /// Takes what is ready in the socket set, unless its entry in the control set is armed: then
    /// a ready socket shows in the control set (and disarms the entry), so there is no need to look.
    fn poll_data(&self) -> usize {
        if self.data_armed.get() {
            return 0;
        }
        self.poll_set(self.epfd.as_raw_fd(), None).unwrap_or(0)
    }

    /// Arms (or disarms) the socket set's one-shot entry in the control set.
    fn arm_data(&self, on: bool) -> io::Result<()> {
        let events = if on { (libc::EPOLLIN | libc::EPOLLONESHOT) as u32 } else { libc::EPOLLONESHOT as u32 };
        let mut ev = libc::epoll_event { events, u64: DATA_TOKEN };
        // SAFETY: valid epoll fds and event.
        if unsafe { libc::epoll_ctl(self.ctl_epfd.as_raw_fd(), libc::EPOLL_CTL_MOD, self.epfd.as_raw_fd(), &mut ev) }
            < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes the ready events of one set (waiting up to `wait_ns` for them) and wakes their tasks.
    fn poll_set(&self, epfd: RawFd, wait_ns: Option<u64>) -> io::Result<usize> {
        let mut events = self.events.borrow_mut();
        let n = match wait_ns {
            None => super::sys::epoll_poll(epfd, &mut events)?,
            Some(ns) => super::sys::epoll_wait_ns(epfd, &mut events, ns)?,
        };
        if n == 0 {
            return Ok(0);
        }
        let mut to_wake = std::mem::take(&mut *self.to_wake.borrow_mut());
        {
            let mut entries = self.entries.borrow_mut();
            for ev in &events[..n] {
                if ev.u64 == DATA_TOKEN {
                    // The socket set fired (and is now disarmed); it is drained right after.
                    self.data_armed.set(false);
                    continue;
                }
                let (r, w) = wakes(ev.events);
                let Some(e) = entries.get_mut(ev.u64 as usize) else { continue };
                if ev.events & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    e.hup = true;
                }
                if r {
                    e.readable = true;
                    to_wake.extend(e.read.take());
                }
                if w {
                    to_wake.extend(e.write.take());
                }
            }
        }
        // Woken outside the borrow: a waker may run code that registers again.
        for w in to_wake.drain(..) {
            w.wake();
        }
        *self.to_wake.borrow_mut() = to_wake;
        Ok(n)
    }

    /// The driver: drain the epoll set and let the woken tasks run. When nothing is ready and
    /// no task is runnable, wait on the epoll set in the kernel (see `idle.rs`); when a glommio
    /// timer is near, or tasks stay runnable, wait for the epoll fd through the executor's
    /// io_uring instead (one poll for the whole core), so that glommio's sleep fires the timer.
    async fn drive(self: Rc<Self>) {
        // glommio polls a task it spawns at once, inside its spawner's poll: return to the
        // spawner before ever blocking.
        futures_lite::future::yield_now().await;
        let mut yields = 0;
        // Whether the sets were drained just before the woken tasks ran: then a wait that
        // finds them ready returns at once, with no need to look first.
        let mut drained = false;
        while !self.stopped.get() {
            let n = if std::mem::take(&mut drained) { 0 } else { self.poll_once() };
            if n > 0 {
                // Let the woken tasks run before looking again; more may be ready by then.
                yields = 0;
                drained = true;
                glommio::executor().yield_task_queue_now().await;
                continue;
            }
            let now = crate::measure::clock::now_ns();
            let next = self.next_wake.get();
            let defer = next != 0 && next.saturating_sub(now) <= DEFER.as_nanos() as u64;
            // The socket set sits inside the control set, one-shot: armed only when not deferring,
            // so the core always waits on one fd.
            if defer == self.data_armed.get() && self.arm_data(!defer).is_ok() {
                self.data_armed.set(!defer);
            }
            let runnable = super::idle::runnable();
            if runnable > 0 && yields < RUNNABLE_YIELDS {
                // Tasks woken by each other run first; look again after them.
                yields += 1;
                glommio::executor().yield_task_queue_now().await;
                continue;
            }
            yields = 0;
            let margin = TIMER_MARGIN.as_nanos() as u64;
            if let Some(ns) = super::idle::block_for(runnable, super::idle::next_deadline(), now, margin, BLOCK_CAP) {
                if self.block(ns) > 0 {
                    yields = 0;
                    drained = true;
                    glommio::executor().yield_task_queue_now().await;
                }
                continue;
            }
            if wait_readable(self.ctl_epfd.as_raw_fd()).await.is_err() {
                // Cannot watch the fd (out of fds): look again shortly rather than stop.
                super::idle::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }

    /// Waits up to `ns` for the control set (which holds the socket set) and takes what became
    /// ready, in one `epoll_pwait2`; returns how many events there were. Returns early on a
    /// signal (the watchdog's wake-up).
    fn block(&self, ns: u64) -> usize {
        if !self.no_pwait2.get() {
            match self.poll_set(self.ctl_epfd.as_raw_fd(), Some(ns)) {
                Ok(n) => return n + self.poll_data(),
                // The watchdog's wake-up.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return 0,
                // ENOSYS before Linux 5.11, EPERM under a seccomp profile that predates it:
                // from now on wait with ppoll (a failing wait must not turn into a busy loop).
                Err(_) => self.no_pwait2.set(true),
            }
        }
        // Without epoll_pwait2: wait with ppoll, and look on the next turn.
        let ts = super::sys::timespec(ns);
        let mut pfd = libc::pollfd { fd: self.ctl_epfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd and timespec; no signal mask change.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        0
    }
}

/// Waits until `fd` is readable, through the executor's io_uring. glommio offers no public
/// "poll this fd" call, but wrapping a duplicate of the fd in its stream type arms exactly one
/// POLL_ADD; the read that follows readiness fails (the fd is not a socket) and the duplicate is
/// closed, so nothing stays armed.
async fn wait_readable(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh fd we own; the stream closes it when dropped.
    let mut s = unsafe { glommio::net::TcpStream::from_raw_fd(dup) };
    let mut b = [0u8; 1];
    let _ = futures_lite::AsyncReadExt::read(&mut s, &mut b).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_wake_the_right_side() {
        let f = |e: i32| wakes(e as u32);
        assert_eq!(f(libc::EPOLLIN), (true, false));
        assert_eq!(f(libc::EPOLLOUT), (false, true));
        assert_eq!(f(libc::EPOLLIN | libc::EPOLLOUT), (true, true));
        assert_eq!(f(libc::EPOLLRDHUP), (true, false));
        assert_eq!(f(libc::EPOLLERR), (true, true));
        assert_eq!(f(libc::EPOLLHUP), (true, true));
        assert_eq!(f(0), (false, false));
    }
}
