//! A population's executors: each pinned core runs whole communities (`population::place`),
//! one connection per device of each user, in every room of its user.
//!
//! Layout: `state.rs` one executor's rooms, senders and connections; `conn.rs` one
//! connection's life and its accounting; `core.rs` the executor's loop, ramp and scheduler.

mod conn;
mod core;
mod state;

pub use self::core::run_core;
