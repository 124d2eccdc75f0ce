//! One server executor's state: its rooms, fault injection, and relaying to other cores through
//! their inboxes (one bounded inbox per core, so nothing grows with cores squared). The executor's
//! task loop that accepts connections is in `worker.rs`; connections (`conn.rs`) use this state.

use super::mailbox::{Mailbox, Offer, Outgoing};
use super::metrics::{add, inc, CoreCounters};
use super::rooms::{LocalRooms, Remote};
use super::Shared;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
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
    /// Core `from` now has (or no longer has) members of `room`; `ack` (non-zero) asks for an
    /// acknowledgement to `from`.
    Presence {
        room: Arc<str>,
        from: usize,
        present: bool,
        ack: u64,
    },
    Ack {
        id: u64,
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

/// Acknowledgements a joining member is waiting for.
struct AckWait {
    remaining: usize,
    waker: Option<Waker>,
}

pub struct Core {
    pub idx: usize,
    pub shared: Arc<Shared>,
    pub rooms: RefCell<LocalRooms>,
    /// Which other cores hold members of which rooms (this core's copy).
    pub remote: RefCell<Remote>,
    deliveries: Cell<u64>,
    next_id: Cell<u64>,
    pub live: Cell<u64>,
    /// Mailboxes of live connections, to close them all on shutdown.
    pub mailboxes: RefCell<HashMap<u64, Rc<Mailbox>>>,
    acks: RefCell<HashMap<u64, AckWait>>,
    /// The server is stopping: the accept loop ends and connections close.
    pub stopping: LocalFlag,
}

impl Core {
    /// A core with no connections and no rooms yet.
    pub fn new(idx: usize, shared: Arc<Shared>) -> Core {
        Core {
            idx,
            shared,
            rooms: RefCell::new(LocalRooms::default()),
            remote: RefCell::new(Remote::default()),
            deliveries: Cell::new(0),
            next_id: Cell::new(0),
            live: Cell::new(0),
            mailboxes: RefCell::new(HashMap::new()),
            acks: RefCell::new(HashMap::new()),
            stopping: LocalFlag::default(),
        }
    }

    pub fn counters(&self) -> &CoreCounters {
        &self.shared.counters[self.idx]
    }

    pub fn new_id(&self) -> u64 {
        let n = self.next_id.get() + 1;
        self.next_id.set(n);
        ((self.idx as u64) << 40) | n
    }

    /// Relays a frame received from member `from` of `room`: to local members, then to the
    /// cores that hold other members.
    pub async fn relay(&self, room: &Arc<str>, from: u64, text: Utf8Bytes) {
        inc(&self.counters().messages_received);
        let recv_ns = crate::measure::clock::now_ns();
        let exclude = if self.shared.cfg.echo { None } else { Some(from) };
        self.deliver_local(room, exclude, &text, recv_ns);
        // Queued without waiting where there is room; only a full inbox makes this task wait.
        let mut blocked = Vec::new();
        if let Some(cores) = self.remote.borrow().cores_of(room) {
            for peer in cores.iter() {
                let m = Msg::Relay { room: room.clone(), text: text.clone(), recv_ns };
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
    pub fn deliver_local(&self, room: &str, exclude: Option<u64>, text: &Utf8Bytes, recv_ns: u64) {
        let f = &self.shared.cfg.faults;
        let due_ns = if f.delay.is_zero() { 0 } else { recv_ns + f.delay.as_nanos() as u64 };
        let rooms = self.rooms.borrow();
        for (id, mailbox) in rooms.members(room) {
            if Some(id) == exclude {
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
                match mailbox.offer(Outgoing { text: text.clone(), due_ns }) {
                    Offer::Queued if copy == 1 => inc(&self.counters().duplicated_fault),
                    Offer::Queued => {}
                    Offer::Overflow(lost) => add(&self.counters().dropped_slow, lost as u64),
                    Offer::Discarded => inc(&self.counters().dropped_slow),
                }
            }
        }
    }

    /// Tells every other core that this one now has members of `room`, and waits until all have
    /// taken note (so a message any core relays from now on reaches this core).
    pub async fn announce_join(&self, room: &Arc<str>) {
        let others = self.shared.inboxes.len() - 1;
        if others == 0 {
            return;
        }
        let id = self.new_id();
        self.acks.borrow_mut().insert(id, AckWait { remaining: others, waker: None });
        self.broadcast(|| Msg::Presence { room: room.clone(), from: self.idx, present: true, ack: id });
        std::future::poll_fn(|cx| {
            let mut acks = self.acks.borrow_mut();
            match acks.get_mut(&id) {
                Some(w) if w.remaining > 0 && !self.stopping.is_set() => {
                    w.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                _ => {
                    acks.remove(&id);
                    Poll::Ready(())
                }
            }
        })
        .await
    }

    /// Tells every other core that this one has no members of `room` left.
    pub fn announce_leave(&self, room: &Arc<str>) {
        self.broadcast(|| Msg::Presence { room: room.clone(), from: self.idx, present: false, ack: 0 });
    }

    /// Presence and acknowledgements are few and must keep their order: they bypass the cap.
    fn broadcast(&self, msg: impl Fn() -> Msg) {
        for (peer, ib) in self.shared.inboxes.iter().enumerate() {
            if peer != self.idx {
                ib.push_always(msg());
            }
        }
    }

    /// Handles what other cores sent.
    pub fn on_message(&self, m: Msg) {
        match m {
            Msg::Relay { room, text, recv_ns } => self.deliver_local(&room, None, &text, recv_ns),
            Msg::Presence { room, from, present, ack } => {
                self.remote.borrow_mut().set(&room, from, present);
                self.publish_rooms();
                if ack != 0 {
                    self.shared.inboxes[from].push_always(Msg::Ack { id: ack });
                }
            }
            Msg::Ack { id } => {
                if let Some(w) = self.acks.borrow_mut().get_mut(&id) {
                    w.remaining = w.remaining.saturating_sub(1);
                    if w.remaining == 0 {
                        if let Some(waker) = w.waker.take() {
                            waker.wake();
                        }
                    }
                }
            }
        }
    }

    /// Rooms with members anywhere, as this core sees them (every core's copy converges on the
    /// same set): for `/metrics`.
    pub fn publish_rooms(&self) {
        let local = self.rooms.borrow();
        let remote = self.remote.borrow();
        let only_local = local.names().filter(|r| !remote.contains_room(r)).count();
        self.shared.rooms_seen[self.idx].store((remote.len() + only_local) as u64, Ordering::Relaxed);
    }
}
