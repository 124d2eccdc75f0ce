//! Keeps executors from sleeping through their wake-ups. Each executor beats a heartbeat from its
//! scheduler loop; a watchdog thread sends a signal to an executor whose heartbeat is late, which
//! makes its `io_uring_enter` return (EINTR) so that it looks at its rings and timers again.
//!
//! Why: with many executors per CPU (70 executors on 2 cores), an executor was seen asleep in
//! io_uring for seconds with a timer due and its epoll set readable (a lost wake-up below herd,
//! in glommio's sleep path). A late heartbeat is also what shows a stalled core; `kicks` counts
//! how often one had to be woken.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

/// A heartbeat older than this gets its executor a wake-up signal.
pub const LATE: Duration = Duration::from_millis(250);
/// How often the watchdog looks.
const EVERY: Duration = Duration::from_millis(50);

pub struct Heartbeats {
    beats: Vec<AtomicU64>,
    tids: Vec<AtomicI32>,
    kicks: AtomicU64,
    stop: AtomicBool,
}

impl Heartbeats {
    pub fn new(executors: usize) -> Arc<Heartbeats> {
        Arc::new(Heartbeats {
            beats: (0..executors).map(|_| AtomicU64::new(0)).collect(),
            tids: (0..executors).map(|_| AtomicI32::new(0)).collect(),
            kicks: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    }

    /// Called once on the executor's thread.
    pub fn register(&self, idx: usize) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.tids[idx].store(tid, Ordering::SeqCst);
        self.beat(idx);
    }

    pub fn beat(&self, idx: usize) {
        self.beats[idx].store(crate::clock::now_ns(), Ordering::Relaxed);
    }

    /// The executor has finished: no more signals for it.
    pub fn retire(&self, idx: usize) {
        self.tids[idx].store(0, Ordering::SeqCst);
    }

    /// Wake-up signals sent so far.
    pub fn kicks(&self) -> u64 {
        self.kicks.load(Ordering::Relaxed)
    }

    /// Stops the watchdog thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn check(&self) {
        let now = crate::clock::now_ns();
        let late = LATE.as_nanos() as u64;
        for (beat, tid) in self.beats.iter().zip(&self.tids) {
            let t = tid.load(Ordering::SeqCst);
            if t != 0 && now.saturating_sub(beat.load(Ordering::Relaxed)) > late {
                // SAFETY: signalling a thread of this process; the handler does nothing.
                unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), t, libc::SIGURG) };
                self.kicks.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Starts the watchdog thread for `hb`; it ends after [`Heartbeats::stop`].
pub fn spawn(hb: Arc<Heartbeats>) {
    install_handler();
    let _ = std::thread::Builder::new().name("herd-watchdog".into()).spawn(move || {
        while !hb.stop.load(Ordering::SeqCst) {
            std::thread::sleep(EVERY);
            hb.check();
        }
    });
}

extern "C" fn on_kick(_: libc::c_int) {}

/// SIGURG (ignored by default) gets an empty handler without SA_RESTART, so a blocked syscall
/// returns EINTR.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_kick as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGURG, &sa, std::ptr::null_mut());
        }
    });
}
