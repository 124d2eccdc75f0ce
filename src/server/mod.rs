//! `herd serve`: the reference chat server, also embedded in `herd run` as the default target.
//!
//! One pinned glommio executor per core, each with its own `SO_REUSEPORT` listener. A connection
//! to `/conv/{id}` joins room `{id}`; each text frame it sends is relayed to every other member,
//! on its own core directly and on other cores through their inboxes. A connection to
//! `/user/{id}` joins and leaves rooms, and sends to them, with text commands (`commands.rs`).
//! `GET /metrics` on the same port (or `--metrics-listen`) serves Prometheus text.
//!
//! Layout: `mod.rs` config and lifecycle, `worker.rs` one executor's accept loop, `core.rs` one
//! executor's state and relay, `conn.rs` one connection, `commands.rs` the `/user/` commands,
//! `rooms.rs` membership, `presence.rs` telling other cores about it in batches, `mailbox.rs`
//! bounded outgoing queues, `metrics.rs` counters. Imports run one way: worker -> conn -> core.

pub mod commands;
mod conn;
mod core;
pub mod mailbox;
pub mod metrics;
pub mod presence;
pub mod rooms;
mod worker;

use crate::config::units;
use crate::error::{Error, Result};
use clap::Args;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Executors (pinned threads) [default: one per CPU this process may use: the affinity mask or
    /// the cgroup CPU quota, the smaller]
    #[arg(long, short = 't', value_parser = units::parse_count_u32)]
    pub threads: Option<u32>,
    /// Also return each message to its sender
    #[arg(long)]
    pub echo: bool,
    /// Serve /metrics on this address too (it is always served on --listen)
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Frames a connection may fall behind before it is dropped as a slow consumer
    #[arg(long, default_value = "1024", value_parser = units::parse_count)]
    pub queue: u64,
    /// Largest frame accepted from a client, in bytes (larger closes with 1009); 1MiB =
    /// 1,048,576, 1m = 1,000,000
    #[arg(long, default_value = "1MiB", value_parser = units::parse_bytes)]
    pub max_frame: u64,
    /// Time a client has to complete its HTTP request
    #[arg(long, default_value = "10s", value_parser = units::parse_duration)]
    pub handshake_timeout: Duration,
    /// Refuse WebSocket upgrades (HTTP 503) beyond this many open connections [default: no limit]
    #[arg(long, value_parser = units::parse_count)]
    pub max_connections: Option<u64>,
    /// Fault injection: drop every Nth relayed delivery
    #[arg(long, value_parser = units::parse_count, value_name = "N")]
    pub drop_every: Option<u64>,
    /// Fault injection: deliver every Nth relayed delivery twice
    #[arg(long, value_parser = units::parse_count, value_name = "N")]
    pub duplicate_every: Option<u64>,
    /// Fault injection: hold every delivery this long before writing it
    #[arg(long, value_parser = units::parse_duration)]
    pub delay: Option<Duration>,
    /// Accept permessage-deflate when a client offers it (herd's server keeps no compressor
    /// context; it keeps a client's context when the client does)
    #[arg(long)]
    pub deflate: bool,
    #[command(flatten)]
    pub tls: crate::tls::ServeTlsArgs,
}

/// A server's settings, resolved.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub cores: Vec<usize>,
    pub echo: bool,
    pub metrics_listen: Option<SocketAddr>,
    pub queue: usize,
    pub max_frame: usize,
    pub handshake_timeout: Duration,
    pub max_connections: Option<u64>,
    pub faults: Faults,
    /// wss://: every connection starts with a TLS handshake (`None`: plain ws://).
    pub tls: Option<crate::tls::server::Config>,
    /// `--deflate`: permessage-deflate accepted when offered.
    pub deflate: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// 0 = off.
    pub drop_every: u64,
    /// 0 = off.
    pub duplicate_every: u64,
    pub delay: Duration,
}

impl ServerConfig {
    /// A loopback server on a free port with default settings, as `herd run` embeds it.
    pub fn embedded(threads: usize) -> ServerConfig {
        let online = crate::runtime::executor::online_cores();
        ServerConfig {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            cores: (0..threads.max(1)).map(|i| online[i % online.len()]).collect(),
            echo: false,
            metrics_listen: None,
            queue: 1024,
            max_frame: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            max_connections: None,
            faults: Faults::default(),
            tls: None,
            deflate: false,
        }
    }

