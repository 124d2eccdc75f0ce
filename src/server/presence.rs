//! Presence epochs: how one core tells the others, in batches, which rooms it gained or lost
//! members of, and knows when all of them have taken note. Pure bookkeeping (no I/O).
//!
//! Changes accumulate in the open batch, whose number is the next epoch. The core's presence task
//! sends the batch to every other core whenever it runs (so the joins of one scheduling round
//! share one message per peer) and opens the next. Each peer applies a batch and acknowledges its
//! epoch; a peer's inbox keeps order, so its acknowledgements arrive in epoch order. An epoch is
//! acknowledged when every peer has acknowledged it and all before it. A join that needs its
//! room's presence known everywhere waits for the epoch that carried it: one round trip, shared by
//! every join of the batch, whatever the number of rooms and connections held.

use std::collections::VecDeque;
use std::sync::Arc;

/// One presence change: a room, and whether the sending core now has members of it.
pub type Change = (Arc<str>, bool);

#[derive(Debug)]
pub struct Presence {
    /// Other cores (0: every epoch is acknowledged at once).
    peers: usize,
    open: Vec<Change>,
    /// Every epoch up to this one is acknowledged by every peer.
    acked: u64,
    /// Acknowledgements still missing for epochs `acked + 1`, `acked + 2`, ... (sent batches).
    in_flight: VecDeque<usize>,
}

impl Presence {
    pub fn new(peers: usize) -> Presence {
        Presence { peers, open: Vec::new(), acked: 0, in_flight: VecDeque::new() }
    }

    /// Adds a change to the open batch; returns the epoch that will carry it.
    pub fn note(&mut self, room: Arc<str>, present: bool) -> u64 {
        if self.peers == 0 {
            return self.acked;
        }
        self.open.push((room, present));
        self.open_epoch()
    }

    /// The number the open batch will be sent as.
    pub fn open_epoch(&self) -> u64 {
        self.acked + self.in_flight.len() as u64 + 1
    }

    /// Closes the open batch for sending: its epoch and changes (`None` when it is empty).
    pub fn take_batch(&mut self) -> Option<(u64, Vec<Change>)> {
        if self.open.is_empty() {
            return None;
        }
        let epoch = self.open_epoch();
        self.in_flight.push_back(self.peers);
        Some((epoch, std::mem::take(&mut self.open)))
    }

    /// A peer acknowledged `epoch`; returns the acknowledged epoch when it moved.
    pub fn ack(&mut self, epoch: u64) -> Option<u64> {
        let i = epoch.checked_sub(self.acked + 1)?;
        let remaining = self.in_flight.get_mut(i as usize)?;
        *remaining = remaining.saturating_sub(1);
        let before = self.acked;
        while self.in_flight.front() == Some(&0) {
            self.in_flight.pop_front();
            self.acked += 1;
        }
        (self.acked > before).then_some(self.acked)
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    pub fn is_acked(&self, epoch: u64) -> bool {
        epoch <= self.acked
    }

    pub fn has_open(&self) -> bool {
        !self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn one_core_acknowledges_at_once() {
        let mut p = Presence::new(0);
        let e = p.note(room("a"), true);
        assert!(p.is_acked(e));
        assert!(p.take_batch().is_none());
    }

    #[test]
    fn changes_of_one_round_share_a_batch_and_wait_for_every_peer() {
        let mut p = Presence::new(2);
        let e1 = p.note(room("a"), true);
        let e2 = p.note(room("b"), true);
        assert_eq!((e1, e2), (1, 1));
        let (epoch, changes) = p.take_batch().unwrap();
        assert_eq!((epoch, changes.len()), (1, 2));
        assert!(p.take_batch().is_none());
        // Noted while batch 1 is out: carried by batch 2.
        assert_eq!(p.note(room("c"), false), 2);
        assert_eq!(p.ack(1), None);
        assert!(!p.is_acked(1));
        assert_eq!(p.ack(1), Some(1));
        assert!(p.is_acked(1) && !p.is_acked(2));
    }

    #[test]
    fn a_later_epoch_completes_only_after_the_earlier_ones() {
        let mut p = Presence::new(2);
        p.note(room("a"), true);
        p.take_batch().unwrap();
        p.note(room("b"), true);
        assert_eq!(p.take_batch().unwrap().0, 2);
        // Both peers acknowledge 2 (peer X has not yet acknowledged 1: cannot happen in order,
        // but the count must still hold epoch 2 back until 1 is done).
        assert_eq!(p.ack(2), None);
        assert_eq!(p.ack(2), None);
        assert_eq!(p.ack(1), None);
        assert_eq!(p.ack(1), Some(2));
        assert_eq!(p.open_epoch(), 3);
        // Stray or repeated acknowledgements change nothing.
        assert_eq!(p.ack(1), None);
        assert_eq!(p.ack(9), None);
        assert_eq!(p.acked(), 2);
    }
}
