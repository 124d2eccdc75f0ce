use super::*;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn core_sets_hold_any_number_of_cores() {
    let mut s = CoreSet::default();
    for c in [0, 63, 64, 65, 127, 1023] {
        s.insert(c);
    }
    assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63, 64, 65, 127, 1023]);
    assert!(s.contains(64) && !s.contains(1) && !s.contains(5000));
    // 1u64 << 64 would have wrapped onto core 0: it must not.
    s.remove(0);
    assert!(s.contains(64) && !s.contains(0));
    for c in [63, 64, 65, 127, 1023] {
        s.remove(c);
    }
    assert!(s.is_empty());
}

fn members(r: &Registry<u32>, name: &str) -> Vec<Slot> {
    let mut m: Vec<Slot> = r.slot_of(name).map(|room| r.members(room).map(|(s, _)| s).collect()).unwrap_or_default();
    m.sort();
    m
}

#[test]
fn one_connection_in_many_rooms() {
    let mut r = Registry::new();
    let a = r.open(10);
    let b = r.open(11);
    let j = r.join(a, "x");
    assert!(j.added && j.first_on_core);
    assert!(!r.join(a, "x").added, "joining twice changes nothing");
    assert_eq!(r.join(b, "x"), Joined { room: j.room, added: true, first_on_core: false });
    assert!(r.join(a, "y").first_on_core);
    assert_eq!((members(&r, "x"), members(&r, "y")), (vec![a, b], vec![a]));
    assert_eq!(r.rooms_of(a), 2);
    assert_eq!(r.member_of(b, "y"), None);
    assert_eq!(r.member_of(a, "y"), r.slot_of("y"));
    // The mailbox delivered to is the member's own.
    let boxes: Vec<u32> = r.members(j.room).map(|(_, m)| *m).collect();
    assert_eq!(boxes.len(), 2);
    assert!(boxes.contains(&10) && boxes.contains(&11));

    assert_eq!(r.leave(b, "y"), None, "not a member");
    assert_eq!(r.leave(a, "x").map(|(last, n)| (last, n.to_string())), Some((false, "x".into())));
    assert_eq!(members(&r, "x"), vec![b]);
    let (mailbox, emptied) = r.close(a);
    assert_eq!(mailbox, 10);
    assert_eq!(emptied.iter().map(|n| n.to_string()).collect::<Vec<_>>(), vec!["y".to_string()]);
    assert!(r.slot_of("y").is_none(), "a room nobody is in is forgotten");
    let (_, emptied) = r.close(b);
    assert_eq!(emptied.len(), 1);
    assert!(r.is_empty() && r.connections() == 0);
}

#[test]
fn rooms_other_cores_hold_are_counted_and_kept() {
    let mut r: Registry<u32> = Registry::new();
    let a: Arc<str> = Arc::from("a");
    r.set_remote(&a, 1, true);
    r.set_remote(&a, 70, true);
    assert_eq!(r.find("a").unwrap().remote.iter().collect::<Vec<_>>(), vec![1, 70]);
    assert_eq!(r.len(), 1);
    let c = r.open(0);
    assert!(r.join(c, "a").first_on_core, "first on this core even though others hold members");
    r.set_remote(&a, 1, false);
    r.set_remote(&a, 70, false);
    assert_eq!(r.len(), 1, "still held here");
    r.close(c);
    assert!(r.is_empty());
    // A leave for a room this core never heard of is a no-op.
    r.set_remote(&Arc::from("zzz"), 3, false);
    assert!(r.is_empty());
}

/// Random joins, leaves and closes against a plain model: every room's member list, every
/// connection's room list, and the room count match, whatever order slots move in.
#[test]
fn random_operations_match_a_model() {
    let mut next = crate::testrand::xorshift(0x5eed_2025);
    let mut below = |n: u64| next() % n;
    let mut r: Registry<u32> = Registry::new();
    let mut model: BTreeMap<Slot, BTreeSet<String>> = BTreeMap::new();
    let mut checked = 0;
    for step in 0..20_000u32 {
        let roll = below(100);
        let open: Vec<Slot> = model.keys().copied().collect();
        if open.is_empty() || roll < 10 {
            let s = r.open(step);
            assert!(model.insert(s, BTreeSet::new()).is_none(), "slot {s} handed out twice");
            continue;
        }
        let c = open[below(open.len() as u64) as usize];
        let room = format!("r{}", below(40));
        match roll {
            10..=59 => {
                let j = r.join(c, &room);
                let was_empty_here = !model.values().any(|rs| rs.contains(&room));
                assert_eq!(j.added, model.get_mut(&c).unwrap().insert(room.clone()));
                assert_eq!(j.first_on_core, j.added && was_empty_here);
            }
            60..=94 => {
                let was = model.get_mut(&c).unwrap().remove(&room);
                let left = r.leave(c, &room);
                assert_eq!(left.is_some(), was);
                if let Some((last, _)) = left {
                    assert_eq!(last, !model.values().any(|rs| rs.contains(&room)));
                }
            }
            _ => {
                let rooms = model.remove(&c).unwrap();
                let (_, emptied) = r.close(c);
                let mut emptied: Vec<String> = emptied.iter().map(|n| n.to_string()).collect();
                emptied.sort();
                let expect: Vec<String> =
                    rooms.into_iter().filter(|n| !model.values().any(|rs| rs.contains(n))).collect();
                assert_eq!(emptied, expect);
            }
        }
        if step % 97 == 0 {
            let mut by_room: BTreeMap<&String, Vec<Slot>> = BTreeMap::new();
            for (s, rs) in &model {
                assert_eq!(r.rooms_of(*s), rs.len());
                for n in rs {
                    by_room.entry(n).or_default().push(*s);
                }
            }
            assert_eq!(r.len(), by_room.len());
            for (n, m) in by_room {
                assert_eq!(members(&r, n), m, "room {n}");
            }
            checked += 1;
        }
    }
    assert!(checked > 100);
}
