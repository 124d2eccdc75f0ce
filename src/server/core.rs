//! One server executor's state: its membership registry, its presence epochs, fault injection,
//! and relaying to other cores through their inboxes (one bounded inbox per core, so nothing grows
//! with cores squared). The executor's task loop that accepts connections is in `worker.rs`;
//! connections (`conn.rs`) use this state.
//!
//! Joins, leaves and disconnects change the registry at once and note presence changes; the
//! presence task (`presence_task`) sends them in batches. What must wait until a membership is
//! effective on every core (a `/conv/` connection's 101, a `joined` answer) waits for its epoch
//! in `waiting`, released when the epoch is acknowledged.

use super::mailbox::{Mailbox, Offer, Outgoing};
use super::metrics::{add, inc, CoreCounters};
use super::presence::{Change, Presence};
use super::rooms::{Registry, Slot};
use super::Shared;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;
use tungstenite::Utf8Bytes;

/// What one core sends another.
pub enum Msg {
    /// A message for the receiving core's members of `room`.
    Relay {
        room: Arc<str>,
        text: Utf8Bytes,
        recv_ns: u64,
    },
    /// Core `from`'s presence batch `epoch`: rooms it now has (or no longer has) members of, in
    /// the order they changed. The receiver applies it and acknowledges the epoch to `from`.
    Presence {
        from: usize,
        epoch: u64,
        changes: Arc<[Change]>,
    },
    Ack {
        epoch: u64,
    },
}

/// Relays a core may queue for another before waiting (per receiving core).
pub const INBOX_CAP: usize = 16 * 1024;

