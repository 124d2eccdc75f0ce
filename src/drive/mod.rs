//! Driving a load: starting it (the embedded server, the cores, the reporter, the pusher) and
//! finishing it (`load.rs`), the reporter thread that merges the cores' snapshots, shards and
//! their start (`shard.rs`, `start_when.rs`), and what `herd run` adds on top (`judging.rs`).

pub mod judging;
pub mod load;
pub mod reporter;
pub mod shard;
pub mod start_when;
