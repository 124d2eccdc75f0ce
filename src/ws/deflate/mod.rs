//! permessage-deflate (RFC 7692), which tungstenite lacks, on herd's own stream path:
//! negotiation (`params.rs`, pure), one message through raw deflate with the per-core contexts
//! (`codec.rs`), the rewriting of a connection's frames (`stream.rs`, over the frame boundaries
//! of `walk.rs`), and what compression did per core (`tally.rs`).

pub mod codec;
pub mod params;
pub mod stream;
pub mod tally;
mod walk;

pub use params::{Mode, Params};
pub use stream::{Codec, Deflated};
