//! herd's sockets: one epoll set per executor, watched through a single io_uring poll, and
//! non-blocking sockets that wait on it (see `reactor.rs` for why).
//!
//! Layout: `reactor.rs` the per-core epoll set and its driver task, `socket.rs` a connection
//! (`AsyncRead`/`AsyncWrite`, kernel receive timestamps), `listener.rs` accepting, `inbox.rs`
//! messages from other cores, `waker.rs` the one waker slot every waiting task uses, `idle.rs`
//! what lets the driver wait in the kernel (tracked tasks, timers' deadlines), `sys.rs` the
//! hot-path syscalls.

pub mod idle;
pub mod inbox;
pub mod listener;
pub mod reactor;
pub mod socket;
pub mod sys;
pub mod ticker;
pub mod waker;

pub use listener::Listener;
pub use reactor::Reactor;
pub use socket::Socket;
