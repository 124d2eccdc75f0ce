//! What one core is given to run: the run's scenario (shared) and its own share of it.

use crate::config::scenario::Scenario;
use std::sync::Arc;
use std::time::Duration;

/// What one core needs to run its share: the run's scenario, shared by every core (read
/// through the `Arc`, never copied per core), and the fields that differ per core.
#[derive(Clone)]
pub struct CorePlan {
    pub idx: usize,
    pub cpu: usize,
    pub scenario: Arc<Scenario>,
    /// The conversations it owns (global numbers).
    pub convs: Vec<u64>,
    /// A population's communities it owns, whole (empty in a grid).
    pub communities: Vec<u32>,
    /// Connections per second for this core (its share of `--connect-rate`).
    pub connect_rate: f64,
    /// `--churn`: this core's share of leaves and joins per second.
    pub churn: f64,
    /// Source addresses, used round-robin by connection number; empty: the kernel chooses.
    pub sources: Arc<[std::net::IpAddr]>,
    pub run_id: u32,
    /// How often the core sends a snapshot.
    pub interval: Duration,
}

/// Splits conversations over cores round-robin (the i-th of the list to core `i % cores`), so
/// every member of a conversation lives on one core and accounting needs no cross-core state.
pub fn assign(conversations: impl IntoIterator<Item = u64>, cores: usize) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new(); cores];
    for (i, c) in conversations.into_iter().enumerate() {
        out[i % cores].push(c);
    }
    out
}

impl CorePlan {
    /// The connections of this core's conversations.
    pub fn total_conns(&self) -> u64 {
        if let Some(p) = &self.scenario.generated {
            return p.connections_of(self.communities.iter().copied());
        }
        self.convs.len() as u64 * self.scenario.members as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_whole_and_balanced() {
        let a = assign(0..7, 3);
        assert_eq!(a, vec![vec![0, 3, 6], vec![1, 4], vec![2, 5]]);
        let total: usize = a.iter().map(|v| v.len()).sum();
        assert_eq!(total, 7);
    }
}
