//! Pinned glommio executors, configured for density: small io_uring memory and rings, a preempt
//! timer so timers and the scheduler run even when sockets always have data.
//!
//! Each executor runs on a thread herd spawns itself (glommio's `make` + `run`, not its `spawn`)
//! so that the thread is known to the watchdog before its first task runs. glommio 0.9 can park
//! an executor whose first task is still queued: when the preempt timer (armed just before the
//! task queues run) has already expired, the scheduler runs nothing and the executor sleeps in
//! io_uring with nothing armed to wake it. On a host with many executors per CPU this was seen
//! as `2 of 70 server executors did not start within 20s`. A registered thread whose heartbeat
//! stays silent gets a wake-up signal from the watchdog, which makes it look at its queues again.

use crate::error::{Error, Result};
use crate::runtime::watchdog::Heartbeats;
use glommio::{LocalExecutorBuilder, Placement};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
/// Most executors a run may start (`--threads`, `--server-threads`, `herd serve --threads`).
pub const MAX_THREADS: u32 = 1024;

/// Registered-buffer memory per executor. herd does no file I/O, so the default 10 MiB would only
/// cost locked memory (RLIMIT_MEMLOCK is often 8 MiB in all).
const IO_MEMORY: usize = 64 << 10;
/// io_uring submission queue entries per executor; glommio queues beyond this.
const RING_DEPTH: usize = 256;
/// How long a task queue may run before the executor looks at timers and other queues.
const PREEMPT: Duration = Duration::from_millis(10);

/// A running executor's thread.
pub struct Executor<T>(std::thread::JoinHandle<std::result::Result<T, String>>);

impl<T> Executor<T> {
    /// Waits for the executor to finish; `Err` when it could not start or panicked.
    pub fn join(self) -> std::result::Result<T, String> {
        self.0.join().unwrap_or_else(|_| Err("the executor panicked".into()))
    }
}

/// Starts an executor on its own thread, pinned to `cpu`, watched by `heartbeats` as core `idx`
/// from before its first task runs.
pub fn spawn_pinned<G, F, T>(
    name: &str,
    cpu: usize,
    heartbeats: (Arc<Heartbeats>, usize),
    fut_gen: G,
) -> Result<Executor<T>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    crate::runtime::uring::require()?;
    let builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(name)
        .io_memory(IO_MEMORY)
        .ring_depth(RING_DEPTH)
        .preempt_timer(PREEMPT);
    let what = format!("executor {name} on core {cpu}");
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let ex = builder.make().map_err(|e| {
                format!(
                    "cannot start {what}: {e} (io_uring needs Linux >= 5.8 and some RLIMIT_MEMLOCK; \
                     run `herd doctor`)"
                )
            })?;
            let (hb, idx) = heartbeats;
            hb.register(idx);
            Ok(ex.run(crate::runtime::net::idle::Tracked::new(async move { fut_gen().await })))
        })
        .map(Executor)
        .map_err(|e| Error::Unavailable(format!("cannot start a thread for executor {name}: {e}")))
}

/// The cores this process may run on.
pub fn online_cores() -> Vec<usize> {
    let ids: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    if ids.is_empty() {
        vec![0]
    } else {
        ids
    }
}
