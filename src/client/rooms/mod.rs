//! A population's executors: each pinned core runs whole communities (`population::place`),
//! one connection per device of each user, in every room of its user.
//!
//! Layout: `state.rs` one executor's rooms, senders and connections; `conn.rs` one
//! connection's life and its accounting; `core.rs` the executor's loop, ramp and scheduler.

mod conn;
mod core;
mod state;

pub use self::core::run_core;

/// The size of a population connection's task (see `client::task_sizes`).
#[cfg(test)]
pub(super) fn task_size() -> usize {
    fn size<Fut, F: Fn(A, B) -> Fut, A, B>(_: &F) -> usize {
        std::mem::size_of::<Fut>()
    }
    size(&conn::run)
}
