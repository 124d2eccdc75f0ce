//! Configuration: the run flags, the TOML scenario file and the `--target` presets, resolved by
//! one precedence rule (flag > scenario file > preset > default) into one [`Scenario`], the plain
//! data every core and every result reads.
//!
//! Low in the house: `scenario.rs` (the resolved plan) imports only value types; the flag
//! structs and `resolve` (`args.rs`) sit above it.

pub mod addrs;
pub mod args;
pub mod collect;
pub mod file;
pub mod protocol;
pub mod readfile;
pub mod scenario;
pub mod shard;
pub mod template;
pub mod units;

pub use scenario::Scenario;
