//! Pinned glommio executors, configured for density: small io_uring memory and rings, a preempt
//! timer so timers and the scheduler run even when sockets always have data.

use crate::error::{Error, Result};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use std::future::Future;
use std::time::Duration;

/// Registered-buffer memory per executor. herd does no file I/O, so the default 10 MiB would only
/// cost locked memory (RLIMIT_MEMLOCK is often 8 MiB in all).
const IO_MEMORY: usize = 64 << 10;
/// io_uring submission queue entries per executor; glommio queues beyond this.
const RING_DEPTH: usize = 256;
/// How long a task queue may run before the executor looks at timers and other queues.
const PREEMPT: Duration = Duration::from_millis(10);

/// Starts an executor on its own thread, pinned to `cpu`.
pub fn spawn_pinned<G, F, T>(name: &str, cpu: usize, fut_gen: G) -> Result<ExecutorJoinHandle<T>>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(name)
        .io_memory(IO_MEMORY)
        .ring_depth(RING_DEPTH)
        .preempt_timer(PREEMPT)
        .spawn(fut_gen)
        .map_err(|e| {
            Error::Unavailable(format!(
                "cannot start executor {name} on core {cpu}: {e} (io_uring needs Linux >= 5.8 and \
                 some RLIMIT_MEMLOCK; run `herd doctor`)"
            ))
        })
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
