//! A connection's receipt trackers for every (room, sender) stream it is owed, compact: one
//! `u32` per stream (the next sequence number expected) while the stream is in order, and a
//! full [`StreamTracker`] only for a stream with holes, until its holes close. Receipts are
//! classified exactly as by `StreamTracker` (first, reordered, late, duplicate).
//!
//! A population of 1M connections in 20 rooms each holds tens of millions of streams; at 64
//! bytes per `StreamTracker` that would be the largest table of the run, while almost every
//! stream of a healthy run is in order.

use crate::measure::accounting::{Receipt, StreamTracker};
use std::collections::HashMap;

/// Marks a stream whose tracker is in the spill map.
const SPILLED: u32 = u32::MAX;

#[derive(Debug, Default)]
pub struct Ledger {
    next: Box<[u32]>,
    spilled: HashMap<u32, StreamTracker>,
    /// Holes given up over all streams (`StreamTracker::holes_evicted`).
    pub holes_evicted: u64,
}

impl Ledger {
    /// `streams` streams, each starting at the sequence number `start(i)` (what its sender had
    /// sent before this connection was owed anything).
    pub fn new(streams: usize, start: impl Fn(usize) -> u64) -> Ledger {
        let mut l = Ledger { next: vec![0; streams].into(), ..Default::default() };
        for i in 0..streams {
            let s = start(i);
            if s < SPILLED as u64 - 1 {
                l.next[i] = s as u32;
            } else {
                l.next[i] = SPILLED;
                l.spilled.insert(i as u32, StreamTracker::starting_at(s));
            }
        }
        l
    }

    pub fn streams(&self) -> usize {
        self.next.len()
    }

    /// Classifies the receipt of `seq` on stream `i` (`i < streams()`).
    pub fn receive(&mut self, i: usize, seq: u64) -> Receipt {
        let n = self.next[i];
        if n != SPILLED {
            if seq == n as u64 && seq + 1 < SPILLED as u64 {
                self.next[i] = n + 1;
                return Receipt::First;
            }
            if seq < n as u64 {
                return Receipt::Duplicate;
            }
            // A gap (or a number too large for the compact form): the full tracker takes over.
            self.next[i] = SPILLED;
            self.spilled.insert(i as u32, StreamTracker::starting_at(n as u64));
        }
        let Some(t) = self.spilled.get_mut(&(i as u32)) else { return Receipt::Duplicate };
        let before = t.holes_evicted;
        let r = t.receive(seq);
        self.holes_evicted += t.holes_evicted - before;
        // Back to the compact form once nothing but the next number is left to know.
        if t.complete_below(t.next()) && t.next() < SPILLED as u64 - 1 {
            self.next[i] = t.next() as u32;
            self.spilled.remove(&(i as u32));
        }
        r
    }

    /// Streams held in full now (with holes).
    pub fn spilled(&self) -> usize {
        self.spilled.len()
    }

    /// Heap bytes, roughly: the compact table and the full trackers.
    pub fn heap_bytes(&self) -> usize {
        self.next.len() * 4 + self.spilled.capacity() * (std::mem::size_of::<StreamTracker>() + 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrand::xorshift;

    #[test]
    fn classifies_every_receipt_as_a_full_tracker_would() {
        let mut rnd = xorshift(0x5eed);
        let mut spilled_seen = 0;
        for case in 0..300 {
            let streams = 1 + (rnd() % 4) as usize;
            let starts: Vec<u64> = (0..streams).map(|_| rnd() % 5).collect();
            let mut l = Ledger::new(streams, |i| starts[i]);
            let mut full: Vec<StreamTracker> = starts.iter().map(|&s| StreamTracker::starting_at(s)).collect();
            // Mostly in order, with gaps, swaps, repeats and long losses (past MAX_HOLES).
            let mut next = vec![0u64; streams];
            for _ in 0..400 {
                let i = (rnd() % streams as u64) as usize;
                let seq = match rnd() % 10 {
                    0 => next[i].saturating_sub(rnd() % 8),
                    1 => next[i] + rnd() % 100,
                    _ => next[i],
                };
                next[i] = next[i].max(seq + 1);
                let want = full[i].receive(seq);
                assert_eq!(l.receive(i, seq), want, "case {case}, stream {i}, seq {seq}");
                spilled_seen += l.spilled();
            }
            let evicted: u64 = full.iter().map(|t| t.holes_evicted).sum();
            assert_eq!(l.holes_evicted, evicted, "case {case}");
        }
        assert!(spilled_seen > 0, "the cases never opened a hole");
    }

    #[test]
    fn an_in_order_stream_stays_compact() {
        let mut l = Ledger::new(2, |i| i as u64 * 10);
        for s in 0..100 {
            assert_eq!(l.receive(0, s), Receipt::First);
            assert_eq!(l.receive(1, 10 + s), Receipt::First);
        }
        assert_eq!(l.receive(1, 5), Receipt::Duplicate);
        assert_eq!(l.spilled(), 0);
        assert_eq!(l.receive(0, 102), Receipt::First);
        assert_eq!(l.spilled(), 1);
        assert_eq!(l.receive(0, 100), Receipt::Reordered);
        assert_eq!(l.receive(0, 101), Receipt::Reordered);
        assert_eq!(l.spilled(), 0, "closed holes return the stream to its compact form");
        assert_eq!(l.receive(0, 103), Receipt::First);
    }
}
