//! The body of one server executor: starts its listener and inbox, beats its heartbeat, accepts
//! connections (handed to `conn.rs`) until the server stops, then closes them. Depends on
//! `core.rs` and `conn.rs`; neither depends on it.

use super::conn;
use super::core::Core;
use super::metrics::inc;
use super::Shared;
use crate::runtime::net::{inbox, Listener, Reactor};
use glommio::{Latency, Shares};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

/// How often a server core beats its heartbeat.
const HEARTBEAT: Duration = Duration::from_millis(50);

/// The body of one server executor.
pub async fn run_core(
    idx: usize,
    addr: SocketAddr,
    shared: Arc<Shared>,
    metrics_listener: Option<std::net::TcpListener>,
    ready: Sender<Result<(), String>>,
) {
    let reactor = match Reactor::install() {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(format!("core {idx}: cannot create its epoll set: {e}")));
            return;
        }
    };
    let started = (|| {
        let listener = Listener::bind(addr).map_err(|e| e.to_string())?;
        let rx = inbox::Receiver::new(shared.inboxes[idx].clone()).map_err(|e| format!("core {idx}: {e}"))?;
        let metrics = match metrics_listener {
            Some(l) => Some(Listener::from_std(l).map_err(|e| format!("--metrics-listen: {e}"))?),
            None => None,
        };
        Ok::<_, String>((listener, rx, metrics))
    })();
    let (listener, rx, metrics) = match started {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send(Err(e));
            reactor.stop();
            return;
        }
    };
    let core = Rc::new(Core::new(idx, shared.clone()));
    let conn_tq = glommio::executor().create_task_queue(Shares::default(), Latency::NotImportant, "conns");
    // The heartbeat the watchdog watches, on the core's own timerfd.
    if let Ok(ticker) = crate::runtime::net::ticker::Ticker::new() {
        let core = core.clone();
        crate::runtime::net::idle::spawn(async move {
            while !core.stopping.is_set() {
                core.shared.heartbeats.beat(core.idx);
                ticker.sleep(HEARTBEAT).await;
            }
        })
        .detach();
    }
    {
        let core = core.clone();
        crate::runtime::net::idle::spawn(async move {
            let mut batch = Vec::new();
            loop {
                rx.recv(&mut batch, || core.shared.stop.load(Ordering::SeqCst)).await;
                for m in batch.drain(..) {
                    core.on_message(m);
                }
                if core.shared.stop.load(Ordering::SeqCst) {
                    core.stop();
                    break;
                }
            }
        })
        .detach();
    }
    {
        let core = core.clone();
        crate::runtime::net::idle::spawn(async move { core.presence_task().await }).detach();
    }
    if let Some(l) = metrics {
        let core = core.clone();
        crate::runtime::net::idle::spawn(async move { conn::serve_metrics_only(core, l).await }).detach();
    }
    let _ = ready.send(Ok(()));
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            core.stopping.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                let core = core.clone();
                let _ = crate::runtime::net::idle::spawn_into(conn::handle(core, stream), conn_tq).map(|t| t.detach());
            }
            Some(Err(_)) => {
                // EMFILE and friends: back off briefly rather than spin.
                inc(&core.counters().handshakes_failed);
                crate::runtime::net::idle::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    drop(listener);
    // Graceful shutdown: every connection closes with 1001, then the core exits.
    for m in core.reg.borrow().mailboxes() {
        m.request_close();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while core.live() > 0 && std::time::Instant::now() < deadline {
        crate::runtime::net::idle::sleep(Duration::from_millis(10)).await;
    }
    shared.heartbeats.retire(idx);
    reactor.stop();
}
