//! The storm's tally across cores (`--storm`): how many connections each core closes so that the
//! run closes exactly round(fraction x open). Pure; the cores share one behind a mutex in
//! `client::control`, touched once per core per run.

/// The storm's count across cores: the connections the cores that got there before found open.
/// Each core closes the difference its own open connections make to round(fraction x open so
/// far), so the run's total is exactly round(fraction x open) in whatever order cores arrive.
#[derive(Debug, Default)]
pub struct StormTally {
    open: u64,
}

impl StormTally {
    /// How many of its `open_here` connections a core closes (pure): never more than it has, as
    /// round(f (a + b)) - round(f a) <= ceil(f b) <= b for a fraction f <= 1.
    pub fn share(&mut self, fraction: f64, open_here: u64) -> u64 {
        let before = (fraction * self.open as f64).round() as u64;
        self.open += open_here;
        let after = (fraction * self.open as f64).round() as u64;
        after.saturating_sub(before).min(open_here)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_shares_add_up_to_the_rounded_fraction_of_all_open() {
        // 25 conversations of 4 over 16 executors (7 with 4 connections, 9 with 8), in both
        // orders, and other spreads; every prefix of the cores is exact too.
        let spread = [vec![4u64; 7], vec![8; 9]].concat();
        let reversed: Vec<u64> = spread.iter().rev().copied().collect();
        for (fraction, opens) in [
            (0.3, spread),
            (0.3, reversed),
            (0.5, vec![25; 16]),
            (0.5, vec![9, 9, 10]),
            (0.99, vec![1, 1, 1, 1, 1]),
            (0.01, vec![1; 70]),
        ] {
            let mut t = StormTally::default();
            let mut closed = 0;
            for (i, &o) in opens.iter().enumerate() {
                let share = t.share(fraction, o);
                assert!(share <= o, "{fraction} of {opens:?}: {share} of {o}");
                closed += share;
                let open: u64 = opens[..=i].iter().sum();
                assert_eq!(closed, (fraction * open as f64).round() as u64, "{fraction} of {opens:?} after {i}");
            }
        }
        let mut t = StormTally::default();
        assert_eq!([t.share(0.5, 0), t.share(0.5, 1), t.share(0.5, 0)], [0, 1, 0]);
    }
}