/// A flag set once on this core, with the task waiting for it.
#[derive(Default)]
pub struct LocalFlag {
    set: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl LocalFlag {
    pub fn set(&self) {
        self.set.set(true);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.set.get() {
                return Poll::Ready(());
            }
            let mut w = self.waiters.borrow_mut();
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// What waits for a presence epoch to be acknowledged.
enum Waiting {
    /// An answer for a connection (`joined`, and anything it asked after).
    Reply(Rc<Mailbox>, Utf8Bytes),
    /// A `/conv/` connection's 101.
    Upgrade(Rc<LocalFlag>),
}

pub struct Core {
    pub idx: usize,
    pub shared: Arc<Shared>,
    pub reg: RefCell<Registry<Rc<Mailbox>>>,
    presence: RefCell<Presence>,
    /// By epoch: what is released once that epoch is acknowledged.
    waiting: RefCell<BTreeMap<u64, Vec<Waiting>>>,
    /// The presence task, woken when a change is noted.
    presence_task: crate::runtime::net::waker::WakerSlot,
    deliveries: Cell<u64>,
    /// The server is stopping: the accept loop ends and connections close.
    pub stopping: LocalFlag,
}

impl Core {
    /// A core with no connections and no rooms yet.
    pub fn new(idx: usize, shared: Arc<Shared>) -> Core {
        let peers = shared.inboxes.len() - 1;
        Core {
            idx,
            shared,
            reg: RefCell::new(Registry::new()),
            presence: RefCell::new(Presence::new(peers)),
            waiting: RefCell::new(BTreeMap::new()),
            presence_task: Default::default(),
            deliveries: Cell::new(0),
            stopping: LocalFlag::default(),
        }
    }

    pub fn counters(&self) -> &CoreCounters {
        &self.shared.counters[self.idx]
    }

    /// Open connections on this core.
    pub fn live(&self) -> usize {
        self.reg.borrow().connections()
    }

    /// Registers a new connection (in no room yet).
    pub fn open(&self, mailbox: Rc<Mailbox>) -> Slot {
        inc(&self.counters().connections_opened);
        self.reg.borrow_mut().open(mailbox)
    }

    /// Ends a connection and all its memberships.
    pub fn close(&self, slot: Slot) {
        let (_, emptied) = self.reg.borrow_mut().close(slot);
        for room in emptied {
            self.note(room, false);
        }
        self.publish_rooms();
        inc(&self.counters().connections_closed);
    }

    /// Makes `slot` a member of `name` at once on this core; returns the room's slot and the
    /// epoch after which the membership is effective on every core too.
    pub fn join(&self, slot: Slot, name: &str) -> (u32, u64) {
        let mut reg = self.reg.borrow_mut();
        let j = reg.join(slot, name);
        if j.first_on_core {
            let room = reg.room(j.room).name.clone();
            drop(reg);
            let epoch = self.note(room, true);
            self.reg.borrow_mut().room_mut(j.room).announced = epoch;
            self.publish_rooms();
            return (j.room, epoch);
        }
        (j.room, reg.room(j.room).announced)
    }

    /// Ends `slot`'s membership of `name` (nothing if it was not a member).
    pub fn leave(&self, slot: Slot, name: &str) {
        let left = self.reg.borrow_mut().leave(slot, name);
        if let Some((last, room)) = left {
            if last {
                self.note(room, false);
            }
            self.publish_rooms();
        }
    }

    /// The room's slot if `slot` is a member of `name`.
    pub fn member_of(&self, slot: Slot, name: &str) -> Option<u32> {
        self.reg.borrow().member_of(slot, name)
    }

    fn note(&self, room: Arc<str>, present: bool) -> u64 {
        let epoch = self.presence.borrow_mut().note(room, present);
        self.presence_task.wake();
        epoch
    }

    /// Queues an answer for `slot` once `epoch` is acknowledged and after every answer it was
    /// given before.
    pub fn reply(&self, slot: Slot, epoch: u64, text: Utf8Bytes) {
        let mut reg = self.reg.borrow_mut();
        let conn = reg.conn_mut(slot);
        let epoch = epoch.max(conn.reply_epoch);
        if self.presence.borrow().is_acked(epoch) {
            let mailbox = conn.mailbox.clone();
            drop(reg);
            self.offer_reply(&mailbox, text);
            return;
        }
        conn.reply_epoch = epoch;
        let w = Waiting::Reply(conn.mailbox.clone(), text);
        self.waiting.borrow_mut().entry(epoch).or_default().push(w);
    }

    fn offer_reply(&self, mailbox: &Mailbox, text: Utf8Bytes) {
        match mailbox.offer(Outgoing { text, due_ns: 0, reply: true }) {
            Offer::Queued => {}
            Offer::Overflow(lost) => add(&self.counters().dropped_slow, lost as u64),
            Offer::Discarded => inc(&self.counters().dropped_slow),
        }
    }

    /// Waits until `epoch` is acknowledged by every other core (or the server stops).
    pub async fn effective(&self, epoch: u64) {
        if self.presence.borrow().is_acked(epoch) || self.stopping.is_set() {
            return;
        }
        // Not raced with `stopping.wait()`: that would leave a waker per join in the stop flag;
        // `stop` releases every waiter instead.
        let flag = Rc::new(LocalFlag::default());
        self.waiting.borrow_mut().entry(epoch).or_default().push(Waiting::Upgrade(flag.clone()));
        flag.wait().await
    }

    /// The server is stopping: the accept loop ends, and whatever waits for an epoch goes on
    /// (its connection then closes).
    pub fn stop(&self) {
        self.stopping.set();
        self.release(u64::MAX - 1);
    }

    /// Sends the open presence batch to every other core whenever there is one, until the
    /// server stops. The changes noted while it waited to run share one message per peer.
    pub async fn presence_task(&self) {
        loop {
            let go = std::future::poll_fn(|cx| {
                if self.stopping.is_set() {
                    return Poll::Ready(false);
                }
                if self.presence.borrow().has_open() {
                    return Poll::Ready(true);
                }
                self.presence_task.register(cx.waker());
                Poll::Pending
            })
            .await;
            if !go {
                return;
            }
            let Some((epoch, changes)) = self.presence.borrow_mut().take_batch() else { continue };
            let changes: Arc<[Change]> = changes.into();
            // Presence and acknowledgements are few and must keep their order: they bypass the cap.
            for (peer, ib) in self.shared.inboxes.iter().enumerate() {
                if peer != self.idx {
                    ib.push_always(Msg::Presence { from: self.idx, epoch, changes: changes.clone() });
                }
            }
        }
    }

    /// Relays a frame received from `from`, a member of room `room`: to local members, then to
    /// the cores that hold other members.
    pub async fn relay(&self, room: u32, from: Slot, text: Utf8Bytes) {
        inc(&self.counters().messages_received);
        let recv_ns = crate::measure::clock::now_ns();
        let exclude = if self.shared.cfg.echo { None } else { Some(from) };
        self.deliver_local(room, exclude, &text, recv_ns);
        // Queued without waiting where there is room; only a full inbox makes this task wait.
        let mut blocked = Vec::new();
        {
            let reg = self.reg.borrow();
            let r = reg.room(room);
            for peer in r.remote.iter() {
                let m = Msg::Relay { room: r.name.clone(), text: text.clone(), recv_ns };
                if let Err(m) = self.shared.inboxes[peer].push(m) {
                    blocked.push((peer, m));
                }
            }
        }
        for (peer, mut m) in blocked {
            // The peer is behind: wait for room rather than drop (the sender's reads slow down,
            // and TCP pushes back on it).
            loop {
                crate::runtime::net::idle::sleep(Duration::from_micros(200)).await;
                match self.shared.inboxes[peer].push(m) {
                    Ok(()) => break,
                    Err(back) => m = back,
                }
                if self.stopping.is_set() {
                    break;
                }
            }
        }
    }

    /// Queues a frame for every local member of `room` but `exclude`, applying fault injection.
    pub fn deliver_local(&self, room: u32, exclude: Option<Slot>, text: &Utf8Bytes, recv_ns: u64) {
        let f = &self.shared.cfg.faults;
        let due_ns = if f.delay.is_zero() { 0 } else { recv_ns + f.delay.as_nanos() as u64 };
        let reg = self.reg.borrow();
        for (slot, mailbox) in reg.members(room) {
            if Some(slot) == exclude {
                continue;
            }
            let n = self.deliveries.get() + 1;
            self.deliveries.set(n);
            if f.drop_every > 0 && n % f.drop_every == 0 {
                inc(&self.counters().dropped_fault);
                continue;
            }
            let copies = if f.duplicate_every > 0 && n % f.duplicate_every == 0 { 2 } else { 1 };
            for copy in 0..copies {
                match mailbox.offer(Outgoing { text: text.clone(), due_ns, reply: false }) {
                    Offer::Queued if copy == 1 => inc(&self.counters().duplicated_fault),
                    Offer::Queued => {}
                    Offer::Overflow(lost) => add(&self.counters().dropped_slow, lost as u64),
                    Offer::Discarded => inc(&self.counters().dropped_slow),
                }
            }
        }
    }

    /// Handles what other cores sent.
    pub fn on_message(&self, m: Msg) {
        match m {
            Msg::Relay { room, text, recv_ns } => {
                let slot = self.reg.borrow().slot_of(&room);
                if let Some(slot) = slot {
                    self.deliver_local(slot, None, &text, recv_ns);
                }
            }
            Msg::Presence { from, epoch, changes } => {
                {
                    let mut reg = self.reg.borrow_mut();
                    for (room, present) in changes.iter() {
                        reg.set_remote(room, from, *present);
                    }
                }
                self.publish_rooms();
                self.shared.inboxes[from].push_always(Msg::Ack { epoch });
            }
            Msg::Ack { epoch } => {
                let acked = self.presence.borrow_mut().ack(epoch);
                if let Some(acked) = acked {
                    self.release(acked);
                }
            }
        }
    }

    /// Releases what waited for epochs up to `acked`, oldest first.
    fn release(&self, acked: u64) {
        let due = {
            let mut w = self.waiting.borrow_mut();
            let later = w.split_off(&(acked + 1));
            std::mem::replace(&mut *w, later)
        };
        for (_, list) in due {
            for w in list {
                match w {
                    Waiting::Reply(mailbox, text) => self.offer_reply(&mailbox, text),
                    Waiting::Upgrade(flag) => flag.set(),
                }
            }
        }
    }

    /// Rooms with members anywhere, as this core sees them (every core's copy converges on the
    /// same set): for `/metrics`. O(1): the registry keeps exactly those rooms.
    pub fn publish_rooms(&self) {
        let n = self.reg.borrow().len();
        self.shared.rooms_seen[self.idx].store(n as u64, Ordering::Relaxed);
    }
}
