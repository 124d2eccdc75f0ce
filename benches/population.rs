//! Population generation at scale: 1M users in about 20 rooms each (direct messages, groups, a
//! few channels), timed on one core, with the bytes its membership tables take per membership.
//! `cargo bench --bench population` runs the full size; `cargo test --bench population` a
//! small one, as a check that it still runs. See benches/README.md.

use herd::population::{generate, summarize, ClassSpec, Dist, PopulationSpec};
use std::time::Instant;

fn spec(users: u32) -> PopulationSpec {
    let class = |name: &str, rooms: u32, size: Dist, senders: Option<f64>| ClassSpec {
        name: name.into(),
        rooms,
        size,
        senders,
        rate: 0.05,
        message_size: 128,
    };
    PopulationSpec {
        users,
        devices: Dist::Fixed(1),
        community: 10_000.min(users),
        classes: vec![
            // 12 direct messages, ~6.6 groups and ~1.4 channels per user: ~20 rooms each.
            class("dm", users * 6, Dist::Fixed(2), None),
            class("group", users / 5 * 2, Dist::Range(3, 30), Some(0.2)),
            class("channel", users / 700, Dist::Fixed(1000.min(users)), Some(0.01)),
        ],
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let users = if full { 1_000_000 } else { 20_000 };
    let spec = spec(users);
    let mut best = f64::MAX;
    let mut pop = None;
    for _ in 0..if full { 3 } else { 1 } {
        let t = Instant::now();
        let p = generate(&spec, 42).expect("generate");
        best = best.min(t.elapsed().as_secs_f64());
        pop = Some(p);
    }
    let pop = pop.expect("one run");
    let s = summarize(&pop);
    println!("population/generate: {} users, {} rooms, {} memberships", s.users, s.rooms, s.memberships);
    println!("  generation (best of runs, one core): {:.3} s (target < 2 s)", best);
    println!("  tables: {} bytes, {:.1} B per membership (target <= 64 B)", s.table_bytes, s.bytes_per_membership);
    let r = s.rooms_per_connection;
    println!("  rooms per connection: mean {:.1}, p50 {}, p99 {}, max {}", r.mean, r.p50, r.p99, r.max);
    for c in &s.classes {
        println!(
            "  {}: {} rooms, size mean {:.1} max {}, fan-out p50 {} p99 {} max {}, {:.0} deliveries/s",
            c.name, c.rooms, c.size.mean, c.size.max, c.fanout.p50, c.fanout.p99, c.fanout.max, c.deliveries_per_s
        );
    }
}
