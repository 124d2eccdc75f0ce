//! Load shapes on one core that make members leave mid-run: receivers leaving and joining again
//! (`--churn`) and a reconnect storm (`--storm`). Stages that open and close whole conversations
//! (`--stage`) are followed by `ramp.rs`.
//!
//! Leaving is exact for the accounting: a member that leaves stops being owed messages at once
//! (so nothing sent afterwards is expected of it), then waits until everything sent to it before
//! that moment has arrived (bounded by `conn::LEAVE_LINGER`), and only then closes.

use super::state::{CoreCtx, Slot};
use crate::measure::pacing::splitmix64;
use crate::shape::Storm;
use std::sync::atomic::Ordering;

/// Where in `[0, 1)` a member falls, for picking a fraction of them repeatably.
fn draw(seed: u64, conv: u64, member: u32) -> f64 {
    (splitmix64(seed ^ conv.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ (member as u64) << 48) >> 11) as f64
        / (1u64 << 53) as f64
}

/// The storm: exactly this core's share of the open connections leave now (the ones with the
/// lowest draws, so the choice is repeatable for a seed), to come back at [`storm_return_ns`].
pub fn storm(ctx: &CoreCtx, storm: &Storm) {
    let seed = ctx.plan.scenario.seed ^ 0x5354_4f52_4d00;
    let mut open: Vec<(f64, usize, usize)> = vec![];
    for (c, conv) in ctx.convs.iter().enumerate() {
        for (m, slot) in conv.slots.iter().enumerate() {
            if slot.has(Slot::OPEN) && conv.active.get() {
                open.push((draw(seed, conv.id, m as u32), c, m));
            }
        }
    }
    let n = ctx.control.storm_tally.lock().unwrap_or_else(|p| p.into_inner()).share(storm.fraction, open.len() as u64)
        as usize;
    // Once per run per core: sorting this core's open connections is not on any per-event path.
    open.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    for &(_, c, m) in &open[..n] {
        let slot = &ctx.convs[c].slots[m];
        slot.set(Slot::STORM, true);
        slot.wake();
    }
}

/// When a member closed by the storm connects again: spread evenly over `OVER` after the storm.
pub fn storm_return_ns(ctx: &CoreCtx, storm: &Storm, conv: u64, member: u32) -> u64 {
    let start = ctx.control.send_start_ns.load(Ordering::Relaxed) + storm.at.as_nanos() as u64;
    let spread = draw(ctx.plan.scenario.seed ^ 0x4f56_4552, conv, member);
    start + (storm.over.as_nanos() as f64 * spread) as u64
}

/// `--churn` on one core: leave requests at a steady rate, each to a receiver picked at random
/// among the open ones.
pub struct Churn {
    period_ns: u64,
    next_ns: Option<u64>,
    rng: u64,
}

impl Churn {
    pub fn new(per_s: f64, seed: u64) -> Churn {
        // 0: not churning.
        let period_ns = if per_s > 0.0 { ((1e9 / per_s) as u64).max(1) } else { 0 };
        Churn { period_ns, next_ns: None, rng: splitmix64(seed ^ 0x0063_6875_726e) }
    }

    /// When the next leave is due, if churning.
    pub fn next_ns(&self) -> Option<u64> {
        self.next_ns
    }

    pub fn tick(&mut self, ctx: &CoreCtx, now: u64) {
        if self.period_ns == 0 || ctx.convs.is_empty() {
            return;
        }
        // The first leave falls at a random point of the first period: with many cores, each
        // with a small share (a period longer than the run), the run still churns at its rate.
        let first = now + splitmix64(self.rng) % self.period_ns;
        let next = *self.next_ns.get_or_insert(first);
        if now < next {
            return;
        }
        // Leaves owed since the last tick, at most a few per tick so a stalled core does not
        // empty its conversations at once.
        let owed = ((now - next) / self.period_ns + 1).min(64);
        self.next_ns = Some(next + owed * self.period_ns);
        let receivers = ctx.plan.scenario.members - ctx.plan.scenario.senders;
        if receivers == 0 {
            return;
        }
        for _ in 0..owed {
            // A few tries to find an open receiver that is not leaving already.
            for _ in 0..8 {
                self.rng = splitmix64(self.rng);
                let conv = &ctx.convs[(self.rng % ctx.convs.len() as u64) as usize];
                let member = ctx.plan.scenario.senders + ((self.rng >> 32) % receivers as u64) as u32;
                let slot = &conv.slots[member as usize];
                if conv.active.get() && slot.has(Slot::OPEN) && !slot.has(Slot::CHURN | Slot::STORM) {
                    slot.set(Slot::CHURN, true);
                    slot.wake();
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storm_draws_pick_the_fraction_asked_for() {
        let n = 20_000;
        let picked = (0..n).filter(|i| draw(9, i / 10, (i % 10) as u32) < 0.3).count();
        assert!((5_700..6_300).contains(&picked), "{picked} of {n}");
    }
}
