//! Populations: users with devices (connections), rooms of classes (direct messages, groups,
//! channels) and memberships, generated in communities of bounded size so that every room's
//! members are in one community, and each community runs whole on one shard and one core.
//!
//! Layout: `config` (the `[population]` table and flags, resolved into a spec), `rng` (the
//! seeded streams and size distributions), `generate` (the population and its CSR tables),
//! `place` (communities onto shards and cores), `summary` (its figures). Pure: no sockets.

pub mod config;
pub mod generate;
pub mod ledger;
pub mod place;
pub mod results;
pub mod rng;
pub mod summary;
#[cfg(test)]
mod tests;

use std::sync::Arc;

/// A generated population shared by a run's cores (read-only; never copied per core).
#[derive(Clone, PartialEq)]
pub struct Shared(pub Arc<Population>);

impl std::ops::Deref for Shared {
    type Target = Population;
    fn deref(&self) -> &Population {
        &self.0
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Population({} users, {} rooms, {} memberships)", self.users(), self.rooms(), self.memberships())
    }
}

impl Shared {
    /// The connections of the given communities.
    pub fn connections_of(&self, communities: impl IntoIterator<Item = u32>) -> u64 {
        communities
            .into_iter()
            .map(|c| {
                let cm = self.communities[c as usize];
                (self.dev_off[(cm.first_user + cm.users) as usize] - self.dev_off[cm.first_user as usize]) as u64
            })
            .sum()
    }
}

pub use config::{ClassSpec, Dist, PopulationArgs, PopulationSpec, PopulationTable};
pub use generate::{generate, Community, Population};
pub use summary::{summarize, Spread, Summary};
