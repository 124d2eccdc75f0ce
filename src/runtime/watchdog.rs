//! Keeps executors from sleeping through their wake-ups. Each executor beats a heartbeat from its
//! scheduler loop; a watchdog thread sends a signal to an executor whose heartbeat is late, which
//! makes its `io_uring_enter` return (EINTR) so that it looks at its rings and timers again.
//!
//! Why: with many executors per CPU (70 executors on 2 cores), an executor was seen asleep in
//! io_uring for seconds with a timer due and its epoll set readable, or with its first task never
//! run (a lost wake-up below herd, in glommio's scheduler: see `executor.rs`). A late heartbeat is also what shows a stalled core; `kicks` counts
//! how often one had to be woken. A core whose heartbeat stays silent for [`STALLED`] (kicks
//! did not help: it is stuck, not asleep) is recorded as stalled, with when; the run's driver
//! ends the run on it instead of waiting for ever.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

/// A heartbeat older than this gets its executor a wake-up signal.
pub const LATE: Duration = Duration::from_millis(250);
/// How often the watchdog looks.
const EVERY: Duration = Duration::from_millis(100);
/// A heartbeat silent this long marks its core stalled (a core beats at least every 50 ms).
pub const STALLED: Duration = Duration::from_secs(5);

pub struct Heartbeats {
    beats: Vec<AtomicU64>,
    tids: Vec<AtomicI32>,
    kicks: AtomicU64,
    stop: AtomicBool,
    /// Cores found stalled: (core, clock ns when its last heartbeat was), once per core.
    stalled: std::sync::Mutex<Vec<(usize, u64)>>,
}

impl Heartbeats {
    pub fn new(executors: usize) -> Arc<Heartbeats> {
        Arc::new(Heartbeats {
            beats: (0..executors).map(|_| AtomicU64::new(0)).collect(),
            tids: (0..executors).map(|_| AtomicI32::new(0)).collect(),
            kicks: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            stalled: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Called once on the executor's thread, before its first task runs (`executor.rs`).
    pub fn register(&self, idx: usize) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.tids[idx].store(tid, Ordering::SeqCst);
        self.beat(idx);
    }

    /// The thread ids of the executors running now (for their scheduler statistics).
    pub fn tids(&self) -> Vec<i32> {
        self.tids.iter().map(|t| t.load(Ordering::SeqCst)).filter(|&t| t != 0).collect()
    }

    pub fn beat(&self, idx: usize) {
        self.beats[idx].store(crate::measure::clock::now_ns(), Ordering::Relaxed);
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

    /// Cores found stalled so far: (core, clock ns of its last heartbeat), in the order found.
    pub fn stalled(&self) -> Vec<(usize, u64)> {
        self.stalled.lock().map(|g| g.clone()).unwrap_or_default()
    }

    pub fn any_stalled(&self) -> bool {
        self.stalled.lock().map(|g| !g.is_empty()).unwrap_or(false)
    }

    fn check(&self) {
        for t in self.check_at(crate::measure::clock::now_ns()) {
            // SAFETY: signalling a thread of this process; the handler does nothing.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), t, libc::SIGURG) };
            self.kicks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Looks at every running executor's heartbeat at `now`: records the cores silent for
    /// [`STALLED`], returns the threads to wake (heartbeat over [`LATE`]).
    fn check_at(&self, now: u64) -> Vec<i32> {
        let (late, stalled) = (LATE.as_nanos() as u64, STALLED.as_nanos() as u64);
        let mut kick = vec![];
        for (idx, (beat, tid)) in self.beats.iter().zip(&self.tids).enumerate() {
            let t = tid.load(Ordering::SeqCst);
            let last = beat.load(Ordering::Relaxed);
            if t == 0 || now.saturating_sub(last) <= late {
                continue;
            }
            kick.push(t);
            if now.saturating_sub(last) > stalled {
                if let Ok(mut g) = self.stalled.lock() {
                    if !g.iter().any(|&(c, _)| c == idx) {
                        g.push((idx, last));
                    }
                }
            }
        }
        kick
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_silent_past_the_bound_is_recorded_once_with_its_last_beat() {
        let hb = Heartbeats::new(3);
        hb.register(0);
        hb.register(1);
        // Core 2 never started: never late, never stalled.
        let t0 = crate::measure::clock::now_ns();
        let b0 = hb.beats[0].load(Ordering::Relaxed);
        hb.beats[1].store(t0, Ordering::Relaxed);
        // Both late but not stalled: woken, not recorded.
        let soon = t0 + LATE.as_nanos() as u64 + 1;
        assert_eq!(hb.check_at(soon).len(), 2);
        assert!(!hb.any_stalled());
        // Core 1 beats on; core 0 stays silent past the bound.
        let later = b0 + STALLED.as_nanos() as u64 + 1;
        hb.beats[1].store(later, Ordering::Relaxed);
        hb.check_at(later);
        hb.check_at(later + 1_000_000_000);
        assert_eq!(hb.stalled(), vec![(0, b0)]);
        // A retired core is no longer watched.
        hb.retire(1);
        hb.check_at(later + 60_000_000_000);
        assert_eq!(hb.stalled(), vec![(0, b0)]);
    }
}
