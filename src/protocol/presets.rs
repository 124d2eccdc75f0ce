//! Presets for known chat servers (`--target NAME`): the protocol settings a server expects, so
//! that `--target nchan --url ...` is all a user has to write. Every setting of a preset can be
//! overridden by its own flag or scenario key. docs/TARGETS.md shows an example run for each.

use super::Unmarked;
use std::time::Duration;

/// One preset. Template strings use the placeholders of [`crate::template`].
#[derive(Debug)]
pub struct Preset {
    pub name: &'static str,
    /// One line for `--help` and error messages.
    pub about: &'static str,
    /// An example URL template (documentation and error messages only).
    pub url_example: &'static str,
    pub join: &'static [&'static str],
    /// `None`: the message is the bare payload.
    pub send: Option<&'static str>,
    pub subprotocols: &'static [&'static str],
    pub ping_interval: Option<Duration>,
    pub ping_frame: Option<&'static str>,
    pub unmarked: Unmarked,
    /// The server sends each message back to its sender too (counted as `echoed`, never as
    /// delivered).
    pub echoes: bool,
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
        unmarked: Unmarked::Error,
        echoes: true,
    },
    Preset {
        name: "phoenix",
        about: "Phoenix Channels (V2 JSON serializer), topic room:{conv}, event new_msg",
        url_example: "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0",
        join: &[r#"["1","1","room:{conv}","phx_join",{}]"#],
        send: Some(r#"["1","{seq}","room:{conv}","new_msg",{"body":"{payload}"}]"#),
        subprotocols: &[],
        ping_interval: Some(Duration::from_secs(30)),
        ping_frame: Some(r#"[null,"hb","phoenix","heartbeat",{}]"#),
        unmarked: Unmarked::Ignore,
        echoes: true,
    },
    Preset {
        name: "actioncable",
        about: "Rails Action Cable, ChatChannel with a room param, messages via receive",
        url_example: "ws://127.0.0.1:3000/cable",
        join: &[concat!(r#"{"command":"subscribe","identifier":"#, cable_id!(), "}")],
        send: Some(concat!(
            r#"{"command":"message","identifier":"#,
            cable_id!(),
            r#","data":"{\"body\":\"{payload}\"}"}"#
        )),
        subprotocols: &["actioncable-v1-json"],
        ping_interval: None,
        ping_frame: None,
        unmarked: Unmarked::Ignore,
        echoes: true,
    },
];

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
    use crate::template::{Fill, Text, Var, Vars};

    #[test]
    fn every_preset_parses_and_its_messages_carry_the_payload() {
        for p in PRESETS {
            for j in p.join {
                Text::parse(j, Var::CONNECTION).unwrap_or_else(|e| panic!("{} join: {e}", p.name));
            }
            if let Some(s) = p.send {
                let t = Text::parse(s, Var::MESSAGE).unwrap_or_else(|e| panic!("{} send: {e}", p.name));
                assert!(t.uses(Var::Payload), "{}", p.name);
            }
            if let Some(f) = p.ping_frame {
                Text::parse(f, Var::CONNECTION).unwrap();
                assert!(p.ping_interval.is_some(), "{}", p.name);
            }
            crate::template::UrlTemplate::parse(p.url_example).unwrap();
        }
    }

    #[test]
    fn json_presets_render_valid_json() {
        let fill = Fill { vars: Vars { conv: 7, member: 1, user: 29 }, token: "", seq: 3, payload: "~h1.a.b~---" };
        for name in ["phoenix", "actioncable"] {
            let p = find(name).unwrap();
            let mut s = String::new();
            for j in p.join {
                Text::parse(j, Var::CONNECTION).unwrap().render(&fill, &mut s);
                serde_json::from_str::<serde_json::Value>(&s).unwrap_or_else(|e| panic!("{name} join {s}: {e}"));
            }
            Text::parse(p.send.unwrap(), Var::MESSAGE).unwrap().render(&fill, &mut s);
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

    #[test]
    fn names_are_found_case_insensitively() {
        assert_eq!(find("NCHAN").unwrap().name, "nchan");
        let e = find("socketio").unwrap_err();
        assert!(e.contains("herd, nchan"), "{e}");
    }
}