    pub fn from_args(a: &ServeArgs) -> Result<ServerConfig> {
        let online = crate::runtime::executor::online_cores();
        let threads = match a.threads {
            Some(0) => return Err(Error::Usage("--threads: must be at least 1".into())),
            Some(t) => t as usize,
            // As herd run's cores: the affinity mask or the cgroup CPU quota, the smaller.
            None => crate::cpu::Budget::detect().limit(),
        };
        if threads > crate::runtime::executor::MAX_THREADS as usize {
            return Err(Error::Usage(format!("--threads: at most {}", crate::runtime::executor::MAX_THREADS)));
        }
        if a.queue == 0 {
            return Err(Error::Usage("--queue: must be at least 1".into()));
        }
        if a.max_frame < 16 {
            return Err(Error::Usage("--max-frame: must be at least 16 bytes".into()));
        }
        Ok(ServerConfig {
            listen: a.listen,
            cores: (0..threads).map(|i| online[i % online.len()]).collect(),
            echo: a.echo,
            metrics_listen: a.metrics_listen,
            queue: a.queue as usize,
            max_frame: a.max_frame as usize,
            handshake_timeout: a.handshake_timeout,
            max_connections: a.max_connections,
            faults: Faults {
                drop_every: a.drop_every.unwrap_or(0),
                duplicate_every: a.duplicate_every.unwrap_or(0),
                delay: a.delay.unwrap_or_default(),
            },
            tls: crate::tls::server::from_args(&a.tls).map_err(Error::Usage)?,
            deflate: a.deflate,
        })
    }
}

/// What all of a server's cores share: counters (one slot each, written by its core only), each
/// core's inbox, the stop flag. Rooms are not shared: each core keeps its own copy.
pub struct Shared {
    pub cfg: ServerConfig,
    pub counters: Vec<metrics::CoreCounters>,
    pub inboxes: Vec<Arc<crate::runtime::net::inbox::Inbox<core::Msg>>>,
    /// Per core: rooms with members anywhere, as that core sees them.
    pub rooms_seen: Vec<AtomicU64>,
    pub stop: AtomicBool,
    /// The cores' heartbeats, watched by the watchdog (see `watchdog.rs`).
    pub heartbeats: Arc<crate::runtime::watchdog::Heartbeats>,
}

impl Shared {
    pub fn totals(&self) -> metrics::ServerTotals {
        let rooms = self.rooms_seen.iter().map(|r| r.load(Ordering::Relaxed)).max().unwrap_or(0);
        metrics::totals(&self.counters, rooms)
    }

    /// Asks every core to stop (each sees it on its inbox).
    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for ib in &self.inboxes {
            ib.nudge();
        }
    }
}

/// How long the cores get to start (their rings, epoll sets and listeners) before the server
/// gives up with an error naming the cores that did not report.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    threads: Vec<crate::runtime::executor::Executor<()>>,
}

impl Server {
    /// Binds and starts every core; returns once all listeners are bound.
    pub fn start(cfg: ServerConfig) -> Result<Server> {
        Server::start_until(cfg, &|| false)
    }

