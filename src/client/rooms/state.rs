//! One executor's state for a population (single-threaded, like `client::state`): its whole
//! communities' rooms, each room's connections joined now and its senders, and one doorbell per
//! connection (a device of a user).

use crate::client::control::Control;
use crate::client::plan::CorePlan;
use crate::client::session::PingRing;
use crate::client::state::{SenderState, Slot};
use crate::client::target::Target;
use crate::measure::stats::CoreStats;
use crate::population::Shared;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// A room of one of the core's communities.
pub struct Room {
    pub id: u32,
    /// Connections joined in it now: every one is owed each message sent in it (but the
    /// sending connection itself).
    pub open: Cell<u32>,
    /// Its senders, the room's first members (`Population::senders`), are
    /// `RoomsCtx::senders[first_sender..first_sender + n_senders]`: one table for the core rather
    /// than an allocation per room (a direct message's room is 16 bytes plus its senders).
    first_sender: u32,
    n_senders: u32,
}

/// One connection: a device of a user.
pub struct Conn {
    pub user: u32,
    /// 0 for the user's first device, which is the one that sends.
    pub device: u32,
    pub slot: Slot,
}

/// The rooms of one community on this core: global `first..first + len` are local
/// `base..base + len`.
#[derive(Clone, Copy)]
struct Block {
    first: u32,
    len: u32,
    base: u32,
}

pub struct RoomsCtx {
    pub plan: CorePlan,
    pub pop: Shared,
    pub target: Arc<Target>,
    pub control: Arc<Control>,
    pub stats: RefCell<CoreStats>,
    blocks: Vec<Block>,
    pub rooms: Vec<Room>,
    /// Every room's senders, room after room (see [`RoomsCtx::senders`]).
    senders_table: Vec<SenderState>,
    pub conns: Vec<Conn>,
    pub sending_over: Cell<bool>,
    pub marker_buf: RefCell<String>,
    pub read_buf: RefCell<Vec<u8>>,
    /// Messages due but not yet written, over the core's senders.
    pub backlog: Cell<u64>,
    pub closing: Cell<bool>,
    pub live: Cell<u64>,
    pub connecting: Cell<u64>,
    pub ramp_over: Cell<bool>,
    pub ping: Option<PingRing>,
    pub scratch: RefCell<String>,
    pub closing_slots: glommio::sync::Semaphore,
}

impl RoomsCtx {
    /// A room's senders.
    pub fn senders(&self, room: &Room) -> &[SenderState] {
        &self.senders_table[room.first_sender as usize..(room.first_sender + room.n_senders) as usize]
    }

    /// Every sender of the core's rooms.
    pub fn all_senders(&self) -> &[SenderState] {
        &self.senders_table
    }

    pub fn new(
        plan: CorePlan,
        pop: Shared,
        target: Arc<Target>,
        control: Arc<Control>,
        ping: Option<PingRing>,
    ) -> Self {
        // Sized once: the tables are the core's largest, and growing them by doubling would hold
        // the old copy and the new at once.
        let communities = plan.communities.iter().map(|&c| pop.communities[c as usize]);
        let n_rooms: usize = communities.clone().map(|cm| cm.rooms as usize).sum();
        let n_senders: usize = communities
            .clone()
            .flat_map(|cm| cm.first_room..cm.first_room + cm.rooms)
            .map(|r| pop.senders(r) as usize)
            .sum();
        let n_conns: usize =
            communities.flat_map(|cm| cm.first_user..cm.first_user + cm.users).map(|u| pop.devices(u).len()).sum();
        let mut blocks = Vec::with_capacity(plan.communities.len());
        let mut rooms = Vec::with_capacity(n_rooms);
        let mut senders_table = Vec::with_capacity(n_senders);
        let mut conns = Vec::with_capacity(n_conns);
        for &c in &plan.communities {
            let cm = pop.communities[c as usize];
            blocks.push(Block { first: cm.first_room, len: cm.rooms, base: rooms.len() as u32 });
            for r in cm.first_room..cm.first_room + cm.rooms {
                let n = pop.senders(r);
                rooms.push(Room { id: r, open: Cell::new(0), first_sender: senders_table.len() as u32, n_senders: n });
                senders_table.extend((0..n).map(|_| SenderState::default()));
            }
            for u in cm.first_user..cm.first_user + cm.users {
                for device in 0..pop.devices(u).len() as u32 {
                    conns.push(Conn { user: u, device, slot: Slot::default() });
                }
            }
        }
        blocks.sort_by_key(|b| b.first);
        RoomsCtx {
            plan,
            pop,
            target,
            control,
            stats: RefCell::new(CoreStats::default()),
            blocks,
            rooms,
            senders_table,
            conns,
            sending_over: Cell::new(false),
            marker_buf: RefCell::new(String::new()),
            read_buf: RefCell::new(Vec::new()),
            backlog: Cell::new(0),
            closing: Cell::new(false),
            live: Cell::new(0),
            connecting: Cell::new(0),
            ramp_over: Cell::new(false),
            ping,
            scratch: RefCell::new(String::new()),
            closing_slots: glommio::sync::Semaphore::new(crate::client::conn::CLOSING_AT_ONCE),
        }
    }

    /// The local index of global room `room`, if one of this core's communities holds it.
    pub fn local(&self, room: u32) -> Option<usize> {
        let i = self.blocks.partition_point(|b| b.first + b.len <= room);
        let b = self.blocks.get(i)?;
        (room >= b.first && room < b.first + b.len).then(|| (b.base + room - b.first) as usize)
    }

    /// The local connection of user `user`'s first device, if this core holds the user.
    pub fn conn_of(&self, user: u32) -> Option<usize> {
        let i = self.conns.partition_point(|c| c.user < user);
        self.conns.get(i).filter(|c| c.user == user).map(|_| i)
    }

    pub fn nudge(&self) {
        self.control.ring(self.plan.idx);
    }

    pub fn connect_settled(&self) {
        self.connecting.set(self.connecting.get() - 1);
        if self.connecting.get() == 0 && self.ramp_over.get() {
            self.nudge();
        }
    }

    /// Raises a sender's due count, keeping the core's backlog in step.
    pub fn set_due(&self, st: &SenderState, due: u64) {
        st.raise_due(due, &self.backlog);
    }

    /// A sender's connection joined its rooms or left them: its unsent messages join or leave
    /// the backlog.
    pub fn set_connected(&self, st: &SenderState, connected: bool) {
        st.set_connected(connected, &self.backlog);
    }

    pub fn wake_all(&self) {
        for c in &self.conns {
            c.slot.wake();
        }
    }
}
