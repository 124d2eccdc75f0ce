//! Room membership: each core's local members, and the node-wide registry of which cores hold
//! members of which room (so a message is forwarded only to cores that have someone to deliver to).
//!
//! A member is registered before its 101 answer is written, so any message sent after a client
//! sees its connection open is relayed to it.

use super::mailbox::Mailbox;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// Which cores hold members of each room (bit i = core i; at most 64 cores per server).
#[derive(Default)]
pub struct Registry {
    rooms: Mutex<HashMap<Arc<str>, u64>>,
}

impl Registry {
    pub fn set(&self, room: &Arc<str>, core: usize, present: bool) {
        let mut m = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let bit = 1u64 << core;
        if present {
            *m.entry(room.clone()).or_insert(0) |= bit;
        } else if let Some(mask) = m.get_mut(room) {
            *mask &= !bit;
            if *mask == 0 {
                m.remove(room);
            }
        }
    }

    pub fn cores_of(&self, room: &str) -> u64 {
        let m = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        m.get(room).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Member {
    pub id: u64,
    pub mailbox: Rc<Mailbox>,
}

/// One core's rooms.
#[derive(Default)]
pub struct LocalRooms {
    rooms: HashMap<Arc<str>, Vec<Member>>,
}

impl LocalRooms {
    /// Adds a member; returns the room's shared name and whether it is the first on this core.
    pub fn join(&mut self, room: &str, m: Member) -> (Arc<str>, bool) {
        if let Some(v) = self.rooms.get_mut(room) {
            v.push(m);
            let (k, _) = self.rooms.get_key_value(room).expect("just found");
            return (k.clone(), false);
        }
        let k: Arc<str> = Arc::from(room);
        self.rooms.insert(k.clone(), vec![m]);
        (k, true)
    }

    /// Removes a member; returns whether the room is now empty on this core.
    pub fn leave(&mut self, room: &str, id: u64) -> bool {
        let Some(v) = self.rooms.get_mut(room) else { return false };
        v.retain(|m| m.id != id);
        if v.is_empty() {
            self.rooms.remove(room);
            return true;
        }
        false
    }

    pub fn members(&self, room: &str) -> &[Member] {
        self.rooms.get(room).map(|v| v.as_slice()).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_tracks_cores_per_room() {
        let r = Registry::default();
        let a: Arc<str> = Arc::from("a");
        r.set(&a, 0, true);
        r.set(&a, 3, true);
        assert_eq!(r.cores_of("a"), 0b1001);
        r.set(&a, 0, false);
        assert_eq!(r.cores_of("a"), 0b1000);
        r.set(&a, 3, false);
        assert_eq!((r.cores_of("a"), r.len()), (0, 0));
    }

    #[test]
    fn local_rooms_join_and_leave() {
        let mut l = LocalRooms::default();
        let m = |id| Member { id, mailbox: Rc::new(Mailbox::new(4)) };
        assert!(l.join("r", m(1)).1);
        assert!(!l.join("r", m(2)).1);
        assert_eq!(l.members("r").len(), 2);
        assert!(!l.leave("r", 1));
        assert!(l.leave("r", 2));
        assert!(l.members("r").is_empty());
    }
}
