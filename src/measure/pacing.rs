//! Open-model send schedules: when each message of a sender is meant to go out.
//!
//! A sender's message `seq` is due at `start + phase + seq * period`, independent of when earlier
//! messages actually went out, so a sender that falls behind catches up without shifting its
//! schedule and latency measured from these times is corrected for coordinated omission.

/// One sender's fixed schedule, in clock nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Due time of message 0.
    pub first_ns: u64,
    pub period_ns: u64,
    /// Messages due at or after this time are never sent.
    pub end_ns: u64,
}

impl Schedule {
    /// `rate` messages per second starting `phase_ns` after `start_ns`, for `duration_ns`.
    /// `rate` must be positive.
    pub fn new(start_ns: u64, phase_ns: u64, rate: f64, duration_ns: u64) -> Schedule {
        let period_ns = period_ns(rate);
        Schedule {
            first_ns: start_ns + phase_ns.min(period_ns.saturating_sub(1)),
            period_ns,
            end_ns: start_ns + duration_ns,
        }
    }

    /// When message `seq` is due.
    pub fn due_ns(&self, seq: u64) -> u64 {
        self.first_ns.saturating_add(seq.saturating_mul(self.period_ns))
    }

    /// How many messages are due by `now_ns` (never more than [`Schedule::total`]).
    pub fn due_count(&self, now_ns: u64) -> u64 {
        if now_ns < self.first_ns {
            return 0;
        }
        ((now_ns - self.first_ns) / self.period_ns + 1).min(self.total())
    }

    /// How many messages the whole schedule holds.
    pub fn total(&self) -> u64 {
        if self.end_ns <= self.first_ns {
            return 0;
        }
        (self.end_ns - self.first_ns).div_ceil(self.period_ns)
    }

    /// When the next message after the first `sent` is due, if any.
    pub fn next_due_ns(&self, sent: u64) -> Option<u64> {
        (sent < self.total()).then(|| self.due_ns(sent))
    }
}

/// The period of a rate in messages per second (at least 1 ns).
pub fn period_ns(rate: f64) -> u64 {
    ((1e9 / rate).round() as u64).max(1)
}

/// A phase in `[0, period)` spread deterministically from a sender's index, so that senders do
/// not all fire together and runs are repeatable for the same seed.
pub fn phase_ns(seed: u64, sender_index: u64, period_ns: u64) -> u64 {
    splitmix64(seed ^ sender_index.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % period_ns.max(1)
}

/// A small, fast, well-mixed hash (SplitMix64 finaliser).
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn due_times_are_fixed_from_start_and_phase() {
        let s = Schedule::new(10 * S, 250_000_000, 2.0, 3 * S);
        assert_eq!(s.period_ns, 500_000_000);
        assert_eq!(s.due_ns(0), 10 * S + 250_000_000);
        assert_eq!(s.due_ns(4), 12 * S + 250_000_000);
        // 10.25, 10.75, 11.25, 11.75, 12.25, 12.75 are before the end at 13.
        assert_eq!(s.total(), 6);
        assert_eq!(s.next_due_ns(6), None);
    }

    #[test]
    fn a_late_sender_catches_up_without_shifting() {
        let s = Schedule::new(0, 0, 10.0, 10 * S);
        assert_eq!(s.due_count(0), 1);
        assert_eq!(s.due_count(99_999_999), 1);
        assert_eq!(s.due_count(100_000_000), 2);
        // Stalled for a second: ten more are due at once, at their original times.
        assert_eq!(s.due_count(1_050_000_000), 11);
        assert_eq!(s.due_ns(10), S);
        assert_eq!(s.due_count(u64::MAX / 2), s.total());
        assert_eq!(s.total(), 100);
    }

    #[test]
    fn fractional_rates_and_phases_stay_in_range() {
        let p = period_ns(0.25);
        assert_eq!(p, 4 * S);
        for i in 0..1000 {
            assert!(phase_ns(42, i, p) < p);
        }
        assert_ne!(phase_ns(42, 1, p), phase_ns(42, 2, p));
        let s = Schedule::new(0, p * 3, 0.25, 8 * S);
        assert!(s.first_ns < p, "phase is clamped into one period");
        assert_eq!(Schedule::new(5 * S, 0, 1.0, 0).total(), 0);
    }

    #[test]
    fn phases_spread_evenly() {
        let p = 1_000_000;
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            buckets[(phase_ns(7, i, p) * 10 / p) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "uneven phases: {buckets:?}");
        }
    }
}
