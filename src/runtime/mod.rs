//! The runtime under both ends: pinned glommio executors (`executor.rs`) and their watchdog, the
//! per-core epoll reactor and sockets (`net/`), signals, fd limits, the process's RSS and CPU.

pub mod executor;
pub mod limits;
pub mod net;
pub mod process;
pub mod signal;
pub mod uring;
pub mod watchdog;
