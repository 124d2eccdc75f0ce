//! One core's membership registry: its connections, the rooms they are in, and its copy of which
//! *other* cores hold members of each room (so a message is forwarded only to cores that have
//! someone to deliver to). Nothing here is shared between threads or locked; nothing here waits.
//!
//! Every operation costs what the one connection or room it touches holds, never what the core
//! holds: a join or leave is one hash lookup of the room's name plus a binary search in the
//! connection's own room list; a disconnect repeats that for each of its rooms. Memberships are
//! small: a room lists its members as 4-byte connection slots, and a connection lists its rooms
//! as (room slot, position in that room's list) pairs of 8 bytes, sorted by room, so that leaving
//! is a swap-remove and the member moved into the hole has its position fixed by one binary
//! search. 12 bytes per membership (plus vector slack), and per room its name, its member list and
//! its set of other cores.

use slab::Slab;
use std::collections::HashMap;
use std::sync::Arc;

/// A set of core numbers, any number of cores (one bit each; the first 64 without allocating).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreSet {
    low: u64,
    high: Vec<u64>,
}

impl CoreSet {
    pub fn insert(&mut self, core: usize) {
        if core < 64 {
            self.low |= 1 << core;
            return;
        }
        let w = core / 64 - 1;
        if self.high.len() <= w {
            self.high.resize(w + 1, 0);
        }
        self.high[w] |= 1 << (core % 64);
    }

    pub fn remove(&mut self, core: usize) {
        if core < 64 {
            self.low &= !(1 << core);
            return;
        }
        if let Some(word) = self.high.get_mut(core / 64 - 1) {
            *word &= !(1 << (core % 64));
        }
        while self.high.last() == Some(&0) {
            self.high.pop();
        }
    }

    pub fn contains(&self, core: usize) -> bool {
        if core < 64 {
            return self.low & (1 << core) != 0;
        }
        self.high.get(core / 64 - 1).is_some_and(|w| w & (1 << (core % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.low == 0 && self.high.is_empty()
    }

    /// The cores in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.low)
            .chain(self.high.iter().copied())
            .enumerate()
            .flat_map(|(w, bits)| (0..64).filter(move |b| bits & (1u64 << b) != 0).map(move |b| w * 64 + b))
    }
}

/// A connection's slot in its core's registry.
pub type Slot = u32;

/// One room as one core sees it.
pub struct Room {
    pub name: Arc<str>,
    /// This core's members.
    members: Vec<Slot>,
    /// Other cores holding members.
    pub remote: CoreSet,
    /// The presence epoch that told the other cores about this core's members (see
    /// `presence.rs`); a join is effective everywhere once that epoch is acknowledged.
    pub announced: u64,
}

/// One connection: what the core delivers to (`M`, its mailbox) and the rooms it is in.
pub struct Conn<M> {
    pub mailbox: M,
    /// (room slot, position in that room's `members`), sorted by room slot.
    rooms: Vec<(u32, u32)>,
    /// The latest presence epoch one of its replies waits for: later replies wait for it too, so
    /// that they reach the client in the order the client asked.
    pub reply_epoch: u64,
}

/// What a join changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Joined {
    pub room: u32,
    /// False when the connection was already a member (nothing changed).
    pub added: bool,
    /// The room had no member on this core before: the other cores must be told.
    pub first_on_core: bool,
}

pub struct Registry<M> {
    names: HashMap<Arc<str>, u32>,
    rooms: Slab<Room>,
    conns: Slab<Conn<M>>,
}

impl<M> Default for Registry<M> {
    fn default() -> Registry<M> {
        Registry::new()
    }
}

impl<M> Registry<M> {
    pub fn new() -> Registry<M> {
        Registry { names: HashMap::new(), rooms: Slab::new(), conns: Slab::new() }
    }

    /// A new connection in no room.
    pub fn open(&mut self, mailbox: M) -> Slot {
        self.conns.insert(Conn { mailbox, rooms: Vec::new(), reply_epoch: 0 }) as Slot
    }

    /// Removes a connection and all its memberships; returns its mailbox and the rooms it was the
    /// last member of on this core (the other cores must be told).
    pub fn close(&mut self, slot: Slot) -> (M, Vec<Arc<str>>) {
        let conn = self.conns.remove(slot as usize);
        let mut emptied = Vec::new();
        for &(room, pos) in &conn.rooms {
            if self.remove_member(room, pos) {
                emptied.push(self.rooms[room as usize].name.clone());
            }
            self.drop_if_unused(room);
        }
        (conn.mailbox, emptied)
    }

    pub fn conn(&self, slot: Slot) -> &Conn<M> {
        &self.conns[slot as usize]
    }

    pub fn conn_mut(&mut self, slot: Slot) -> &mut Conn<M> {
        &mut self.conns[slot as usize]
    }

    /// Every connection's mailbox (for shutdown).
    pub fn mailboxes(&self) -> impl Iterator<Item = &M> {
        self.conns.iter().map(|(_, c)| &c.mailbox)
    }

