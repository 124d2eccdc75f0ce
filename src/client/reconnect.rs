//! `--reconnect`: after an established connection is lost, open it again with jittered
//! exponential backoff until it is back or the run closes.
//!
//! The delay before attempt `n` (0-based) is drawn uniformly from `[c/2, c]` where
//! `c = min(100 ms * 2^n, 5 s)` ("equal jitter": never a thundering herd of simultaneous
//! retries, never a zero wait). A connection that then stays up for at least the longest delay
//! starts over at 100 ms; one that is lost sooner keeps its grown backoff, so a target that
//! accepts and closes at once (a close storm) sees at most one attempt per connection every few
//! seconds.
//!
//! Every attempt counts in `conns_attempted` and then in `conns_established` or in
//! `conns_failed` and its error category; a success also counts in `conns_reconnected`.

use super::connect;
use super::state::{Conv, CoreCtx, Slot};
use super::target::Ws;
use crate::measure::pacing::splitmix64;
use futures_lite::future;
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

/// The first backoff ceiling.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The largest backoff ceiling, and how long a connection must stay up to reset its backoff.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// One connection's backoff state.
#[derive(Clone, Debug)]
pub struct Backoff {
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        Backoff { attempt: 0, rng: splitmix64(seed ^ 0x7265_636f_6e6e_6563) }
    }

    /// The ceiling of the next delay: 100 ms doubling per attempt, at most 5 s.
    pub fn ceiling(&self) -> Duration {
        let shift = self.attempt.min(16);
        (FIRST_DELAY * (1u32 << shift)).min(MAX_DELAY)
    }

    /// The delay before the next attempt, in `[ceiling/2, ceiling]`; the backoff grows.
    pub fn next_delay(&mut self) -> Duration {
        let c = self.ceiling().as_nanos() as u64;
        self.rng = splitmix64(self.rng);
        let half = c / 2;
        let d = half + self.rng % (c - half + 1);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_nanos(d)
    }

    /// A connection was up for `lived`: a long enough life resets the backoff.
    pub fn connected_for(&mut self, lived: Duration) {
        if lived >= MAX_DELAY {
            self.attempt = 0;
        }
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Resolves once the core is closing or aborting (the core rings every slot when it closes).
pub(super) async fn closing(ctx: &CoreCtx, slot: &Slot) {
    poll_fn(|cx| {
        if ctx.closing.get() || ctx.control.abort.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        slot.register(cx.waker());
        Poll::Pending
    })
    .await
}

/// Waits out the backoff and tries again, as often as needed; `None` once the run closes. A
/// success counts in `conns_reconnected`.
pub async fn again(ctx: &CoreCtx, conv: &Conv, member: u32, backoff: &mut Backoff) -> Option<Box<Ws>> {
    let first = backoff.next_delay();
    let ws = retry(ctx, conv, member, backoff, Some(first)).await?;
    ctx.stats.borrow_mut().counters.conns_reconnected += 1;
    Some(ws)
}

/// A member that left (`--churn`, `--storm`) joins again: at `at` (clock ns; `None`: now), then
/// with backoff until it is back or the run closes. A success counts in `conns_rejoined`.
pub async fn rejoin(ctx: &CoreCtx, conv: &Conv, member: u32, at: Option<u64>) -> Option<Box<Ws>> {
    let mut backoff = Backoff::new(ctx.plan.scenario.seed ^ conv.id ^ (member as u64) << 40);
    let wait = at.map(|t| Duration::from_nanos(t.saturating_sub(crate::measure::clock::now_ns())));
    let ws = retry(ctx, conv, member, &mut backoff, wait).await?;
    ctx.stats.borrow_mut().counters.conns_rejoined += 1;
    Some(ws)
}

/// Waits `wait` (if any), then connects, backing off after each failure, until the connection
/// is back (`Some`) or the run closes (`None`). Every attempt counts in `conns_attempted`, then
/// in `conns_established` or `conns_failed` (by `connect`); one cut short by the close counts
/// in neither.
async fn retry(
    ctx: &CoreCtx,
    conv: &Conv,
    member: u32,
    backoff: &mut Backoff,
    mut wait: Option<Duration>,
) -> Option<Box<Ws>> {
    let slot = &conv.slots[member as usize];
    loop {
        if let Some(delay) = wait.filter(|d| !d.is_zero()) {
            let waited = future::or(
                async {
                    crate::runtime::net::idle::sleep(delay).await;
                    true
                },
                async {
                    closing(ctx, slot).await;
                    false
                },
            )
            .await;
            if !waited {
                return None;
            }
        }
        if ctx.closing.get() {
            return None;
        }
        ctx.stats.borrow_mut().counters.conns_attempted += 1;
        ctx.connecting.set(ctx.connecting.get() + 1);
        let attempt = future::or(async { Some(connect::member(ctx, conv, member).await) }, async {
            closing(ctx, slot).await;
            None
        })
        .await;
        ctx.connect_settled();
        match attempt {
            Some(Some(ws)) => return Some(ws),
            // Counted as failed by `connect`: back off and try again.
            Some(None) => wait = Some(backoff.next_delay()),
            None => {
                ctx.stats.borrow_mut().counters.conns_attempted -= 1;
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(1);
        let mut ceilings = vec![];
        for _ in 0..10 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d >= c / 2 && d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
            ceilings.push(c.as_millis());
        }
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
    }

    #[test]
    fn only_a_long_life_resets_the_backoff() {
        let mut b = Backoff::new(2);
        for _ in 0..4 {
            b.next_delay();
        }
        b.connected_for(Duration::from_millis(50));
        assert_eq!(b.ceiling(), Duration::from_millis(1600), "a close storm keeps its backoff");
        b.connected_for(MAX_DELAY);
        assert_eq!(b.ceiling(), FIRST_DELAY);
    }

    #[test]
    fn jitter_differs_between_connections() {
        let d: Vec<Duration> = (0..8).map(|s| Backoff::new(s).next_delay()).collect();
        let mut u = d.clone();
        u.sort();
        u.dedup();
        assert!(u.len() > 4, "{d:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_sequence_stays_within_bounds(seed: u64, steps in proptest::collection::vec(0u64..10_000, 1..64)) {
            let mut b = Backoff::new(seed);
            for lived_ms in steps {
                let c = b.ceiling();
                let d = b.next_delay();
                prop_assert!(d >= FIRST_DELAY / 2 && d <= MAX_DELAY);
                prop_assert!(d >= c / 2 && d <= c);
                b.connected_for(Duration::from_millis(lived_ms));
            }
        }
    }
}
