//! The generator's executors: each pinned core owns whole conversations, opens their connections
//! at the connect rate, paces their senders from one scheduler, and reports a snapshot of its own
//! statistics every interval.
//!
//! Layout, each file using only those listed before it (the imports form no cycle):
//! - `control.rs` what the run's driver and the cores share (phase, counts, allowance);
//!   `plan.rs` one core's share of the run (the scenario and its conversations);
//!   `target.rs` where and how connections connect;
//! - `session.rs` the run's protocol on a connection (templates, join steps, keep-alives,
//!   failing a connection);
//! - `state.rs` one executor's shared state: its context, conversations, members' doorbells
//!   and senders' schedules;
//! - `connect.rs` connect and upgrade, and one member's attempt; `direct.rs` reading data
//!   frames past tungstenite; `serving.rs` what a serving connection does with what it read
//!   (without waiting, so that nothing of a frame is held across its waits);
//! - `reconnect.rs` backoff and retries after a loss (`--reconnect`) or a leave;
//!   `shaping.rs` churn and storms;
//! - `conn.rs` one connection's life; `ramp.rs` opening the core's connections (the connect
//!   ramp, or the stages' connection target); `core.rs` one executor's loop: scheduler,
//!   snapshots, closing;
//! - `rooms/` the same for a population: connections in many rooms, whole communities per core;
//! - `mod.rs` what the run's orchestrator sees (plan, control, target, start).

mod conn;
pub mod connect;
mod control;
mod core;
mod direct;
pub mod phase;
mod plan;
mod ramp;
pub mod reconnect;
mod rooms;
pub(crate) mod serving;
pub mod session;
mod shaping;
mod state;
mod target;

use crate::error::Result;
use crate::measure::stats::Snapshot;
use std::sync::mpsc::Sender;
use std::sync::Arc;

pub use crate::client::phase::Phase;
pub use control::Control;
pub use plan::{assign, CorePlan};
pub use target::{Target, Ws};

/// Starts one executor per plan. Each sends snapshots on `tx` and a final one marked `last`.
pub fn start(
    plans: Vec<CorePlan>,
    target: Arc<Target>,
    control: Arc<Control>,
    tx: Sender<Snapshot>,
) -> Result<Vec<crate::runtime::executor::Executor<()>>> {
    let mut handles = Vec::with_capacity(plans.len());
    for plan in plans {
        let (target, control, tx) = (target.clone(), control.clone(), tx.clone());
        let name = format!("herd-core-{}", plan.idx);
        let (cpu, watched) = (plan.cpu, (control.heartbeats.clone(), plan.idx));
        handles.push(crate::runtime::executor::spawn_pinned(&name, cpu, watched, move || async move {
            match plan.scenario.generated.clone() {
                Some(pop) => rooms::run_core(plan, pop, target, control, tx).await,
                None => core::run_core(plan, target, control, tx).await,
            }
        })?);
    }
    Ok(handles)
}

/// Every idle connection is a task holding its future's state, so that state is part of the
/// memory per connection (`benches/efficiency.sh`, `benches/population-cost.sh`). These bounds
/// catch a change that holds something large across a connection's waits (a message, an
/// unboxed rare path, a future wrapped by an `async fn`), which once made a connection attempt
/// 3.4 KB and a serving task 616 bytes.
#[cfg(test)]
mod task_sizes {
    fn size<Fut, F: Fn(A, B, C) -> Fut, A, B, C>(_: &F) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn a_connection_task_and_its_attempt_stay_small() {
        let serving = size(&super::conn::run);
        assert!(serving <= 512, "a grid connection's task is {serving} bytes");
        let attempt = size(&super::connect::member);
        assert!(attempt <= 512, "a connection attempt is {attempt} bytes");
        let joining = size(&super::session::joined);
        assert!(joining <= 640, "a join in flight is {joining} bytes");
        let rooms = super::rooms::task_size();
        assert!(rooms <= 640, "a population connection's task is {rooms} bytes");
    }
}
