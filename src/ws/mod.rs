//! The WebSocket wire, both ends: the RFC 6455 opening handshake (`handshake.rs`, pure), frame
//! boundaries and the server's close code as sent (`frames.rs`), and WebSocket-level counters
//! (`wire.rs`), permessage-deflate (`deflate/`).

pub mod deflate;
pub mod frames;
pub mod handshake;
pub mod wire;