    /// As [`Server::start`], but gives up when `interrupted()` turns true (a signal) or a core
    /// has not reported within [`START_DEADLINE`]; every core already started is stopped.
    pub fn start_until(cfg: ServerConfig, interrupted: &dyn Fn() -> bool) -> Result<Server> {
        // Bind the first listener here to learn the port (for port 0), then let each core bind
        // its own with SO_REUSEPORT.
        let probe = crate::runtime::net::listener::reuseport_socket(cfg.listen)
            .map_err(|e| Error::Unavailable(format!("--listen {}: {e}", cfg.listen)))?;
        let addr = probe
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| Error::Unavailable(format!("--listen {}: no local address", cfg.listen)))?;
        let metrics_addr = match cfg.metrics_listen {
            Some(m) => {
                let l = std::net::TcpListener::bind(m)
                    .map_err(|e| Error::Unavailable(format!("--metrics-listen {m}: {e}")))?;
                Some((l.local_addr().map_err(|e| Error::Software(e.to_string()))?, l))
            }
            None => None,
        };
        let n = cfg.cores.len();
        let inboxes = (0..n)
            .map(|_| crate::runtime::net::inbox::Inbox::new(core::INBOX_CAP))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::Unavailable(format!("cannot create the cores' inboxes (eventfd): {e}")))?;
        let shared = Arc::new(Shared {
            counters: (0..n).map(|_| metrics::CoreCounters::default()).collect(),
            inboxes,
            rooms_seen: (0..n).map(|_| AtomicU64::new(0)).collect(),
            stop: AtomicBool::new(false),
            heartbeats: crate::runtime::watchdog::Heartbeats::new(n),
            cfg: cfg.clone(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::result::Result<(), String>>();
        // Owns what has started so far: an error below stops it all (Drop).
        let mut server = Server { addr, metrics_addr: metrics_addr.as_ref().map(|(a, _)| *a), shared, threads: vec![] };
        crate::runtime::watchdog::spawn(server.shared.heartbeats.clone());
        let mut metrics_listener = metrics_addr.map(|(_, l)| l);
        for (idx, &cpu) in cfg.cores.iter().enumerate() {
            let shared = server.shared.clone();
            let ready = ready_tx.clone();
            let ml = if idx == 0 { metrics_listener.take() } else { None };
            let watched = (server.shared.heartbeats.clone(), idx);
            let h = crate::runtime::executor::spawn_pinned(&format!("herd-serve-{idx}"), cpu, watched, move || {
                worker::run_core(idx, addr, shared, ml, ready)
            })?;
            server.threads.push(h);
        }
        drop(ready_tx);
        let deadline = std::time::Instant::now() + START_DEADLINE;
        let mut started = 0;
        while started < n {
            match ready_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(())) => started += 1,
                Ok(Err(e)) => return Err(Error::Unavailable(format!("--listen {addr}: {e}"))),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Software("a server core exited while starting".into()))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if interrupted() {
                        return Err(Error::Interrupted("interrupted while the server was starting".into()));
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::Unavailable(format!(
                            "{} of {n} server executors did not start within {START_DEADLINE:?} (io_uring \
                             rings and RLIMIT_MEMLOCK: run `herd doctor`, or use fewer --threads)",
                            n - started
                        )));
                    }
                }
            }
        }
        drop(probe);
        Ok(server)
    }

    pub fn totals(&self) -> metrics::ServerTotals {
        self.shared.totals()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Closes every connection with 1001 (going away) and stops all cores.
    pub fn stop(mut self) -> metrics::ServerTotals {
        self.shutdown();
        self.shared.totals()
    }

    fn shutdown(&mut self) {
        self.shared.request_stop();
        // Each core bounds its own closing (2 s); a core that never returns is left behind
        // rather than holding the process.
        let handles = std::mem::take(&mut self.threads);
        let (tx, rx) = std::sync::mpsc::channel();
        let n = handles.len();
        for h in handles {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = h.join();
                let _ = tx.send(());
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for _ in 0..n {
            if rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).is_err() {
                crate::errln!("herd serve: a core did not stop within 10 s; leaving it");
                break;
            }
        }
        self.shared.heartbeats.stop();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shutdown();
        }
    }
}

/// `herd serve`: runs until SIGINT or SIGTERM.
pub fn main(args: &ServeArgs) -> Result<()> {
    let cfg = ServerConfig::from_args(args)?;
    crate::runtime::limits::raise_nofile();
    let signals = crate::runtime::signal::Signals::install()?;
    let threads = cfg.cores.len();
    let scheme = if cfg.tls.is_some() { "wss" } else { "ws" };
    let server = Server::start_until(cfg, &|| signals.count() > 0)?;
    crate::out!("herd serve: listening on {} ({threads} cores, {scheme}://)\n", server.addr);
    if let Some(m) = server.metrics_addr {
        crate::out!("herd serve: metrics on http://{m}/metrics\n");
    }
    while signals.count() == 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::errln!("herd serve: stopping");
    let t = server.stop();
    crate::errln!(
        "herd serve: stopped; {} connections accepted, {} messages received, {} delivered",
        t.connections_opened,
        t.messages_received,
        t.messages_delivered
    );
    Ok(())
}