    /// Makes `slot` a member of `name`.
    pub fn join(&mut self, slot: Slot, name: &str) -> Joined {
        let room = self.room_slot(name);
        let rooms = &mut self.conns[slot as usize].rooms;
        let at = match rooms.binary_search_by_key(&room, |e| e.0) {
            Ok(_) => return Joined { room, added: false, first_on_core: false },
            Err(at) => at,
        };
        let members = &mut self.rooms[room as usize].members;
        rooms.insert(at, (room, members.len() as u32));
        members.push(slot);
        Joined { room, added: true, first_on_core: members.len() == 1 }
    }

    /// Ends `slot`'s membership of `name`: `None` if it was not a member, else whether it was the
    /// last member on this core (the other cores must be told) and the room's shared name.
    pub fn leave(&mut self, slot: Slot, name: &str) -> Option<(bool, Arc<str>)> {
        let room = self.member_of(slot, name)?;
        let rooms = &mut self.conns[slot as usize].rooms;
        let at = rooms.binary_search_by_key(&room, |e| e.0).ok()?;
        let (_, pos) = rooms.remove(at);
        let last = self.remove_member(room, pos);
        let name = self.rooms[room as usize].name.clone();
        self.drop_if_unused(room);
        Some((last, name))
    }

    /// The room's slot if `slot` is a member of `name`.
    pub fn member_of(&self, slot: Slot, name: &str) -> Option<u32> {
        let room = *self.names.get(name)?;
        let rooms = &self.conns[slot as usize].rooms;
        rooms.binary_search_by_key(&room, |e| e.0).ok().map(|_| room)
    }

    /// How many rooms `slot` is in.
    pub fn rooms_of(&self, slot: Slot) -> usize {
        self.conns[slot as usize].rooms.len()
    }

    pub fn room(&self, room: u32) -> &Room {
        &self.rooms[room as usize]
    }

    pub fn room_mut(&mut self, room: u32) -> &mut Room {
        &mut self.rooms[room as usize]
    }

    /// The slot of room `name`, if any core holds members of it (as this core knows).
    pub fn slot_of(&self, name: &str) -> Option<u32> {
        self.names.get(name).copied()
    }

    pub fn find(&self, name: &str) -> Option<&Room> {
        self.names.get(name).map(|&r| &self.rooms[r as usize])
    }

    /// The members of room `room` on this core, by slot, with their mailboxes.
    pub fn members(&self, room: u32) -> impl Iterator<Item = (Slot, &M)> {
        let r = self.rooms.get(room as usize);
        r.into_iter().flat_map(|r| r.members.iter().map(|&s| (s, &self.conns[s as usize].mailbox)))
    }

    /// Core `core` now has (or no longer has) members of `name`.
    pub fn set_remote(&mut self, name: &Arc<str>, core: usize, present: bool) {
        if present {
            let room = self.room_slot_shared(name);
            self.rooms[room as usize].remote.insert(core);
        } else if let Some(&room) = self.names.get(&**name) {
            self.rooms[room as usize].remote.remove(core);
            self.drop_if_unused(room);
        }
    }

    /// Rooms with members on this core or, as far as this core knows, on another.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn room_slot(&mut self, name: &str) -> u32 {
        match self.names.get(name) {
            Some(&r) => r,
            None => self.insert_room(Arc::from(name)),
        }
    }

    fn room_slot_shared(&mut self, name: &Arc<str>) -> u32 {
        match self.names.get(&**name) {
            Some(&r) => r,
            None => self.insert_room(name.clone()),
        }
    }

    fn insert_room(&mut self, name: Arc<str>) -> u32 {
        let r = self.rooms.insert(Room {
            name: name.clone(),
            members: Vec::new(),
            remote: CoreSet::default(),
            announced: 0,
        }) as u32;
        self.names.insert(name, r);
        r
    }

    /// Swap-removes position `pos` of `room`'s members; returns whether the room is now empty on
    /// this core.
    fn remove_member(&mut self, room: u32, pos: u32) -> bool {
        let members = &mut self.rooms[room as usize].members;
        members.swap_remove(pos as usize);
        if let Some(&moved) = members.get(pos as usize) {
            let list = &mut self.conns[moved as usize].rooms;
            if let Ok(i) = list.binary_search_by_key(&room, |e| e.0) {
                list[i].1 = pos;
            }
        }
        if members.is_empty() {
            // Give back what a crowd took.
            *members = Vec::new();
            return true;
        }
        if members.capacity() > 4 * members.len() {
            members.shrink_to(2 * members.len());
        }
        false
    }

    /// Forgets a room nobody on any core is in.
    fn drop_if_unused(&mut self, room: u32) {
        let r = &self.rooms[room as usize];
        if r.members.is_empty() && r.remote.is_empty() {
            let r = self.rooms.remove(room as usize);
            self.names.remove(&r.name);
        }
    }
}

#[cfg(test)]
#[path = "rooms_tests.rs"]
mod tests;
