//! Populations: users with devices (connections), rooms of classes (direct messages, groups,
//! channels) and memberships, generated in communities of bounded size so that every room's
//! members are in one community, and each community runs whole on one shard and one core.
//!
//! Layout: `config` (the `[population]` table and flags, resolved into a spec), `rng` (the
//! seeded streams and size distributions), `generate` (the population and its CSR tables),
//! `place` (communities onto shards and cores), `summary` (its figures). Pure: no sockets.

pub mod config;
pub mod generate;
pub mod place;
pub mod rng;
pub mod summary;
#[cfg(test)]
mod tests;

pub use config::{ClassSpec, Dist, PopulationArgs, PopulationSpec, PopulationTable};
pub use generate::{generate, Community, Population};
pub use summary::{summarize, Spread, Summary};
