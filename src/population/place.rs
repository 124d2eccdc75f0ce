//! Where communities run: each whole on one shard (`community % shards`) and, within the shard,
//! whole on one core. A message's sender and all its receivers are then on one core, so its
//! accounting needs no state shared between cores or nodes.

use super::generate::Population;

/// The communities shard `shard` of `shards` runs (the same rule as conversations: `c % N == I`).
pub fn shard_communities(pop: &Population, shard: u32, shards: u32) -> Vec<u32> {
    (0..pop.communities.len() as u32).filter(|c| c % shards.max(1) == shard).collect()
}

/// A community's weight for balancing cores: its connections (what a core holds).
fn weight(pop: &Population, c: u32) -> u64 {
    let comm = &pop.communities[c as usize];
    (pop.dev_off[(comm.first_user + comm.users) as usize] - pop.dev_off[comm.first_user as usize]) as u64
}

/// Splits `communities` over `cores`, heaviest first onto the least loaded core (ties to the
/// lower core): whole communities, balanced within one community's weight. Deterministic.
pub fn assign_cores(pop: &Population, communities: &[u32], cores: usize) -> Vec<Vec<u32>> {
    let mut order: Vec<(u64, u32)> = communities.iter().map(|&c| (weight(pop, c), c)).collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut load = vec![0u64; cores.max(1)];
    let mut out = vec![Vec::new(); cores.max(1)];
    for (w, c) in order {
        let (i, _) = load.iter().enumerate().min_by_key(|&(i, l)| (*l, i)).unwrap_or((0, &0));
        load[i] += w;
        out[i].push(c);
    }
    for v in &mut out {
        v.sort_unstable();
    }
    out
}
