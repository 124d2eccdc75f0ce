//! Exact loss, duplicate and reorder accounting for one (receiver, sender) stream.
//!
//! A sender numbers its messages 0, 1, 2, ... A receiver keeps, per sender, the highest sequence
//! number seen and the list of lower numbers not seen yet (holes). Then each receipt is exactly
//! one of:
//! - **first**: new and in order (or after a gap, which opens holes);
//! - **reordered**: new, but a later message already arrived (it fills a hole);
//! - **duplicate**: already received.
//!
//! Holes are few on a healthy run; each stream keeps at most [`MAX_HOLES`] of them. When a stream
//! has more, the oldest hole is given up (`holes_evicted`, reported in the results). A message
//! below the newest given-up hole that is not a remembered hole is then either such a late
//! arrival or a duplicate; while given-up holes remain unclaimed it counts as **late** (a
//! delivery out of order), beyond that as a duplicate. So a run that loses many messages in a
//! row and then gets them after all is counted as delivered, and only a run that both loses
//! past the bound and duplicates could take a duplicate for a late arrival, at most
//! `holes_evicted` times. Missed messages are not counted here: the run's missed
//! count is `expected - delivered`, where both sides use the same "connected at send time" rule.

/// Holes remembered per stream before the oldest is given up.
pub const MAX_HOLES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    First,
    Reordered,
    /// New as far as can be told, for a sequence number whose hole was given up.
    Late,
    Duplicate,
}

#[derive(Clone, Debug, Default)]
pub struct StreamTracker {
    /// One past the highest sequence number received (0 before any).
    next: u64,
    /// Sequence numbers below `next` not received yet, ascending. Empty on a healthy stream, so
    /// it costs no allocation.
    holes: Vec<u64>,
    /// Holes given up because there were more than [`MAX_HOLES`].
    pub holes_evicted: u64,
    /// One past the highest sequence number whose hole was given up.
    evicted_through: u64,
    /// Given-up holes not yet claimed by a late arrival.
    unclaimed: u64,
}

impl StreamTracker {
    pub fn receive(&mut self, seq: u64) -> Receipt {
        if seq >= self.next {
            if seq > self.next {
                // Sequence numbers next..seq are missing for now; remember at most MAX_HOLES.
                let gap = seq - self.next;
                let keep = gap.min(MAX_HOLES as u64);
                let first_kept = seq - keep;
                if gap > keep {
                    self.evict(gap - keep, first_kept);
                }
                self.holes.extend(first_kept..seq);
                if self.holes.len() > MAX_HOLES {
                    let extra = self.holes.len() - MAX_HOLES;
                    let through = self.holes[extra - 1] + 1;
                    self.evict(extra as u64, through);
                    self.holes.drain(..extra);
                }
            }
            self.next = seq + 1;
            return Receipt::First;
        }
        match self.holes.binary_search(&seq) {
            Ok(i) => {
                self.holes.remove(i);
                if self.holes.is_empty() {
                    self.holes = Vec::new();
                }
                Receipt::Reordered
            }
            Err(_) if seq < self.evicted_through && self.unclaimed > 0 => {
                self.unclaimed -= 1;
                Receipt::Late
            }
            Err(_) => Receipt::Duplicate,
        }
    }

    fn evict(&mut self, n: u64, through: u64) {
        self.holes_evicted += n;
        self.unclaimed += n;
        self.evicted_through = self.evicted_through.max(through);
    }

    /// Messages of this sender not received so far, among those numbered below the highest seen
    /// (a live estimate; the exact missed count comes from expected - delivered).
    /// A stream whose first `next` messages were sent before the receiver joined: they are not
    /// holes.
    pub fn starting_at(next: u64) -> StreamTracker {
        StreamTracker { next, ..Default::default() }
    }

    /// Whether every message below `seq` has arrived (or was before the stream's start).
    pub fn complete_below(&self, seq: u64) -> bool {
        // Given-up holes cannot be told apart: a stream with unclaimed ones is not complete.
        self.next >= seq && self.holes.first().is_none_or(|&h| h >= seq) && self.unclaimed == 0
    }

    pub fn open_holes(&self) -> usize {
        self.holes.len()
    }

    /// One past the highest sequence number received.
    pub fn next(&self) -> u64 {
        self.next
    }
}

/// A receiver's trackers, one per sender of its conversation. The common case of one sender
/// is kept inline, saving an allocation per connection.
#[derive(Clone, Debug)]
pub enum Trackers {
    One(StreamTracker),
    Many(Box<[StreamTracker]>),
}

impl Trackers {
    pub fn new(senders: usize) -> Trackers {
        if senders <= 1 {
            Trackers::One(StreamTracker::default())
        } else {
            Trackers::Many(vec![StreamTracker::default(); senders].into())
        }
    }

    /// The tracker of sender `i` (callers check `i` against the number of senders).
    /// Trackers for a receiver joining now: sender `i` had sent `sent(i)` messages already.
    pub fn joining(senders: usize, sent: impl Fn(usize) -> u64) -> Trackers {
        if senders <= 1 {
            Trackers::One(StreamTracker::starting_at(sent(0)))
        } else {
            Trackers::Many((0..senders).map(|i| StreamTracker::starting_at(sent(i))).collect())
        }
    }

    pub fn get(&self, i: usize) -> &StreamTracker {
        match self {
            Trackers::One(t) => t,
            Trackers::Many(v) => &v[i],
        }
    }

