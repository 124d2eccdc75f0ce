//! What a population looks like in figures: rooms per connection, room sizes and fan-out per
//! class, messages and deliveries per second when everyone is connected, and the bytes its
//! tables take.

use super::generate::Population;
use serde::Serialize;

/// A weighted distribution's summary.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Spread {
    /// From (value, weight) pairs; the percentiles are the smallest value whose cumulative
    /// weight reaches the quantile.
    pub fn of(mut v: Vec<(u64, u64)>) -> Spread {
        v.sort_unstable();
        let total: u64 = v.iter().map(|x| x.1).sum();
        if total == 0 {
            return Spread::default();
        }
        let sum: f64 = v.iter().map(|&(x, w)| x as f64 * w as f64).sum();
        let at = |q: f64| {
            let need = (q * total as f64).ceil().max(1.0) as u64;
            let mut acc = 0;
            for &(x, w) in &v {
                acc += w;
                if acc >= need {
                    return x;
                }
            }
            v.last().map_or(0, |x| x.0)
        };
        Spread { mean: sum / total as f64, p50: at(0.5), p99: at(0.99), max: v.last().map_or(0, |x| x.0) }
    }
}

#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
#[serde(default)]
pub struct ClassSummary {
    pub name: String,
    pub rooms: u64,
    /// Members per room.
    pub size: Spread,
    /// Sending members over all its rooms.
    pub senders: u64,
    /// Messages per second over all its rooms, everyone connected.
    pub messages_per_s: f64,
    /// Receiving connections per message (weighted by messages).
    pub fanout: Spread,
    /// Deliveries owed per second, everyone connected.
    pub deliveries_per_s: f64,
}

#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
#[serde(default)]
pub struct Summary {
    pub users: u64,
    pub connections: u64,
    pub communities: u64,
    pub rooms: u64,
    /// (user, room) memberships.
    pub memberships: u64,
    /// Rooms a connection is in (its user's rooms).
    pub rooms_per_connection: Spread,
    pub classes: Vec<ClassSummary>,
    /// Heap bytes of the membership tables, and per membership.
    pub table_bytes: u64,
    pub bytes_per_membership: f64,
}

pub fn summarize(pop: &Population) -> Summary {
    let per_conn: Vec<(u64, u64)> =
        (0..pop.users()).map(|u| (pop.rooms_of(u).len() as u64, pop.devices(u).len() as u64)).collect();
    let classes = pop
        .spec
        .classes
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let rooms: Vec<u32> = (0..pop.rooms()).filter(|&r| pop.room_class[r as usize] as usize == k).collect();
            let senders: u64 = rooms.iter().map(|&r| pop.senders(r) as u64).sum();
            let fan: Vec<(u64, u64)> = rooms.iter().map(|&r| (pop.fanout(r), pop.senders(r) as u64)).collect();
            let deliveries: f64 = fan.iter().map(|&(f, s)| (f * s) as f64).sum::<f64>() * c.rate;
            ClassSummary {
                name: c.name.clone(),
                rooms: rooms.len() as u64,
                size: Spread::of(rooms.iter().map(|&r| (pop.members(r).len() as u64, 1)).collect()),
                senders,
                messages_per_s: senders as f64 * c.rate,
                fanout: Spread::of(fan),
                deliveries_per_s: deliveries,
            }
        })
        .collect();
    let bytes = pop.heap_bytes() as u64;
    Summary {
        users: pop.users() as u64,
        connections: pop.connections() as u64,
        communities: pop.communities.len() as u64,
        rooms: pop.rooms() as u64,
        memberships: pop.memberships(),
        rooms_per_connection: Spread::of(per_conn),
        classes,
        table_bytes: bytes,
        bytes_per_membership: bytes as f64 / pop.memberships().max(1) as f64,
    }
}
