//! Presets for known chat servers (`--target NAME`): the protocol settings a server expects, so
//! that `--target nchan --url ...` is all a user has to write. Every setting of a preset can be
//! overridden by its own flag or scenario key. docs/TARGETS.md shows an example run for each.

use super::Unmarked;
use std::time::Duration;

/// One preset. Template strings use the placeholders of [`crate::config::template`].
#[derive(Debug)]
pub struct Preset {
    pub name: &'static str,
    /// One line for `--help` and error messages.
    pub about: &'static str,
    /// An example URL template (documentation and error messages only).
    pub url_example: &'static str,
    /// The join sequence: frames to send and server frames to wait for, in order.
    pub join: &'static [PresetStep],
    /// `None`: the message is the bare payload.
    pub send: Option<&'static str>,
    pub subprotocols: &'static [&'static str],
    pub ping_interval: Option<Duration>,
    pub ping_frame: Option<&'static str>,
    /// The expected answer to `ping_frame` (a pattern).
    pub pong_frame: Option<&'static str>,
    /// Automatic answers, `PATTERN=RESPONSE` (as `--reply`).
    pub replies: &'static [&'static str],
    pub unmarked: Unmarked,
    /// The server sends each message back to its sender too (counted as `echoed`, never as
    /// delivered).
    pub echoes: bool,
}