    pub fn get_mut(&mut self, i: usize) -> &mut StreamTracker {
        match self {
            Trackers::One(t) => t,
            Trackers::Many(v) => &mut v[i],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Receipt::*;

    fn feed(seqs: &[u64]) -> (StreamTracker, Vec<Receipt>) {
        let mut t = StreamTracker::default();
        let r = seqs.iter().map(|&s| t.receive(s)).collect();
        (t, r)
    }

    #[test]
    fn trackers_keep_senders_apart() {
        let mut one = Trackers::new(1);
        assert_eq!(one.get_mut(0).receive(0), First);
        assert_eq!(one.get_mut(0).receive(0), Duplicate);
        let mut many = Trackers::new(3);
        assert_eq!(many.get_mut(2).receive(5), First);
        assert_eq!(many.get_mut(1).receive(5), First);
        assert_eq!(many.get_mut(2).receive(5), Duplicate);
    }

    #[test]
    fn a_joining_receiver_has_no_holes_for_what_came_before() {
        let mut t = StreamTracker::starting_at(40);
        assert!(t.complete_below(40));
        assert!(!t.complete_below(41));
        assert_eq!(t.receive(41), First);
        assert_eq!((t.open_holes(), t.holes_evicted), (1, 0), "only 40 is missing, not 0..40");
        assert!(!t.complete_below(42));
        assert_eq!(t.receive(40), Reordered);
        assert!(t.complete_below(42));
        let j = Trackers::joining(2, |i| [5, 9][i]);
        assert!(j.get(0).complete_below(5) && j.get(1).complete_below(9) && !j.get(1).complete_below(10));
    }

    #[test]
    fn in_order_stream_is_all_first() {
        let (t, r) = feed(&[0, 1, 2, 3]);
        assert!(r.iter().all(|&x| x == First));
        assert_eq!(t.open_holes(), 0);
        assert_eq!(t.next(), 4);
    }

    #[test]
    fn loss_leaves_a_hole_and_late_arrival_is_reordered() {
        let (t, r) = feed(&[0, 2, 3, 1]);
        assert_eq!(r, vec![First, First, First, Reordered]);
        assert_eq!(t.open_holes(), 0);
        let (t, _) = feed(&[0, 2, 3, 5]);
        assert_eq!(t.open_holes(), 2);
    }

    #[test]
    fn duplicates_are_caught_in_and_out_of_order() {
        let (_, r) = feed(&[0, 1, 1, 3, 2, 2, 3, 0]);
        assert_eq!(r, vec![First, First, Duplicate, First, Reordered, Duplicate, Duplicate, Duplicate]);
    }

    #[test]
    fn first_message_may_be_late() {
        let (t, r) = feed(&[1, 0]);
        assert_eq!(r, vec![First, Reordered]);
        assert_eq!(t.open_holes(), 0);
    }

    #[test]
    fn holes_are_bounded_and_evictions_counted() {
        let mut t = StreamTracker::default();
        // Every other message lost, 200 times.
        for i in 0..200 {
            t.receive(i * 2);
        }
        assert_eq!(t.open_holes(), MAX_HOLES);
        assert_eq!(t.holes_evicted, 199 - MAX_HOLES as u64);
        // A huge jump keeps only the newest holes.
        t.receive(1_000_000);
        assert_eq!(t.open_holes(), MAX_HOLES);
        // The newest remembered hole is still recognised as a late arrival.
        assert_eq!(t.receive(999_999), Reordered);
        // A given-up one arriving after all is a late delivery, not a duplicate; the second
        // time it is a duplicate.
        let evicted = t.holes_evicted;
        assert_eq!(t.receive(1), Late);
        assert_eq!(t.receive(999_999), Duplicate);
        assert_eq!(t.holes_evicted, evicted);
    }

    #[test]
    fn late_arrivals_are_bounded_by_the_holes_given_up() {
        let mut t = StreamTracker::default();
        // 0 arrives, 1..=70 are lost for now (6 holes given up: 1..=6), then 71 arrives.
        assert_eq!(t.receive(0), First);
        assert_eq!(t.receive(71), First);
        assert_eq!((t.holes_evicted, t.open_holes()), (6, MAX_HOLES));
        // All six given-up messages arrive after all: each is late, none a duplicate.
        for s in 1..=6 {
            assert_eq!(t.receive(s), Late, "seq {s}");
        }
        // Nothing is left unclaimed: more receipts below are duplicates (0 was received).
        assert_eq!(t.receive(0), Duplicate);
        assert_eq!(t.receive(3), Duplicate);
        // The remembered holes are still reordered arrivals.
        assert_eq!(t.receive(7), Reordered);
    }

    #[test]
    fn exact_counts_against_a_brute_force_model() {
        // Deterministic pseudo-random streams with loss, duplication and local reordering.
        let mut rnd = crate::testrand::xorshift(12345);
        for _ in 0..200 {
            let mut arrivals = vec![];
            for seq in 0..300u64 {
                match rnd() % 10 {
                    0 => {}
                    1 => {
                        arrivals.push(seq);
                        arrivals.push(seq);
                    }
                    _ => arrivals.push(seq),
                }
            }
            for i in 0..arrivals.len().saturating_sub(1) {
                if rnd() % 7 == 0 {
                    arrivals.swap(i, i + 1);
                }
            }
            let mut seen = std::collections::HashSet::new();
            let mut max_seen: Option<u64> = None;
            let mut t = StreamTracker::default();
            for &s in &arrivals {
                let want = if !seen.insert(s) {
                    Duplicate
                } else if max_seen.is_some_and(|m| s < m) {
                    Reordered
                } else {
                    First
                };
                max_seen = Some(max_seen.map_or(s, |m| m.max(s)));
                assert_eq!(t.receive(s), want, "seq {s} in {arrivals:?}");
            }
        }
    }
}
