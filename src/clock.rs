//! The process-wide monotonic clock every timestamp in herd is taken from.
//!
//! Markers carry intended and actual send times as nanoseconds since this clock's origin, so a
//! receiver on any core of the same process can subtract them from its own `now_ns()`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// The clock's origin; fixed the first time any clock function runs.
pub fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since the origin.
pub fn now_ns() -> u64 {
    origin().elapsed().as_nanos() as u64
}

/// A CLOCK_REALTIME reading (ns since the epoch, as the kernel stamps received packets) on this
/// clock, never later than now. The offset between the two clocks is read at the call, so clock
/// steps between the stamp and the call shift the result by the step.
pub fn from_realtime_ns(real_ns: u64) -> u64 {
    let now = now_ns();
    let real_now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    now.saturating_sub(real_now.saturating_sub(real_ns))
}

/// The `Instant` that corresponds to a clock reading.
pub fn instant_of(ns: u64) -> Instant {
    origin() + Duration::from_nanos(ns)
}

/// Waits up to `limit` (`std::time::Duration::MAX`: for ever) for `done`; returns whether it became true.
/// Looks again after 1 ms, then backs off to every 100 ms: a quick answer when the condition is
/// about to hold (a phase acknowledgement), few wake-ups over a long wait (an idle hold).
pub fn wait_until(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now().checked_add(limit);
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        if done() {
            return true;
        }
        let now = std::time::Instant::now();
        if end.is_some_and(|e| now >= e) {
            return false;
        }
        let left = end.map_or(pause, |e| e - now);
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_monotonic_and_map_back_to_instants() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        let i = instant_of(b);
        assert!(i >= origin());
        assert_eq!((i - origin()).as_nanos() as u64, b);
    }

    #[test]
    fn realtime_stamps_map_onto_the_clock() {
        let real = |d: Duration| {
            (std::time::SystemTime::now() - d).duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        };
        origin();
        std::thread::sleep(Duration::from_millis(5));
        let before = now_ns();
        let ms3_ago = from_realtime_ns(real(Duration::from_millis(3)));
        let after = now_ns();
        assert!(
            ms3_ago + 4_000_000 >= before && ms3_ago + 3_000_000 <= after + 1_000_000,
            "{before} {ms3_ago} {after}"
        );
        // A stamp from the future (a clock step) is clamped to now.
        assert!(from_realtime_ns(real(Duration::ZERO) + 10_000_000_000) <= now_ns());
    }
}
