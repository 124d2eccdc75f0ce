//! Room membership, all of it per core: each core's own members, and each core's copy of which
//! *other* cores hold members of which room (so a message is forwarded only to cores that have
//! someone to deliver to). Nothing here is shared between threads or locked.
//!
//! The copies are kept in step by presence messages: when a core gets its first member of a
//! room, or loses its last, it tells every other core through their inboxes. A joining member's
//! 101 answer waits until every other core has acknowledged its core's presence (only for the
//! first member of a room on a core), so any message sent after a client sees its connection
//! open is relayed to it.

use super::mailbox::Mailbox;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// A set of core numbers, any number of cores (one bit each, grown as needed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreSet {
    words: Vec<u64>,
}

impl CoreSet {
    pub fn insert(&mut self, core: usize) {
        let (w, b) = (core / 64, core % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << b;
    }

    pub fn remove(&mut self, core: usize) {
        if let Some(word) = self.words.get_mut(core / 64) {
            *word &= !(1 << (core % 64));
        }
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }

    pub fn contains(&self, core: usize) -> bool {
        self.words.get(core / 64).is_some_and(|w| w & (1 << (core % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The cores in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(w, &bits)| (0..64).filter(move |b| bits & (1u64 << b) != 0).map(move |b| w * 64 + b))
    }
}

/// One core's copy of which other cores hold members of each room.
#[derive(Default)]
pub struct Remote {
    rooms: HashMap<Arc<str>, CoreSet>,
}

impl Remote {
    /// Core `core` now has (or no longer has) members of `room`.
    pub fn set(&mut self, room: &Arc<str>, core: usize, present: bool) {
        if present {
            self.rooms.entry(room.clone()).or_default().insert(core);
        } else if let Some(set) = self.rooms.get_mut(room) {
            set.remove(core);
            if set.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Other cores holding members of `room`.
    pub fn cores_of(&self, room: &str) -> Option<&CoreSet> {
        self.rooms.get(room)
    }

    pub fn contains_room(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

/// One core's rooms: members by connection id (joining and leaving are O(1), also when a whole
/// room disconnects at once).
#[derive(Default)]
pub struct LocalRooms {
    rooms: HashMap<Arc<str>, HashMap<u64, Rc<Mailbox>>>,
}

impl LocalRooms {
    /// Adds a member; returns the room's shared name and whether it is the first on this core.
    pub fn join(&mut self, room: &str, id: u64, mailbox: Rc<Mailbox>) -> (Arc<str>, bool) {
        if let Some((k, members)) = self.rooms.get_key_value(room) {
            let k = k.clone();
            let first = members.is_empty();
            self.rooms.get_mut(room).expect("just found").insert(id, mailbox);
            return (k, first);
        }
        let k: Arc<str> = Arc::from(room);
        self.rooms.insert(k.clone(), HashMap::from([(id, mailbox)]));
        (k, true)
    }

    /// Removes a member; returns whether the room is now empty on this core.
    pub fn leave(&mut self, room: &str, id: u64) -> bool {
        let Some(members) = self.rooms.get_mut(room) else { return false };
        members.remove(&id);
        if members.is_empty() {
            self.rooms.remove(room);
            return true;
        }
        false
    }

    /// The members of `room` on this core, by connection id.
    pub fn members(&self, room: &str) -> impl Iterator<Item = (u64, &Rc<Mailbox>)> {
        self.rooms.get(room).into_iter().flat_map(|m| m.iter().map(|(id, mb)| (*id, mb)))
    }

    pub fn contains_room(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// Rooms with members on this core.
    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.rooms.keys()
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_sets_hold_any_number_of_cores() {
        let mut s = CoreSet::default();
        for c in [0, 63, 64, 65, 127, 1023] {
            s.insert(c);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63, 64, 65, 127, 1023]);
        assert!(s.contains(64) && !s.contains(1) && !s.contains(5000));
        // 1u64 << 64 would have wrapped onto core 0: it must not.
        s.remove(0);
        assert!(s.contains(64) && !s.contains(0));
        for c in [63, 64, 65, 127, 1023] {
            s.remove(c);
        }
        assert!(s.is_empty());
    }

    #[test]
    fn remote_tracks_cores_per_room() {
        let mut r = Remote::default();
        let a: Arc<str> = Arc::from("a");
        r.set(&a, 1, true);
        r.set(&a, 70, true);
        assert_eq!(r.cores_of("a").unwrap().iter().collect::<Vec<_>>(), vec![1, 70]);
        r.set(&a, 1, false);
        assert_eq!(r.cores_of("a").unwrap().iter().collect::<Vec<_>>(), vec![70]);
        r.set(&a, 70, false);
        assert!(r.cores_of("a").is_none() && r.is_empty());
    }

    #[test]
    fn local_rooms_join_and_leave() {
        let mut l = LocalRooms::default();
        let m = || Rc::new(Mailbox::new(4));
        assert!(l.join("r", 1, m()).1);
        assert!(!l.join("r", 2, m()).1);
        assert_eq!(l.members("r").count(), 2);
        assert!(!l.leave("r", 1));
        assert!(l.leave("r", 2));
        assert_eq!(l.members("r").count(), 0);
        assert!(l.is_empty());
    }
}
