//! Generating a population from its spec and the run's seed: communities, each user's devices,
//! rooms and their members, and the two membership tables (room -> members, user -> rooms) as
//! compact CSR arrays of `u32`.
//!
//! Each community draws from its own random stream (`Rng::new(seed, community)`), so the
//! population is the same on every node given the same spec and seed, whatever the node's cores.

use super::config::PopulationSpec;
use super::rng::{Rng, Sampler};
use crate::error::{Error, Result};

/// A block of users and the rooms among them (ids are contiguous per community).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Community {
    pub first_user: u32,
    pub users: u32,
    pub first_room: u32,
    pub rooms: u32,
}

/// Users, their devices, rooms and memberships. Every id is a `u32` index.
#[derive(Clone, Debug, PartialEq)]
pub struct Population {
    pub spec: PopulationSpec,
    pub communities: Vec<Community>,
    /// User `u`'s connections are `dev_off[u]..dev_off[u + 1]` (one per device).
    pub dev_off: Vec<u32>,
    /// Each room's class (index into `spec.classes`).
    pub room_class: Vec<u8>,
    /// Room `r`'s members are `members[room_off[r]..room_off[r + 1]]`, in random order: the
    /// first `senders(r)` of them send.
    pub room_off: Vec<u32>,
    pub members: Vec<u32>,
    /// User `u`'s rooms are `user_rooms[user_off[u]..user_off[u + 1]]`, ascending.
    pub user_off: Vec<u32>,
    pub user_rooms: Vec<u32>,
}

/// `total` spread over the users `start..end` of `users` in proportion, so that the parts over
/// consecutive blocks add up to `total` exactly.
fn part(total: u32, start: u32, end: u32, users: u32) -> u32 {
    let at = |u: u32| (total as u64 * u as u64 / users as u64) as u32;
    at(end) - at(start)
}

/// Generates the population `spec` describes, deterministically from `seed`.
pub fn generate(spec: &PopulationSpec, seed: u64) -> Result<Population> {
    let users = spec.users;
    let n_comms = users.div_ceil(spec.community);
    let sizes: Vec<Sampler> = spec.classes.iter().map(|c| Sampler::new(&c.size)).collect();
    let devices = Sampler::new(&spec.devices);
    // Rooms and memberships first, from the counts alone: the tables are allocated once.
    let mut communities = Vec::with_capacity(n_comms as usize);
    let (mut first_room, mut first_user) = (0u64, 0u32);
    for c in 0..n_comms {
        let n = users / n_comms + u32::from(c < users % n_comms);
        let rooms: u64 = spec.classes.iter().map(|k| part(k.rooms, first_user, first_user + n, users) as u64).sum();
        communities.push(Community { first_user, users: n, first_room: first_room as u32, rooms: rooms as u32 });
        first_room += rooms;
        first_user += n;
        if first_room >= u32::MAX as u64 {
            return Err(Error::Usage("population: more than 2^32 rooms".into()));
        }
    }
    // Sized from the mean room size; trimmed to what was drawn at the end.
    let expected: f64 = spec.classes.iter().zip(&sizes).map(|(k, s)| k.rooms as f64 * s.mean()).sum();
    let mut pop = Population {
        spec: spec.clone(),
        communities,
        dev_off: Vec::with_capacity(users as usize + 1),
        room_class: Vec::with_capacity(first_room as usize),
        room_off: Vec::with_capacity(first_room as usize + 1),
        members: Vec::with_capacity((expected * 1.01).min(u32::MAX as f64) as usize),
        user_off: Vec::new(),
        user_rooms: Vec::new(),
    };
    pop.dev_off.push(0);
    pop.room_off.push(0);
    let mut perm: Vec<u32> = Vec::new();
    let mut conns = 0u64;
    for ci in 0..pop.communities.len() {
        let comm = pop.communities[ci];
        let mut rng = Rng::new(seed, ci as u64);
        for _ in 0..comm.users {
            conns += devices.draw(&mut rng) as u64;
            if conns > u32::MAX as u64 {
                return Err(Error::Usage("population: more than 2^32 connections".into()));
            }
            pop.dev_off.push(conns as u32);
        }
        // Members are drawn by a partial Fisher-Yates shuffle of the community's users: a
        // uniform sample without repeats in O(size) per room, whatever the room's share.
        perm.clear();
        perm.extend(0..comm.users);
        let end = comm.first_user + comm.users;
        for (k, class) in spec.classes.iter().enumerate() {
            for _ in 0..part(class.rooms, comm.first_user, end, users) {
                // A room never holds more than its community (the last communities may be a
                // user smaller than `community`).
                let size = sizes[k].draw(&mut rng).min(comm.users);
                for i in 0..size {
                    let j = i + rng.below(comm.users - i);
                    perm.swap(i as usize, j as usize);
                    pop.members.push(comm.first_user + perm[i as usize]);
                }
                if pop.members.len() >= u32::MAX as usize {
                    return Err(Error::Usage("population: more than 2^32 memberships".into()));
                }
                pop.room_off.push(pop.members.len() as u32);
                pop.room_class.push(k as u8);
            }
        }
    }
    pop.members.shrink_to_fit();
    transpose(&mut pop);
    Ok(pop)
}

