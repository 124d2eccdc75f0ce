//! Properties of generated populations, checked over several specs and seeds.

use super::config::{ClassSpec, Dist, PopulationSpec};
use super::place::{assign_cores, shard_communities};
use super::*;

fn class(name: &str, rooms: u32, size: Dist, senders: Option<f64>) -> ClassSpec {
    ClassSpec { name: name.into(), rooms, size, senders, rate: 1.0, message_size: 128 }
}

fn mixed(users: u32, community: u32, devices: Dist) -> PopulationSpec {
    PopulationSpec {
        users,
        devices,
        community,
        classes: vec![
            class("dm", users * 2, Dist::Fixed(2), None),
            class("group", users / 5, Dist::Range(3, 30), Some(0.3)),
            class("channel", 3, Dist::Zipf { min: 100, max: community, exponent: 1.1 }, Some(0.01)),
        ],
    }
}

fn specs() -> Vec<(PopulationSpec, u64)> {
    vec![
        (mixed(1000, 300, Dist::Fixed(1)), 1),
        (mixed(2345, 1000, Dist::Range(1, 3)), 7),
        (mixed(999, 999, Dist::Weights(vec![(1, 70), (2, 25), (3, 5)])), 42),
        (mixed(5000, 450, Dist::Fixed(2)), 0xdead_beef),
    ]
}

#[test]
fn every_room_lies_in_one_community_and_holds_no_one_twice() {
    for (spec, seed) in specs() {
        let p = generate(&spec, seed).unwrap();
        for r in 0..p.rooms() {
            let c = p.community_of_room(r);
            let m = p.members(r);
            assert!(m.iter().all(|&u| p.community_of_user(u) == c), "room {r} spans communities");
            let mut sorted = m.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), m.len(), "room {r} holds a user twice");
        }
        assert!(p.communities.iter().all(|c| c.users <= spec.community));
    }
}

#[test]
fn memberships_match_room_sizes_and_both_tables_agree() {
    for (spec, seed) in specs() {
        let p = generate(&spec, seed).unwrap();
        for (k, c) in spec.classes.iter().enumerate() {
            let rooms: Vec<u32> = (0..p.rooms()).filter(|&r| p.room_class[r as usize] as usize == k).collect();
            assert_eq!(rooms.len() as u32, c.rooms, "class {}", c.name);
            let (lo, hi) = c.size.bounds();
            for &r in &rooms {
                let comm = p.communities[p.community_of_room(r) as usize];
                let n = p.members(r).len() as u32;
                assert!(n >= lo.min(comm.users) && n <= hi.min(comm.users), "room {r} of {n}");
            }
        }
        let by_user: u64 = (0..p.users()).map(|u| p.rooms_of(u).len() as u64).sum();
        assert_eq!(by_user, p.memberships());
        for r in 0..p.rooms() {
            for &u in p.members(r) {
                assert!(p.rooms_of(u).binary_search(&r).is_ok(), "user {u} lacks room {r}");
            }
        }
        for u in 0..p.users() {
            assert!(p.rooms_of(u).windows(2).all(|w| w[0] < w[1]));
            let (lo, hi) = spec.devices.bounds();
            assert!((lo..=hi).contains(&(p.devices(u).len() as u32)));
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_population() {
    for (spec, seed) in specs() {
        let a = generate(&spec, seed).unwrap();
        assert_eq!(a, generate(&spec, seed).unwrap());
        assert_ne!(a.members, generate(&spec, seed + 1).unwrap().members);
    }
}

#[test]
fn shards_and_cores_cover_each_community_exactly_once() {
    for (spec, seed) in specs() {
        let p = generate(&spec, seed).unwrap();
        for shards in [1u32, 2, 3] {
            for cores in [1usize, 2, 5, 16] {
                let mut seen = vec![0u32; p.communities.len()];
                for s in 0..shards {
                    let mine = shard_communities(&p, s, shards);
                    let split = assign_cores(&p, &mine, cores);
                    assert_eq!(split.len(), cores);
                    for core in &split {
                        for &c in core {
                            assert_eq!(c % shards, s);
                            seen[c as usize] += 1;
                        }
                    }
                    // Balanced within one community: no core holds more than the lightest
                    // core plus the heaviest community.
                    let w = |c: u32| {
                        let cm = p.communities[c as usize];
                        (p.dev_off[(cm.first_user + cm.users) as usize] - p.dev_off[cm.first_user as usize]) as u64
                    };
                    let loads: Vec<u64> = split.iter().map(|v| v.iter().map(|&c| w(c)).sum()).collect();
                    let heaviest = mine.iter().map(|&c| w(c)).max().unwrap_or(0);
                    assert!(loads.iter().max().unwrap() <= &(loads.iter().min().unwrap() + heaviest), "{loads:?}");
                }
                assert!(seen.iter().all(|&n| n == 1), "{shards} shards, {cores} cores: {seen:?}");
            }
        }
    }
}

#[test]
fn senders_and_fanout_follow_the_class_and_the_devices() {
    let spec = mixed(600, 300, Dist::Fixed(2));
    let p = generate(&spec, 3).unwrap();
    for r in 0..p.rooms() {
        let n = p.members(r).len() as u32;
        let s = p.senders(r);
        assert!(s >= 1 && s <= n);
        // Every member's two devices receive, except the sending device itself.
        assert_eq!(p.fanout(r), 2 * n as u64 - 1);
        if p.class_of(r).senders.is_none() {
            assert_eq!(s, 1);
        }
    }
    let sum = summarize(&p);
    assert_eq!(sum.connections, 2 * sum.users);
    let dm = &sum.classes[0];
    assert_eq!((dm.fanout.p50, dm.fanout.max, dm.senders), (3, 3, dm.rooms));
    assert_eq!(sum.rooms_per_connection.max, (0..p.users()).map(|u| p.rooms_of(u).len() as u64).max().unwrap());
}

#[test]
fn spreads_take_weights_into_account() {
    let s = Spread::of(vec![(1, 98), (10, 1), (100, 1)]);
    assert_eq!((s.p50, s.p99, s.max), (1, 10, 100));
    assert!((s.mean - 2.08).abs() < 1e-9);
    assert_eq!(Spread::of(vec![]), Spread::default());
}
