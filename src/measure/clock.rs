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

/// How long one reading of the offset between CLOCK_REALTIME and this clock serves a thread's
/// conversions: a receiving core converts a kernel stamp per frame, and one clock read instead
/// of two per frame is measurable. NTP slews the realtime clock by at most 500 ppm, under 1 µs
/// over this span; a step shows in the conversions at most this long after it happens.
const OFFSET_TTL_NS: u64 = 1_000_000;

thread_local! {
    /// (clock ns when read, CLOCK_REALTIME ns minus clock ns then).
    static REAL_OFFSET: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// A CLOCK_REALTIME reading (ns since the epoch, as the kernel stamps received packets) on this
/// clock, never later than now. The offset between the two clocks is read at most
/// [`OFFSET_TTL_NS`] before the call, so a clock step shifts results for at most that long.
pub fn from_realtime_ns(real_ns: u64) -> u64 {
    from_realtime_ns_at(real_ns).0
}

/// [`from_realtime_ns`], and the clock reading it was mapped at (never earlier than the first):
/// a read that dates its bytes learns how long they waited without a second clock read.
pub fn from_realtime_ns_at(real_ns: u64) -> (u64, u64) {
    let now = now_ns();
    let offset = REAL_OFFSET.with(|c| {
        let (at, offset) = c.get();
        if at != 0 && now.saturating_sub(at) < OFFSET_TTL_NS {
            return offset;
        }
        let real_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let offset = real_now.saturating_sub(now);
        c.set((now.max(1), offset));
        offset
    });
    (map_realtime(real_ns, offset, now), now)
}

/// A realtime stamp on this clock, given the clocks' offset (realtime minus clock) and now:
/// clamped to [0, now]. Pure.
pub fn map_realtime(real_ns: u64, offset: u64, now: u64) -> u64 {
    real_ns.saturating_sub(offset).min(now)
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
        // Within the offset's life the same reading serves: a stamp 3 ms old still maps 3 ms back.
        let again = from_realtime_ns(real(Duration::from_millis(3)));
        assert!(again + 4_000_000 >= before && again <= now_ns(), "{before} {again}");
    }

    #[test]
    fn realtime_mapping_clamps_to_the_clock_range() {
        // Offset 1,000: realtime 5,000 is clock 4,000.
        assert_eq!(map_realtime(5_000, 1_000, 10_000), 4_000);
        // From before the clock's origin: 0.
        assert_eq!(map_realtime(500, 1_000, 10_000), 0);
        // From the future (a step): now.
        assert_eq!(map_realtime(50_000, 1_000, 10_000), 10_000);
    }
}