/// Builds user -> rooms from room -> members (a counting sort: rooms come out ascending).
fn transpose(pop: &mut Population) {
    let users = pop.spec.users as usize;
    let mut off = vec![0u32; users + 1];
    for &m in &pop.members {
        off[m as usize + 1] += 1;
    }
    for u in 0..users {
        off[u + 1] += off[u];
    }
    let mut fill = off.clone();
    let mut rooms = vec![0u32; pop.members.len()];
    for r in 0..pop.room_class.len() {
        for &m in &pop.members[pop.room_off[r] as usize..pop.room_off[r + 1] as usize] {
            let at = &mut fill[m as usize];
            rooms[*at as usize] = r as u32;
            *at += 1;
        }
    }
    pop.user_off = off;
    pop.user_rooms = rooms;
}

impl Population {
    pub fn users(&self) -> u32 {
        self.spec.users
    }

    pub fn rooms(&self) -> u32 {
        self.room_class.len() as u32
    }

    /// Connections: one per device of every user.
    pub fn connections(&self) -> u32 {
        *self.dev_off.last().unwrap_or(&0)
    }

    /// (user, room) memberships.
    pub fn memberships(&self) -> u64 {
        self.members.len() as u64
    }

    pub fn members(&self, room: u32) -> &[u32] {
        &self.members[self.room_off[room as usize] as usize..self.room_off[room as usize + 1] as usize]
    }

    pub fn rooms_of(&self, user: u32) -> &[u32] {
        &self.user_rooms[self.user_off[user as usize] as usize..self.user_off[user as usize + 1] as usize]
    }

    /// User `user`'s connection ids.
    pub fn devices(&self, user: u32) -> std::ops::Range<u32> {
        self.dev_off[user as usize]..self.dev_off[user as usize + 1]
    }

    pub fn class_of(&self, room: u32) -> &super::config::ClassSpec {
        &self.spec.classes[self.room_class[room as usize] as usize]
    }

    /// How many of the room's members send: its class's share (at least one), or one. The
    /// senders are its first members (in the room's random member order).
    pub fn senders(&self, room: u32) -> u32 {
        let size = self.members(room).len() as u32;
        match self.class_of(room).senders {
            None => size.min(1),
            Some(share) => ((share * size as f64).round() as u32).clamp(1, size.max(1)),
        }
    }

    /// Receiving connections of one message in `room` when every device is connected: every
    /// device of every member except the sending device (the sender's other devices receive).
    pub fn fanout(&self, room: u32) -> u64 {
        let devs: u64 = self.members(room).iter().map(|&u| self.devices(u).len() as u64).sum();
        devs.saturating_sub(1)
    }

    /// The community a user belongs to (communities are contiguous blocks of users).
    pub fn community_of_user(&self, user: u32) -> u32 {
        self.communities.partition_point(|c| c.first_user + c.users <= user) as u32
    }

    /// The community a room belongs to.
    pub fn community_of_room(&self, room: u32) -> u32 {
        self.communities.partition_point(|c| c.first_room + c.rooms <= room) as u32
    }

    /// Heap bytes of the tables (capacity, not length: what the process holds).
    pub fn heap_bytes(&self) -> usize {
        let u32s = self.dev_off.capacity()
            + self.room_off.capacity()
            + self.members.capacity()
            + self.user_off.capacity()
            + self.user_rooms.capacity();
        u32s * 4 + self.room_class.capacity() + self.communities.capacity() * std::mem::size_of::<Community>()
    }
}
