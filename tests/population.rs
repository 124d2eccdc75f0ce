//! A population (users with devices, in rooms of several classes) against the npm `socket.io`
//! 4.8 server: one socket per device joining every room of its user with an acknowledged join,
//! each message to one room. herd's account is checked against the server's own (the sockets
//! each message went to), per room class, and three shards merge to the single-node totals.

mod common;
use common::peers::*;
use herd::population::{generate, ClassSpec, Dist, PopulationSpec};
use serde_json::Value;
use std::path::Path;

const SIO_PATH: &str = "/socket.io/?EIO=4&transport=websocket";
const SEED: &str = "11";

/// Direct messages, groups, and a few channels far larger than the rest, over 4 communities;
/// a fifth of the users have a second device.
const POPULATION: &str = "[population]\nusers = 400\ncommunity = 100\ndevices = \"1:80,2:20\"\n\
     [[population.class]]\nname = \"dm\"\nrooms = 300\nsize = 2\nrate = 2\n\
     [[population.class]]\nname = \"group\"\nrooms = 40\nsize = \"3-12\"\nsenders = 0.3\n\
     [[population.class]]\nname = \"channel\"\nrooms = 3\nsize = \"60-100 zipf\"\nsenders = 0.05\nrate = 1\n";

/// The same population as the library generates it: what the server must have seen.
fn population() -> herd::population::Population {
    let class = |name: &str, rooms, size, senders, rate| ClassSpec {
        name: name.into(),
        rooms,
        size,
        senders,
        rate,
        message_size: 128,
    };
    let spec = PopulationSpec {
        users: 400,
        devices: Dist::Weights(vec![(1, 80), (2, 20)]),
        community: 100,
        classes: vec![
            class("dm", 300, Dist::Fixed(2), None, 2.0),
            class("group", 40, Dist::Range(3, 12), Some(0.3), 1.0),
            class("channel", 3, Dist::Zipf { min: 60, max: 100, exponent: 1.0 }, Some(0.05), 1.0),
        ],
    };
    generate(&spec, SEED.parse().unwrap()).unwrap()
}

fn run(dir: &Path, url: &str, extra: &[&str]) -> Value {
    let file = dir.join("population.toml");
    std::fs::write(&file, POPULATION).unwrap();
    let mut args = vec!["--scenario", file.to_str().unwrap(), "--url", url, "--target", "socketio"];
    args.extend_from_slice(&["--seed", SEED, "-d", "2s", "--drain", "3s", "--unmarked", "error"]);
    args.extend_from_slice(extra);
    herd_ok(dir, &args)
}

/// Every class delivered exactly what it owed, and the classes add up to the run.
fn classes_exact(v: &Value) -> Vec<(String, u64, u64, u64)> {
    let classes = v["population"]["classes"].as_array().expect("population.classes");
    let mut out = vec![];
    for c in classes {
        let (sent, expected, delivered) = (n(c, "sent"), n(c, "expected"), n(c, "delivered"));
        assert!(sent > 0, "class sent nothing: {c}");
        assert_eq!((delivered, n(c, "missed"), n(c, "duplicated")), (expected, 0, 0), "{c}");
        assert_eq!(n(c, "latency.corrected.count"), delivered, "{c}");
        out.push((c["class"].as_str().unwrap().to_string(), sent, expected, delivered));
    }
    let sum = |i: usize| out.iter().map(|c| [c.1, c.2, c.3][i]).sum::<u64>();
    assert_eq!(
        (sum(0), sum(1), sum(2)),
        (n(v, "messages.sent"), n(v, "messages.expected"), n(v, "messages.delivered"))
    );
    out
}

#[test]
fn a_population_runs_exactly_against_socketio() {
    let pop = population();
    let peer = Peer::start(Impl::SocketIo, &["--mode", "to"]);
    let d = tempfile::tempdir().unwrap();
    let v = run(d.path(), &peer.url(SIO_PATH), &[]);
    let r = peer.stop();
    assert_eq!(errors(&v), vec![]);
    assert_eq!(n(&v, "connections.established"), pop.connections() as u64, "{}", v["connections"]);
    assert_eq!(n(&v, "connections.closed_by_peer"), 0);
    // Each connection joined every room of its user, each join acknowledged.
    let joins: u64 = (0..pop.users()).map(|u| pop.rooms_of(u).len() as u64 * pop.devices(u).len() as u64).sum();
    assert_eq!(n(&r, "counters.joins"), joins, "{r}");
    assert_eq!(n(&r, "counters.messages_not_member"), 0, "{r}");
    // The server's account: every socket a message went to got it, once.
    assert_eq!(n(&r, "counters.messages_received"), n(&v, "messages.sent"), "{r}");
    assert_eq!(n(&v, "messages.delivered"), n(&r, "counters.deliveries"), "{r}");
    assert_eq!((n(&v, "messages.missed"), n(&v, "messages.duplicated")), (0, 0), "{}", v["messages"]);
    assert_eq!(n(&v, "messages.echoed"), 0);
    classes_exact(&v);
    assert_eq!(n(&v, "population.population.connections"), pop.connections() as u64);
}

