//! One server executor: its listener, its rooms, fault injection, and relaying to other cores.

use super::mailbox::{Mailbox, Offer, Outgoing};
use super::metrics::{add, inc, CoreCounters};
use super::rooms::LocalRooms;
use super::{conn, Shared};
use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};
use glommio::net::TcpListener;
use glommio::{Latency, Shares};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;
use tungstenite::Utf8Bytes;

/// A message on its way to another core.
pub struct Relay {
    pub room: Arc<str>,
    pub text: Utf8Bytes,
    /// When the origin core received it (clock ns), so `--delay` counts from there.
    pub recv_ns: u64,
}

pub struct Core {
    pub idx: usize,
    pub shared: Arc<Shared>,
    pub rooms: RefCell<LocalRooms>,
    mesh: RefCell<Option<Rc<Senders<Relay>>>>,
    deliveries: Cell<u64>,
    next_id: Cell<u64>,
    pub live: Cell<u64>,
    /// Mailboxes of live connections, to close them all on shutdown.
    pub mailboxes: RefCell<Vec<(u64, Rc<Mailbox>)>>,
}

impl Core {
    pub fn counters(&self) -> &CoreCounters {
        &self.shared.counters[self.idx]
    }

    pub fn new_id(&self) -> u64 {
        let n = self.next_id.get() + 1;
        self.next_id.set(n);
        ((self.idx as u64) << 48) | n
    }

    /// Relays a frame received from member `from` of `room`: to local members, then to the
    /// cores that hold other members.
    pub async fn relay(&self, room: &Arc<str>, from: u64, text: Utf8Bytes) {
        inc(&self.counters().messages_received);
        let recv_ns = crate::clock::now_ns();
        let exclude = if self.shared.cfg.echo { None } else { Some(from) };
        self.deliver_local(room, exclude, &text, recv_ns);
        let others = self.shared.registry.cores_of(room) & !(1u64 << self.idx);
        if others == 0 {
            return;
        }
        // Not borrowed across the await below: shutdown takes the mesh while relays may wait.
        let Some(senders) = self.mesh.borrow().clone() else { return };
        for peer in 0..senders.nr_consumers() {
            if others & (1u64 << peer) != 0 {
                let r = Relay { room: room.clone(), text: text.clone(), recv_ns };
                if senders.try_send_to(peer, r).is_err() {
                    // The peer's channel is full: wait for room rather than drop.
                    let r = Relay { room: room.clone(), text: text.clone(), recv_ns };
                    let _ = senders.send_to(peer, r).await;
                }
            }
        }
    }

    /// Queues a frame for every local member of `room` but `exclude`, applying fault injection.
    pub fn deliver_local(&self, room: &str, exclude: Option<u64>, text: &Utf8Bytes, recv_ns: u64) {
        let f = &self.shared.cfg.faults;
        let due_ns = if f.delay.is_zero() { 0 } else { recv_ns + f.delay.as_nanos() as u64 };
        let rooms = self.rooms.borrow();
        for m in rooms.members(room) {
            if Some(m.id) == exclude {
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
                match m.mailbox.offer(Outgoing { text: text.clone(), due_ns }) {
                    Offer::Queued if copy == 1 => inc(&self.counters().duplicated_fault),
                    Offer::Queued => {}
                    Offer::Overflow(lost) => add(&self.counters().dropped_slow, lost as u64),
                    Offer::Discarded => inc(&self.counters().dropped_slow),
                }
            }
        }
    }
}

/// Creates a listening socket with SO_REUSEPORT and a deep backlog, as a glommio listener.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(65535)?; // capped by net.core.somaxconn
                      // SAFETY: the fd is a bound, listening TCP socket we own.
    Ok(unsafe { TcpListener::from_raw_fd(s.into_raw_fd()) })
}

/// The body of one server executor.
pub async fn run_core(
    idx: usize,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mesh: MeshBuilder<Relay, Full>,
    metrics_listener: Option<std::net::TcpListener>,
    ready: Sender<Result<(), String>>,
) {
    let listener = match listen(addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let core = Rc::new(Core {
        idx,
        shared: shared.clone(),
        rooms: RefCell::new(LocalRooms::default()),
        mesh: RefCell::new(None),
        deliveries: Cell::new(0),
        next_id: Cell::new(0),
        live: Cell::new(0),
        mailboxes: RefCell::new(Vec::new()),
    });
    let conn_tq = glommio::executor().create_task_queue(Shares::default(), Latency::NotImportant, "conns");
    if mesh.nr_peers() > 1 {
        match mesh.join().await {
            Ok((senders, mut receivers)) => {
                *core.mesh.borrow_mut() = Some(Rc::new(senders));
                for (_, stream) in receivers.streams() {
                    let core = core.clone();
                    glommio::spawn_local(async move {
                        while let Some(r) = stream.recv().await {
                            core.deliver_local(&r.room, None, &r.text, r.recv_ns);
                        }
                    })
                    .detach();
                }
            }
            Err(_) => {
                let _ = ready.send(Err("could not join the core mesh".into()));
                return;
            }
        }
    }
    if let Some(l) = metrics_listener {
        let core = core.clone();
        glommio::spawn_local(async move { conn::serve_metrics_only(core, l).await }).detach();
    }
    let _ = ready.send(Ok(()));
    loop {
        let stop_check = async {
            glommio::timer::sleep(Duration::from_millis(50)).await;
            None
        };
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, stop_check).await;
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        match accepted {
            Some(Ok(stream)) => {
                let core = core.clone();
                let _ = glommio::spawn_local_into(conn::handle(core, stream), conn_tq).map(|t| t.detach());
            }
            Some(Err(_)) => {
                // EMFILE and friends: back off briefly rather than spin.
                inc(&core.counters().handshakes_failed);
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            None => {}
        }
    }
    drop(listener);
    // Graceful shutdown: every connection closes with 1001, then the core exits.
    for (_, m) in core.mailboxes.borrow().iter() {
        m.request_close();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while core.live.get() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    let mesh = core.mesh.borrow_mut().take();
    if let Some(s) = mesh {
        s.close();
    }
}
