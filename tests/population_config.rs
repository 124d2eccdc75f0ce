//! A population through `herd run`'s scenario: the `[population]` table and flags resolve into
//! the scenario with the preset's room variant, and what cannot run with one is refused by name.

use herd::config::args::{resolve, RunArgs};
use herd::config::scenario::Scenario;

const POP: &str = "[population]\nusers = 300\ncommunity = 100\n\
                   [[population.class]]\nname = \"dm\"\nrooms = 200\nsize = 2\n\
                   [[population.class]]\nname = \"group\"\nrooms = 20\nsize = \"3-10\"\nsenders = 0.5\n";

/// `herd run ARGV` with the scenario file `file`, parsed as a user's command line.
fn args(argv: &[&str], file: &str) -> Result<RunArgs, String> {
    herd::cli::run_args_with_file(argv, file)
}

fn ok(argv: &[&str], file: &str) -> Scenario {
    resolve(&args(argv, file).unwrap(), &[0, 1]).unwrap()
}

fn err(argv: &[&str], file: &str) -> String {
    match args(argv, file) {
        Ok(a) => resolve(&a, &[0, 1]).unwrap_err().to_string(),
        Err(e) => e,
    }
}

#[test]
fn a_population_resolves_with_the_herd_room_steps() {
    let s = ok(&["--seed", "5"], POP);
    let p = s.generated.as_ref().unwrap();
    assert_eq!((p.users(), p.communities.len()), (300, 3));
    assert_eq!(s.connections(), p.connections() as u64);
    assert_eq!(s.communities(), vec![0, 1, 2]);
    assert_eq!(s.protocol.room_steps_from(), 0);
    assert!(s.protocol.send.as_ref().unwrap().uses(herd::config::template::Var::Room));
    // The same seed gives the same population.
    let again = ok(&["--seed", "5"], POP);
    assert_eq!(again.generated, s.generated);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["population"]["classes"][1]["size"], "3-10");
}

#[test]
fn a_shard_runs_its_communities_only() {
    let s = ok(&["--seed", "5", "--shard", "1/2"], POP);
    assert_eq!(s.communities(), vec![1]);
    assert_eq!(s.connections(), s.generated.as_ref().unwrap().connections_of([1]));
}

#[test]
fn what_a_population_cannot_run_with_is_refused_by_name() {
    assert!(err(&[], &format!("members = 3\n{POP}")).contains("--members"));
    assert!(err(&["--reconnect"], POP).contains("--reconnect"));
    // The flags alone describe one too, and -c with --users is refused by the command line.
    assert_eq!(ok(&["--users", "50", "--room-class", "dm,rooms=20,size=2"], "").connections(), 50);
    assert!(err(&["--users", "50", "-c", "3", "--room-class", "dm,rooms=20,size=2"], "").contains("--users"));
    let nchan = format!("url = \"ws://127.0.0.1:9/sub/{{conv}}\"\ntarget = \"nchan\"\n{POP}");
    let e = err(&[], &nchan);
    assert!(e.contains("--target") && e.contains("nchan") && e.contains("one channel per connection"), "{e}");
    let no_room = format!("url = \"ws://127.0.0.1:9/u/{{user}}\"\njoin = \"hello\"\n{POP}");
    assert!(err(&[], &no_room).contains("{room}"));
    let no_send_room = format!("url = \"ws://127.0.0.1:9/u?r={{rooms}}\"\njoin = []\nsend = \"{{payload}}\"\n{POP}");
    assert!(err(&[], &no_send_room).contains("--send"));
    assert!(err(&[], "[population]\nusers = 10\ncolour = 1").contains("[population]"));
    assert!(err(&[], "[populaton]\nusers = 10").contains("[populaton]"));
}

#[test]
fn the_socketio_population_joins_once_then_per_room() {
    let f = format!("url = \"ws://127.0.0.1:9/socket.io/?EIO=4&transport=websocket\"\ntarget = \"socketio\"\n{POP}");
    let s = ok(&[], &f);
    // The Engine.IO open and namespace connect once, the join and its acknowledgement per room.
    assert_eq!((s.protocol.room_steps_from(), s.protocol.join.len()), (3, 5));
}