#[test]
fn three_shards_merge_to_the_single_node_totals_per_class() {
    let peer = Peer::start(Impl::SocketIo, &["--mode", "to"]);
    let url = peer.url(SIO_PATH);
    let d = tempfile::tempdir().unwrap();
    let single = classes_exact(&run(d.path(), &url, &[]));
    // The shards run at once against the one server: their communities (and rooms) are disjoint.
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let shards: Vec<Value> = std::thread::scope(|s| {
        let runs: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let (url, shard) = (url.clone(), format!("{i}/3"));
                s.spawn(move || run(dir.path(), &url, &["--shard", &shard]))
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    peer.stop();
    for v in &shards {
        assert_eq!(errors(v), vec![]);
        classes_exact(v);
    }
    let files: Vec<String> = dirs.iter().map(|d| d.path().join("results.json").display().to_string()).collect();
    let merged_file = d.path().join("merged.json");
    let o = std::process::Command::new(common::herd_bin())
        .arg("merge")
        .args(&files)
        .args(["--out", merged_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merged: Value = serde_json::from_str(&std::fs::read_to_string(&merged_file).unwrap()).unwrap();
    assert_eq!(classes_exact(&merged), single);
    assert!(String::from_utf8_lossy(&o.stdout).contains("room class"), "{}", String::from_utf8_lossy(&o.stdout));
}

/// The same population against the embedded `herd serve` (`/user/{id}` connections, `join
/// {room}` acknowledged by `joined {room}`, `to {room} {payload}`): herd's account against the
/// server's own counts.
#[test]
fn a_population_runs_exactly_against_the_embedded_server() {
    let pop = population();
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("population.toml");
    std::fs::write(&file, POPULATION).unwrap();
    let v = herd_ok(d.path(), &["--scenario", file.to_str().unwrap(), "--seed", SEED, "-d", "2s", "--drain", "3s"]);
    assert_eq!(errors(&v), vec![]);
    assert_eq!(n(&v, "connections.established"), pop.connections() as u64, "{}", v["connections"]);
    assert_eq!(n(&v, "connections.closed_by_peer"), 0);
    assert_eq!((n(&v, "messages.missed"), n(&v, "messages.duplicated")), (0, 0), "{}", v["messages"]);
    assert_eq!(n(&v, "messages.echoed"), 0);
    // The server relayed each message to every other connection in its room: what herd owed.
    assert_eq!(n(&v, "server.messages_received"), n(&v, "messages.sent"), "{}", v["server"]);
    assert_eq!(n(&v, "server.messages_delivered"), n(&v, "messages.delivered"), "{}", v["server"]);
    assert_eq!(n(&v, "server.commands_not_member"), 0, "{}", v["server"]);
    classes_exact(&v);
}

/// `examples/population.toml` parses into the population the README describes: direct
/// messages, groups and channels of 1,000 or more, within one process's file descriptors.
#[test]
fn the_example_population_is_what_it_says() {
    let d = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/population.toml");
    // --duration 0s: connect, check, close (the full example runs for 10 s; benches/README).
    let (o, v) = common::herd_run(d.path(), "results.json", &["--scenario", example, "--seed", "1", "-d", "0s"]);
    let classes = v["population"]["classes"].as_array().expect("classes").clone();
    let names: Vec<&str> = classes.iter().map(|c| c["class"].as_str().unwrap()).collect();
    assert_eq!(names, ["dm", "group", "channel"], "{}", String::from_utf8_lossy(&o.stderr));
    assert!(n(&classes[2], "fanout.p50") >= 1000, "{}", classes[2]);
    assert_eq!(n(&v, "connections.established"), n(&v, "population.population.connections"));
}
