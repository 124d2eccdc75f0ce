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

/// The `Instant` that corresponds to a clock reading.
pub fn instant_of(ns: u64) -> Instant {
    origin() + Duration::from_nanos(ns)
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
}
