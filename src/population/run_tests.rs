//! A population through `herd run`'s scenario: the `[population]` table and flags resolve into
//! the scenario with the preset's room variant, and what cannot run with one is refused by name.

use crate::config::args::{resolve, RunArgs, ScenarioFile};

const POP: &str = "[population]\nusers = 300\ncommunity = 100\n\
                   [[population.class]]\nname = \"dm\"\nrooms = 200\nsize = 2\n\
                   [[population.class]]\nname = \"group\"\nrooms = 20\nsize = \"3-10\"\nsenders = 0.5\n";

fn file(t: &str) -> ScenarioFile {
    toml::from_str(t).unwrap()
}

fn err(a: RunArgs, f: &str) -> String {
    resolve(&a, &file(f), &[0, 1]).unwrap_err().to_string()
}

#[test]
fn a_population_resolves_with_the_herd_room_steps() {
    let s = resolve(&RunArgs { seed: Some(5), ..Default::default() }, &file(POP), &[0, 1]).unwrap();
    let p = s.generated.as_ref().unwrap();
    assert_eq!((p.users(), p.communities.len()), (300, 3));
    assert_eq!(s.connections(), p.connections() as u64);
    assert_eq!(s.communities(), vec![0, 1, 2]);
    assert_eq!(s.protocol.room_steps_from(), 0);
    assert!(s.protocol.send.as_ref().unwrap().uses(crate::config::template::Var::Room));
    // The same seed gives the same population.
    let again = resolve(&RunArgs { seed: Some(5), ..Default::default() }, &file(POP), &[0]).unwrap();
    assert_eq!(again.generated, s.generated);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["population"]["classes"][1]["size"], "3-10");
}

#[test]
fn a_shard_runs_its_communities_only() {
    let mut a = RunArgs { seed: Some(5), ..Default::default() };
    a.shard.shard = Some(crate::config::shard::Shard { index: 1, count: 2 });
    let s = resolve(&a, &file(POP), &[0]).unwrap();
    assert_eq!(s.communities(), vec![1]);
    assert_eq!(s.connections(), s.generated.as_ref().unwrap().connections_of([1]));
}

#[test]
fn what_a_population_cannot_run_with_is_refused_by_name() {
    assert!(err(RunArgs::default(), &format!("members = 3\n{POP}")).contains("--members"));
    assert!(err(RunArgs { reconnect: true, ..Default::default() }, POP).contains("--reconnect"));
    let nchan = format!("url = \"ws://127.0.0.1:9/sub/{{conv}}\"\ntarget = \"nchan\"\n{POP}");
    let e = err(RunArgs::default(), &nchan);
    assert!(e.contains("--target") && e.contains("nchan") && e.contains("one channel per connection"), "{e}");
    let no_room = format!("url = \"ws://127.0.0.1:9/u/{{user}}\"\njoin = \"hello\"\n{POP}");
    assert!(err(RunArgs::default(), &no_room).contains("{room}"));
    let no_send_room = format!("url = \"ws://127.0.0.1:9/u?r={{rooms}}\"\njoin = []\nsend = \"{{payload}}\"\n{POP}");
    assert!(err(RunArgs::default(), &no_send_room).contains("--send"));
    assert!(err(RunArgs::default(), "[population]\nusers = 10\ncolour = 1").contains("[population]"));
}

#[test]
fn the_socketio_population_joins_once_then_per_room() {
    let f = format!("url = \"ws://127.0.0.1:9/socket.io/?EIO=4&transport=websocket\"\ntarget = \"socketio\"\n{POP}");
    let s = resolve(&RunArgs::default(), &file(&f), &[0]).unwrap();
    // The Engine.IO open and namespace connect once, the join and its acknowledgement per room.
    assert_eq!((s.protocol.room_steps_from(), s.protocol.join.len()), (3, 5));
}
