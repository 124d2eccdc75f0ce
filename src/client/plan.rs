//! What one core is given to run: the run's scenario (shared) and its own share of it.

use std::sync::Arc;
use std::time::Duration;

/// What one core needs to run its share.
#[derive(Clone)]
pub struct CorePlan {
    pub idx: usize,
    pub cpu: usize,
    /// The conversations it owns (global numbers).
    pub convs: Vec<u64>,
    pub members: u32,
    pub senders: u32,
    pub rate: f64,
    pub size: usize,
    pub duration: Duration,
    /// Connections per second for this core.
    pub connect_rate: f64,
    pub connect_timeout: Duration,
    /// Source addresses, used round-robin by connection number; empty: the kernel chooses.
    pub sources: Arc<[std::net::IpAddr]>,
    /// Open lost connections again (`--reconnect`).
    pub reconnect: bool,
    pub run_id: u32,
    pub seed: u64,
    pub interval: Duration,
    /// `--stage`: the send phase's targets; `None`: `rate` for `duration`, every connection
    /// opened before sending.
    pub shape: Option<Arc<crate::shape::Shape>>,
    /// Conversations in the whole scenario: a connection ramp holds the first
    /// `ceil(connections / members)` of them.
    pub all_conversations: u32,
    /// `--churn`: this core's share of leaves and joins per second.
    pub churn: f64,
    pub storm: Option<crate::shape::Storm>,
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
    pub fn total_conns(&self) -> u64 {
        self.convs.len() as u64 * self.members as u64
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
