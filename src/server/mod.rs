//! `herd serve`: the reference chat server, also embedded in `herd run` as the default target.
//!
//! One pinned glommio executor per core, each with its own `SO_REUSEPORT` listener. A connection
//! to `/conv/{id}` joins room `{id}`; each text frame it sends is relayed to every other member,
//! on its own core directly and on other cores through a channel mesh. `GET /metrics` on the
//! same port (or `--metrics-listen`) serves Prometheus text.
//!
//! Layout: `mod.rs` config and lifecycle, `core.rs` one executor's state and relay, `conn.rs`
//! one connection, `rooms.rs` membership, `mailbox.rs` bounded outgoing queues, `metrics.rs`
//! counters.

mod conn;
mod core;
pub mod mailbox;
pub mod metrics;
pub mod rooms;

use crate::error::{Error, Result};
use crate::units;
use clap::Args;
use glommio::ExecutorJoinHandle;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Executors (pinned threads) [default: one per online core]
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
    /// Largest frame accepted from a client, in bytes (larger closes with 1009)
    #[arg(long, default_value = "1m", value_parser = units::parse_count)]
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
        let online = crate::executor::online_cores();
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
        }
    }

    pub fn from_args(a: &ServeArgs) -> Result<ServerConfig> {
        let online = crate::executor::online_cores();
        let threads = match a.threads {
            Some(0) => return Err(Error::Usage("--threads: must be at least 1".into())),
            Some(t) => t as usize,
            None => online.len(),
        };
        if threads > 64 {
            return Err(Error::Usage("--threads: at most 64".into()));
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
        })
    }
}

/// What all of a server's cores share: counters (one slot each), the room registry, the stop flag.
pub struct Shared {
    pub cfg: ServerConfig,
    pub counters: Vec<metrics::CoreCounters>,
    pub registry: rooms::Registry,
    pub stop: AtomicBool,
}

impl Shared {
    pub fn totals(&self) -> metrics::ServerTotals {
        metrics::totals(&self.counters, self.registry.len() as u64)
    }
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    threads: Vec<ExecutorJoinHandle<()>>,
}

impl Server {
    /// Binds and starts every core; returns once all listeners are bound.
    pub fn start(cfg: ServerConfig) -> Result<Server> {
        // Bind the first listener here to learn the port (for port 0), then let each core bind
        // its own with SO_REUSEPORT.
        let probe = glommio_free_bind(cfg.listen)?;
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
        let shared = Arc::new(Shared {
            counters: (0..n).map(|_| metrics::CoreCounters::default()).collect(),
            registry: rooms::Registry::default(),
            stop: AtomicBool::new(false),
            cfg: cfg.clone(),
        });
        let mesh = glommio::channels::channel_mesh::MeshBuilder::full(n, 1024);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::result::Result<(), String>>();
        let mut threads = Vec::with_capacity(n);
        let mut metrics_listener = metrics_addr.as_ref().map(|(_, l)| l.try_clone());
        for (idx, &cpu) in cfg.cores.iter().enumerate() {
            let shared = shared.clone();
            let mesh = mesh.clone();
            let ready = ready_tx.clone();
            let ml = if idx == 0 { metrics_listener.take().and_then(|r| r.ok()) } else { None };
            let h = crate::executor::spawn_pinned(&format!("herd-serve-{idx}"), cpu, move || {
                core::run_core(idx, addr, shared, mesh, ml, ready)
            })?;
            threads.push(h);
        }
        drop(ready_tx);
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    shared.stop.store(true, Ordering::SeqCst);
                    return Err(Error::Unavailable(format!("--listen {addr}: {e}")));
                }
                Err(_) => return Err(Error::Software("a server core exited while starting".into())),
            }
        }
        drop(probe);
        Ok(Server { addr, metrics_addr: metrics_addr.map(|(a, _)| a), shared, threads })
    }

    pub fn totals(&self) -> metrics::ServerTotals {
        self.shared.totals()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Closes every connection with 1001 (going away) and stops all cores.
    pub fn stop(self) -> metrics::ServerTotals {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        self.shared.totals()
    }
}

/// Binds a listener with SO_REUSEPORT (as glommio's own listeners do) so the cores can share it.
fn glommio_free_bind(addr: SocketAddr) -> Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .and_then(|s| {
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.bind(&addr.into())?;
            Ok(s)
        })
        .map_err(|e| Error::Unavailable(format!("--listen {addr}: {e}")))?;
    Ok(s)
}

/// `herd serve`: runs until SIGINT or SIGTERM.
pub fn main(args: &ServeArgs) -> Result<()> {
    let cfg = ServerConfig::from_args(args)?;
    crate::limits::raise_nofile();
    let signals = crate::signal::Signals::install()?;
    let threads = cfg.cores.len();
    let scheme = if cfg.tls.is_some() { "wss" } else { "ws" };
    let server = Server::start(cfg)?;
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
