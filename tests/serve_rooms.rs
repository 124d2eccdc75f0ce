//! herd serve's multi-room connections (`/user/{id}` and its `join`, `leave`, `to` commands), with
//! a plain WebSocket client: what reaches whom (counted exactly), answers and errors, and the
//! guarantee that a message sent after `joined` (or after a `/conv/` 101) reaches the joiner, also
//! with 16 executors on 2 cores.
//!
//! Counting exactly: every client also joins room `all`, and after its own messages each sender
//! sends an `END` marker to the rooms it used. A sender's frames reach a given connection in the
//! order sent (one path: its core to the receiver's core), so once a client holds the marker of
//! every sender it shares a room with, it holds everything they sent it.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// Longest a test waits for one frame: a frame that does not come in this long is missing.
const WAIT: Duration = Duration::from_secs(10);

struct Client {
    ws: WebSocket<TcpStream>,
}

impl Client {
    fn connect(addr: &str, path: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let (ws, resp) = tungstenite::client(format!("ws://{addr}{path}").as_str(), stream).expect("upgrade");
        assert_eq!(resp.status(), 101);
        Client { ws }
    }

    fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    /// The next text frame (panics after `WAIT` without one).
    fn recv(&mut self) -> String {
        loop {
            match self.ws.read().unwrap_or_else(|e| panic!("no frame within {WAIT:?}: {e}")) {
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    fn expect(&mut self, text: &str) {
        assert_eq!(self.recv(), text);
    }

    fn join(&mut self, room: &str) {
        self.send(&format!("join {room}"));
        self.expect(&format!("joined {room}"));
    }

    /// Reads until it holds an `END {name}` marker from each of `senders`; returns the other
    /// frames received meanwhile.
    fn until_ends(&mut self, senders: &BTreeSet<String>) -> Vec<String> {
        let mut ends = BTreeSet::new();
        let mut got = Vec::new();
        while &ends != senders {
            let t = self.recv();
            match t.strip_prefix("END ") {
                Some(who) => assert!(ends.insert(who.to_string()), "two END markers from {who}"),
                None => got.push(t),
            }
        }
        got
    }
}

fn metric(srv: &ServeProc, name: &str) -> f64 {
    srv.metrics().get(name).copied().unwrap_or_else(|| panic!("no {name}"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn one_connection_in_many_rooms_gets_exactly_its_rooms_messages() {
    let srv = ServeProc::start(&["--threads", "4"]);
    // name -> rooms; "a2" is a second connection of user a.
    let members: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("a", vec!["r1", "r2", "r3"]),
        ("a2", vec!["r1"]),
        ("b", vec!["r1", "r2"]),
        ("c", vec!["r2", "r3"]),
        ("d", vec!["r3"]),
    ]);
    let mut clients: BTreeMap<&str, Client> = BTreeMap::new();
    for (&name, rooms) in &members {
        let user = name.trim_end_matches('2');
        let mut c = Client::connect(&srv.addr, &format!("/user/{user}"));
        for r in rooms.iter().chain(&["all"]) {
            c.join(r);
        }
        clients.insert(name, c);
    }
    // A /conv/ connection in r1, as before: its plain frames go to r1.
    let mut conv = Client::connect(&srv.addr, "/conv/r1");

    // Every user connection sends one message to each of its rooms; the /conv/ one sends one.
    let mut expected: BTreeMap<&str, Vec<String>> = members.keys().map(|&n| (n, vec![])).collect();
    for (&name, rooms) in &members {
        for r in rooms {
            let text = format!("{name} to {r}");
            clients.get_mut(name).unwrap().send(&format!("to {r} {text}"));
            for (&other, their) in &members {
                if other != name && their.contains(r) {
                    expected.get_mut(other).unwrap().push(text.clone());
                }
            }
        }
        clients.get_mut(name).unwrap().send(&format!("to all END {name}"));
    }
    conv.send("conv to r1");
    conv.send("END conv");
    for (&name, rooms) in &members {
        if rooms.contains(&"r1") {
            expected.get_mut(name).unwrap().push("conv to r1".into());
        }
    }

    let mut delivered = 0;
    for (&name, c) in clients.iter_mut() {
        let mut senders: BTreeSet<String> = members.keys().filter(|&&n| n != name).map(|n| n.to_string()).collect();
        if members[name].contains(&"r1") {
            senders.insert("conv".into());
        }
        let got = c.until_ends(&senders);
        assert_eq!(sorted(got), sorted(expected[name].clone()), "what {name} received");
        delivered += expected[name].len() + senders.len();
    }
    // The /conv/ connection gets r1's messages (not its own), then the markers sent to r1 only.
    let r1_senders: Vec<&str> = members.iter().filter(|(_, r)| r.contains(&"r1")).map(|(n, _)| *n).collect();
    let mut got: Vec<String> = (0..r1_senders.len()).map(|_| conv.recv()).collect();
    got.sort();
    let want = sorted(r1_senders.iter().map(|n| format!("{n} to r1")).collect());
    assert_eq!(got, want);
    delivered += r1_senders.len();
    // Nothing was written beyond what the clients read (answers to commands are not messages).
    wait_for("deliveries counted", WAIT, || metric(&srv, "herd_server_messages_delivered_total") as usize >= delivered);
    assert_eq!(metric(&srv, "herd_server_messages_delivered_total") as usize, delivered);
    assert_eq!(metric(&srv, "herd_server_rooms"), 4.0, "r1, r2, r3, all");
}

#[test]
fn leave_refusals_and_unknown_commands_are_answered_and_keep_the_connection() {
    let srv = ServeProc::start(&["--threads", "2"]);
    let mut a = Client::connect(&srv.addr, "/user/a");
    let mut b = Client::connect(&srv.addr, "/user/b");
    for c in [&mut a, &mut b] {
        c.join("all");
        c.join("r");
    }
    // Joining twice answers again and changes nothing: b's message reaches a once.
    a.join("r");
    b.send("to r once");
    b.send("to all END b");
    assert_eq!(a.until_ends(&BTreeSet::from(["b".to_string()])), vec!["once".to_string()]);

    a.send("leave r");
    a.expect("left r");
    b.send("to r after-leave");
    b.send("to all END b");
    assert_eq!(a.until_ends(&BTreeSet::from(["b".to_string()])), Vec::<String>::new());
    // No longer a member: refused, and counted.
    a.send("to r refused");
    a.expect("error not-member r");
    // Leaving a room it is not in answers as well.
    a.send("leave r");
    a.expect("left r");

    for bad in ["hello", "join", "join two words", "to r", &format!("join {}", "x".repeat(129))] {
        a.send(bad);
        a.expect("error unknown-command");
    }
    a.ws.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    a.expect("error unknown-command");
    // Still served: a join and a message go through.
    a.join("r");
    b.send("to r back");
    b.send("to all END b");
    assert_eq!(a.until_ends(&BTreeSet::from(["b".to_string()])), vec!["back".to_string()]);

    let m = srv.metrics();
    assert_eq!(m["herd_server_commands_refused_total{reason=\"not_member\"}"], 1.0);
    assert_eq!(m["herd_server_commands_refused_total{reason=\"unknown_command\"}"], 6.0);
    // b received nothing: every message it sent went to others.
    assert_eq!(m["herd_server_messages_delivered_total"], 5.0, "once, back, and b's three END markers");
}

#[test]
fn a_disconnect_leaves_every_room() {
    let srv = ServeProc::start(&["--threads", "2"]);
    let mut a = Client::connect(&srv.addr, "/user/a");
    for i in 0..50 {
        a.join(&format!("room{i}"));
    }
    let mut b = Client::connect(&srv.addr, "/user/b");
    b.join("room7");
    assert_eq!(metric(&srv, "herd_server_rooms"), 50.0);
    drop(a);
    wait_for("rooms left", WAIT, || metric(&srv, "herd_server_rooms") == 1.0);
    // room7 holds only b now: b's message goes nowhere, and nothing is refused.
    b.send("to room7 alone");
    b.join("room8");
    assert_eq!(metric(&srv, "herd_server_messages_delivered_total"), 0.0);
    assert_eq!(metric(&srv, "herd_server_rooms"), 2.0);
}

/// With 16 executors on 2 cores, a joiner lands on one core and the senders on others: a message
/// sent right after the joiner sees `joined` (or its 101 on `/conv/`) must still reach it.
#[test]
fn a_message_sent_right_after_joined_arrives_with_many_executors() {
    let srv = ServeProc::start(&["--threads", "16"]);
    const SENDERS: usize = 24;
    const TRIALS: usize = 120;
    let mut senders: Vec<Client> = (0..SENDERS).map(|i| Client::connect(&srv.addr, &format!("/user/s{i}"))).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for t in 0..TRIALS {
        assert!(Instant::now() < deadline, "trials took over a minute");
        let room = format!("g{t}");
        let s = &mut senders[t % SENDERS];
        s.join(&room);
        if t % 2 == 0 {
            let mut r = Client::connect(&srv.addr, &format!("/user/r{t}"));
            r.join(&room);
            s.send(&format!("to {room} m{t}"));
            assert_eq!(r.recv(), format!("m{t}"), "trial {t} (/user/)");
        } else {
            // The 101 carries the same guarantee.
            let mut r = Client::connect(&srv.addr, &format!("/conv/{room}"));
            s.send(&format!("to {room} m{t}"));
            assert_eq!(r.recv(), format!("m{t}"), "trial {t} (/conv/)");
        }
    }
    assert_eq!(metric(&srv, "herd_server_messages_delivered_total"), TRIALS as f64);
}

/// `to` is relayed like a `/conv/` frame: `--echo` returns it to the sender as well, and
/// `--duplicate-every 1` delivers every copy twice.
#[test]
fn echo_and_fault_injection_apply_to_to() {
    let srv = ServeProc::start(&["--threads", "2", "--echo", "--duplicate-every", "1"]);
    let mut a = Client::connect(&srv.addr, "/user/a");
    let mut b = Client::connect(&srv.addr, "/user/b");
    a.join("r");
    b.join("r");
    a.send("to r hi there");
    for c in [&mut a, &mut b] {
        c.expect("hi there");
        c.expect("hi there");
    }
    let m = srv.metrics();
    assert_eq!(m["herd_server_messages_duplicated_total"], 2.0);
    assert_eq!(m["herd_server_messages_received_total"], 1.0);
}