/// A join step of a preset: a frame to send, or a pattern of the server frame to wait for.
#[derive(Debug, Clone, Copy)]
pub enum PresetStep {
    Send(&'static str),
    Expect(&'static str),
}

/// Action Cable's channel identifier for conversation `{conv}`, as the JSON string it is sent as.
macro_rules! cable_id {
    () => {
        r#""{\"channel\":\"ChatChannel\",\"room\":\"{conv}\"}""#
    };
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "herd",
        about: "herd serve (the default): bare text messages on /conv/{conv}",
        url_example: "ws://127.0.0.1:8080/conv/{conv}?user={user}",
        join: &[],
        send: None,
        subprotocols: &[],
        ping_interval: None,
        ping_frame: None,
        pong_frame: None,
        replies: &[],
        unmarked: Unmarked::Error,
        echoes: false,
    },
    Preset {
        name: "nchan",
        about: "nginx + nchan, one nchan_pubsub websocket channel per conversation",
        url_example: "ws://127.0.0.1:8080/conv/{conv}",
        join: &[],
        send: None,
        subprotocols: &[],
        ping_interval: None,
        ping_frame: None,
        pong_frame: None,
        replies: &[],
        unmarked: Unmarked::Error,
        echoes: true,
    },
    Preset {
        name: "phoenix",
        about: "Phoenix Channels (V2 JSON serializer), topic room:{conv}, event new_msg",
        url_example: "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0",
        // A member is owed messages only once the server confirmed the join (phx_reply ok).
        join: &[
            PresetStep::Send(r#"["1","1","room:{conv}","phx_join",{}]"#),
            PresetStep::Expect(r#"^\["1","1","room:[^"]*","phx_reply",\{.*"status":"ok""#),
        ],
        send: Some(r#"["1","{seq}","room:{conv}","new_msg",{"body":"{payload}"}]"#),
        subprotocols: &[],
        ping_interval: Some(Duration::from_secs(30)),
        ping_frame: Some(r#"[null,"hb","phoenix","heartbeat",{}]"#),
        pong_frame: Some(r#"^\[null,"hb","phoenix","phx_reply",\{"status":"ok""#),
        replies: &[],
        unmarked: Unmarked::Ignore,
        echoes: true,
    },
    Preset {
        name: "actioncable",
        about: "Rails Action Cable, ChatChannel with a room param, messages via receive",
        url_example: "ws://127.0.0.1:3000/cable",
        // Action Cable streams to a subscriber only after confirm_subscription; subscribing
        // before the welcome is also refused by some deployments.
        join: &[
            PresetStep::Expect(r#""type":"welcome""#),
            PresetStep::Send(concat!(r#"{"command":"subscribe","identifier":"#, cable_id!(), "}")),
            PresetStep::Expect(r#""type":"confirm_subscription""#),
        ],
        send: Some(concat!(
            r#"{"command":"message","identifier":"#,
            cable_id!(),
            r#","data":"{\"body\":\"{payload}\"}"}"#
        )),
        subprotocols: &["actioncable-v1-json"],
        ping_interval: None,
        ping_frame: None,
        pong_frame: None,
        replies: &[],
        unmarked: Unmarked::Ignore,
        echoes: true,
    },
    Preset {
        name: "socketio",
        about: "Socket.IO v5 over Engine.IO v4 (WebSocket transport only): namespace connect, \
                event join with room-{conv}, messages as event message, server pings answered",
        url_example: "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket",
        // The Engine.IO open packet, then the namespace connect and its answer: a Socket.IO
        // server drops a client that emits an event before its namespace connect is confirmed.
        join: &[
            PresetStep::Expect(r"^0\{"),
            PresetStep::Send("40"),
            PresetStep::Expect(r"^40"),
            PresetStep::Send(r#"42["join","room-{conv}"]"#),
        ],
        send: Some(r#"42["message","{payload}"]"#),
        subprotocols: &[],
        // The server pings (`2`) every pingInterval and drops a client that does not answer `3`.
        ping_interval: None,
        ping_frame: None,
        pong_frame: None,
        replies: &["^2$=3"],
        unmarked: Unmarked::Ignore,
        echoes: false,
    },
];

/// A preset's join steps and message envelope for a population, where one connection joins
/// every room of its user: the steps before the first that names `{room}` run once per
/// connection, the rest once per room, each waiting for the server's acknowledgement.
#[derive(Debug, Clone, Copy)]
pub struct RoomSteps {
    pub join: &'static [PresetStep],
    pub send: &'static str,
}

/// The population variant of preset `name`; `None` for a server that cannot hold one connection
/// in many rooms (nchan: its pub/sub location takes one channel per socket).
pub fn rooms(name: &str) -> Option<RoomSteps> {
    use PresetStep::{Expect, Send};
    match name {
        "herd" => {
            Some(RoomSteps { join: &[Send("join {room}"), Expect("^joined {room}$")], send: "to {room} {payload}" })
        }
        "socketio" => Some(RoomSteps {
            // The join event carries the room as its acknowledgement id, so each join's answer
            // (`43<id>[...]`) names its room.
            join: &[
                Expect(r"^0\{"),
                Send("40"),
                Expect("^40"),
                Send(r#"42{room}["join","room-{room}"]"#),
                Expect(r"^43{room}\["),
            ],
            send: r#"42["message","{payload}","room-{room}"]"#,
        }),
        "phoenix" => Some(RoomSteps {
            join: &[
                Send(r#"["{room}","{room}","room:{room}","phx_join",{}]"#),
                Expect(r#"^\["{room}","{room}","room:{room}","phx_reply",\{"status":"ok""#),
            ],
            send: r#"["{room}","{seq}","room:{room}","new_msg",{"body":"{payload}"}]"#,
        }),
        "actioncable" => Some(RoomSteps {
            join: &[
                Send(r#"{"command":"subscribe","identifier":"{\"channel\":\"ChatChannel\",\"room\":\"{room}\"}"}"#),
                Expect(r#"room\\":\\"{room}\\"\}","type":"confirm_subscription""#),
            ],
            send: r#"{"command":"message","identifier":"{\"channel\":\"ChatChannel\",\"room\":\"{room}\"}","data":"{\"body\":\"{payload}\"}"}"#,
        }),
        _ => None,
    }
}

/// The default preset.
pub fn herd() -> &'static Preset {
    &PRESETS[0]
}

pub fn find(name: &str) -> Result<&'static Preset, String> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        format!("unknown target '{name}' (known: {})", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::template::{Fill, Text, Var, Vars};

    #[test]
    fn every_preset_parses_and_its_messages_carry_the_payload() {
        for p in PRESETS {
            for j in p.join {
                match j {
                    PresetStep::Send(j) => {
                        Text::parse(j, Var::CONNECTION).unwrap_or_else(|e| panic!("{} join: {e}", p.name));
                    }
                    PresetStep::Expect(e) => {
                        crate::config::protocol::steps::Pattern::parse(e)
                            .unwrap_or_else(|e| panic!("{} expect: {e}", p.name));
                    }
                }
            }
            for r in p.replies {
                crate::config::protocol::steps::Reply::parse(r).unwrap_or_else(|e| panic!("{} reply: {e}", p.name));
            }
            if let Some(s) = p.send {
                let t = Text::parse(s, Var::MESSAGE).unwrap_or_else(|e| panic!("{} send: {e}", p.name));
                assert!(t.uses(Var::Payload), "{}", p.name);
            }
            if let Some(f) = p.ping_frame {
                Text::parse(f, Var::CONNECTION).unwrap();
                assert!(p.ping_interval.is_some(), "{}", p.name);
            }
            crate::config::template::UrlTemplate::parse(p.url_example).unwrap();
        }
    }

    #[test]
    fn json_presets_render_valid_json() {
        let fill =
            Fill { vars: Vars { conv: 7, member: 1, user: 29 }, token: "", seq: 3, payload: "~h1.a.b~---", rooms: &[] };
        for name in ["phoenix", "actioncable", "socketio"] {
            let p = find(name).unwrap();
            let mut s = String::new();
            for j in p.join {
                let PresetStep::Send(j) = j else { continue };
                Text::parse(j, Var::CONNECTION).unwrap().render(&fill, &mut s);
                // Socket.IO: the packet type digits, then JSON (nothing for a namespace connect).
                let json = s.trim_start_matches(|c: char| c.is_ascii_digit());
                if !json.is_empty() {
                    serde_json::from_str::<serde_json::Value>(json).unwrap_or_else(|e| panic!("{name} join {s}: {e}"));
                }
            }
            Text::parse(p.send.unwrap(), Var::MESSAGE).unwrap().render(&fill, &mut s);
            let s = s.trim_start_matches(|c: char| c.is_ascii_digit()).to_string();
            let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{name} send {s}: {e}"));
            assert!(s.contains("~h1.a.b~---"), "{s}");
            if name == "actioncable" {
                let id: serde_json::Value = serde_json::from_str(v["identifier"].as_str().unwrap()).unwrap();
                assert_eq!(id["room"], "7");
                let data: serde_json::Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
                assert_eq!(data["body"], "~h1.a.b~---");
            }
        }
    }

    /// The acknowledgement steps against the frames the real servers send (Action Cable 6.1 and
    /// Phoenix 1.7 with the V2 serializer), refusals included.
    #[test]
    fn joins_wait_for_the_servers_acknowledgements() {
        let expects = |name: &str| -> Vec<crate::config::protocol::steps::Pattern> {
            find(name)
                .unwrap()
                .join
                .iter()
                .filter_map(|j| match j {
                    PresetStep::Expect(e) => Some(crate::config::protocol::steps::Pattern::parse(e).unwrap()),
                    PresetStep::Send(_) => None,
                })
                .collect()
        };
        let cable = expects("actioncable");
        assert_eq!(cable.len(), 2);
        assert!(cable[0].matches(r#"{"type":"welcome"}"#));
        let confirm = r#"{"identifier":"{\"channel\":\"ChatChannel\",\"room\":\"7\"}","type":"confirm_subscription"}"#;
        assert!(!cable[0].matches(confirm) && cable[1].matches(confirm));
        assert!(!cable[1].matches(r#"{"identifier":"{}","type":"reject_subscription"}"#));
        assert!(!cable[1].matches(r#"{"type":"ping","message":1700000000}"#));
        let phx = expects("phoenix");
        assert_eq!(phx.len(), 1);
        assert!(phx[0].matches(r#"["1","1","room:7","phx_reply",{"response":{},"status":"ok"}]"#));
        assert!(phx[0].matches(r#"["1","1","room:7","phx_reply",{"status":"ok","response":{}}]"#));
        assert!(!phx[0]
            .matches(r#"["1","1","room:7","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#));
        assert!(!phx[0].matches(r#"[null,"hb","phoenix","phx_reply",{"response":{},"status":"ok"}]"#));
    }

    #[test]
    fn names_are_found_case_insensitively() {
        assert_eq!(find("NCHAN").unwrap().name, "nchan");
        assert_eq!(find("SocketIO").unwrap().name, "socketio");
        let e = find("xmpp").unwrap_err();
        assert!(e.contains("herd, nchan"), "{e}");
    }
}
