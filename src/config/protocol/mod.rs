//! How herd speaks to a chat server beyond the WebSocket itself: the frames sent after the
//! handshake (`--join`), the envelope of a chat message (`--send`), extra upgrade headers
//! (`--header`, with per-user `--tokens`), the requested subprotocol, keep-alives, what a frame
//! without herd's marker means, and presets bundling all of these for known servers (`--target`).
//!
//! Precedence for each setting: flag, then scenario file key, then the preset, then the default.
//! For the repeatable settings (`--join`, `--header`, `--subprotocol`) the flags given replace the
//! file's list, which replaces the preset's; an empty value (`--join ''`) gives an empty list.
//! Everything is parsed and checked here, once per run; connections only render the parsed
//! templates (see `client::protocol`).

pub mod presets;
pub mod steps;
pub mod tokens;

use crate::config::template::{Text, UrlTemplate, Var};
use crate::config::units;
use crate::error::{Error, Result};
use clap::Args;
use serde::{Serialize, Serializer};
use std::path::PathBuf;
use std::time::Duration;
use steps::{Pattern, Reply, Step};

/// What a frame without herd's marker means (`--unmarked`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unmarked {
    #[default]
    Error,
    Ignore,
}

#[derive(Args, Debug, Default, Clone)]
pub struct ProtocolArgs {
    /// Preset for a known server: herd, nchan, phoenix, actioncable, socketio (docs/TARGETS.md); any other
    /// protocol flag overrides the preset's value [default: herd]
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Text frame to send right after the handshake (e.g. a JSON subscribe message); repeatable,
    /// sent in order. Placeholders: {conv} {member} {user} {token}
    #[arg(long, value_name = "TEMPLATE")]
    pub join: Vec<String>,
    /// Join step: wait for a server text frame matching this regular expression before the next
    /// --join (e.g. --join 40 --expect '^40' --join '42["join","room-{conv}"]'); repeatable
    #[arg(long, value_name = "PATTERN")]
    pub expect: Vec<String>,
    /// How many --join flags came before each --expect (filled from the command line's order).
    #[arg(skip)]
    pub expect_after: Vec<usize>,
    /// Longest wait of one --expect step; a connection whose step times out fails with
    /// join_timeout [default: 10s]
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub expect_timeout: Option<Duration>,
    /// Answer every server text frame matching PATTERN with the text frame RESPONSE (application
    /// pings: '^2$=3', '"type":"ping"={"type":"pong"}'); counted as pings received and pongs
    /// sent. Write \= for a literal = in PATTERN; repeatable, the first match answers
    #[arg(long, value_name = "PATTERN=RESPONSE")]
    pub reply: Vec<String>,
    /// The server's answer to --ping-frame (a regular expression): such frames count as pongs
    /// received, and a keep-alive still unanswered when the next is due as a missed pong
    #[arg(long, value_name = "PATTERN")]
    pub pong_frame: Option<String>,
    /// Origin header of the upgrade request (servers that check it refuse clients without one,
    /// often with 403)
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,
    /// Envelope of a chat message: {payload} is where herd's marker goes; also {seq} {conv}
    /// {member} {user} {token} [default: the bare payload]
    #[arg(long, value_name = "TEMPLATE")]
    pub send: Option<String>,
    /// Extra header of the upgrade request, e.g. 'Authorization: Bearer {token}'; repeatable
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// One token per line; user U gets line U mod lines as {token}
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Subprotocol to request (Sec-WebSocket-Protocol); repeatable. The server must select one
    /// of them, or the handshake fails
    #[arg(long, value_name = "NAME")]
    pub subprotocol: Vec<String>,
    /// Keep-alive: each connection sends a ping this often, spread evenly over the interval;
    /// 0 turns it off [default: off]
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    pub ping_interval: Option<Duration>,
    /// Send this text frame as the keep-alive instead of a WebSocket ping (application
    /// heartbeats). Placeholders: {conv} {member} {user} {token}
    #[arg(long, value_name = "TEMPLATE")]
    pub ping_frame: Option<String>,
    /// A frame without herd's marker: an error (marker_missing), or ignored and counted in
    /// websocket.unmarked_frames [default: error]
    #[arg(long, value_enum)]
    pub unmarked: Option<Unmarked>,
    /// Send chat messages as binary frames (join and keep-alive frames stay text)
    #[arg(long)]
    pub binary: bool,
}

/// One extra upgrade header; the value is a template.
#[derive(Clone, Debug)]
pub struct Header {
    pub name: String,
    pub value: Text,
}

/// The resolved protocol of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Protocol {
    /// The preset's name.
    pub target: &'static str,
    pub join: Vec<Step>,
    #[serde(serialize_with = "units::secs::serialize")]
    pub expect_timeout: Duration,
    pub replies: Vec<Reply>,
    pub pong_frame: Option<Pattern>,
    /// `None`: the message is the bare payload.
    pub send: Option<Text>,
    /// Header names only: values may hold secrets.
    #[serde(serialize_with = "header_names")]
    pub headers: Vec<Header>,
    pub tokens: Option<PathBuf>,
    pub subprotocols: Vec<String>,
    #[serde(serialize_with = "units::secs::serialize_opt")]
    pub ping_interval: Option<Duration>,
    /// `None` with a ping interval: WebSocket pings.
    pub ping_frame: Option<Text>,
    pub unmarked: Unmarked,
    pub binary: bool,
}

impl Default for Protocol {
    fn default() -> Protocol {
        Protocol {
            target: presets::herd().name,
            join: vec![],
            expect_timeout: DEFAULT_EXPECT_TIMEOUT,
            replies: vec![],
            pong_frame: None,
            send: None,
            headers: vec![],
            tokens: None,
            subprotocols: vec![],
            ping_interval: None,
            ping_frame: None,
            unmarked: Unmarked::Error,
            binary: false,
        }
    }
}

fn header_names<S: Serializer>(h: &[Header], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(h.iter().map(|h| h.name.as_str()))
}

/// The longest wait of one `--expect` step unless set.
pub const DEFAULT_EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Upgrade headers herd writes itself.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// Combines the flags (the scenario file's keys are flags by now) and the preset (pure). `url` is
/// the run's URL template, if any (without one, herd targets its embedded server).
pub fn resolve(a: &ProtocolArgs, url: Option<&UrlTemplate>) -> Result<Protocol> {
    resolve_for(a, url, false)
}

/// [`resolve`] for a run that is a population (`population`) or the grid: a population takes
/// its preset's room variant (`presets::rooms`), and its joins and messages must name the room.
pub fn resolve_for(a: &ProtocolArgs, url: Option<&UrlTemplate>, population: bool) -> Result<Protocol> {
    let usage = |flag: &str, msg: String| Error::Usage(format!("--{flag}: {msg}"));
    let target_name = a.target.clone();
    let preset = match &target_name {
        Some(n) => presets::find(n).map_err(|e| usage("target", e))?,
        None => presets::herd(),
    };
    if url.is_none() && preset.name != presets::herd().name {
        return Err(usage("target", format!("'{}' needs --url, e.g. --url '{}'", preset.name, preset.url_example)));
    }
    // A list given replaces the preset's.
    let list = |flag: &[String], preset: &[&str]| -> Vec<String> {
        if flag.is_empty() {
            preset.iter().map(|s| s.to_string()).collect()
        } else {
            flag.to_vec()
        }
    };
    let text = |flag: &str, s: &str, vars: &[Var]| Text::parse(s, vars).map_err(|e| usage(flag, format!("'{s}': {e}")));

    let rooms = match (population, presets::rooms(preset.name)) {
        (true, None) => {
            return Err(usage(
                "target",
                format!(
                    "'{}' cannot run a population: its server takes one channel per connection, and a \
                     population's connection joins every room of its user (run it with -c/-k)",
                    preset.name
                ),
            ))
        }
        (true, r) => r,
        (false, _) => None,
    };
    let join = join_steps(a, preset, rooms.as_ref())?;
    let pattern = |flag: &str, s: &str| Pattern::parse(s).map_err(|e| usage(flag, e));
    let expect_timeout = a.expect_timeout.unwrap_or(DEFAULT_EXPECT_TIMEOUT);
    if expect_timeout.is_zero() {
        return Err(usage("expect-timeout", "must be more than 0".into()));
    }
    let replies = list(&a.reply, preset.replies)
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| Reply::parse(s).map_err(|e| usage("reply", e)))
        .collect::<Result<Vec<_>>>()?;
    let pong_frame = match a.pong_frame.clone().or(preset.pong_frame.map(String::from)) {
        Some(s) if !s.is_empty() => Some(pattern("pong-frame", &s)?),
        _ => None,
    };
    let preset_send = rooms.map(|r| r.send).or(preset.send);
    let send = match a.send.clone().or(preset_send.map(String::from)) {
        Some(s) if !s.is_empty() => {
            let t = text("send", &s, Var::MESSAGE)?;
            if !t.uses(Var::Payload) {
                return Err(usage("send", format!("'{s}' has no {{payload}}: receivers could not find the message")));
            }
            Some(t)
        }
        _ => None,
    };
    let mut headers = list(&a.headers, &[])
        .iter()
        .filter(|s| !s.is_empty())
        .map(|h| parse_header(h).map_err(|e| usage("header", e)))
        .collect::<Result<Vec<_>>>()?;
    if let Some(o) = a.origin.clone().filter(|o| !o.is_empty()) {
        if headers.iter().any(|h| h.name.eq_ignore_ascii_case("origin")) {
            return Err(usage("origin", "an Origin header is also given with --header; give one of them".into()));
        }
        let h = parse_header(&format!("Origin: {o}")).map_err(|e| usage("origin", e))?;
        headers.push(h);
    }
    let subprotocols: Vec<String> =
        list(&a.subprotocol, preset.subprotocols).into_iter().filter(|s| !s.is_empty()).collect();
    for (i, p) in subprotocols.iter().enumerate() {
        if p.is_empty() || !p.bytes().all(is_token_char) {
            return Err(usage("subprotocol", format!("'{p}' is not a valid subprotocol name (an HTTP token)")));
        }
        if subprotocols[..i].contains(p) {
            return Err(usage("subprotocol", format!("'{p}' is given twice")));
        }
    }
    let ping_interval = a.ping_interval.or(preset.ping_interval).filter(|d| !d.is_zero());
    let ping_frame = match a.ping_frame.clone().or(preset.ping_frame.map(String::from)) {
        Some(s) if !s.is_empty() => Some(text("ping-frame", &s, Var::CONNECTION)?),
        _ => None,
    };
    if ping_frame.is_some() && ping_interval.is_none() {
        return Err(usage("ping-frame", "needs --ping-interval".into()));
    }
    // A preset's pong pattern goes with its ping frame; one given by the user needs a ping frame.
    let pong_frame = match (pong_frame, &ping_frame) {
        (Some(_), None) if a.pong_frame.is_some() => {
            return Err(usage(
                "pong-frame",
                "is the answer to --ping-frame: give --ping-frame and --ping-interval".into(),
            ));
        }
        (p, Some(_)) => p,
        (_, None) => None,
    };
    let p = Protocol {
        target: preset.name,
        join,
        expect_timeout,
        replies,
        pong_frame,
        send,
        headers,
        tokens: a.tokens.clone(),
        subprotocols,
        ping_interval,
        ping_frame,
        unmarked: a.unmarked.unwrap_or(preset.unmarked),
        binary: a.binary,
    };
    if population {
        p.check_rooms(url)?;
    }
    if p.tokens.is_none() && (url.is_some_and(|u| u.uses(Var::Token)) || p.texts().any(|t| t.uses(Var::Token))) {
        return Err(usage("tokens", "a template uses {token}: give --tokens FILE (one token per line)".into()));
    }
    Ok(p)
}

impl Protocol {
    /// Every connection-level text template (joins, header values, the keep-alive frame) and the
    /// message envelope.
    fn texts(&self) -> impl Iterator<Item = &Text> {
        self.join
            .iter()
            .filter_map(|s| match s {
                Step::Send(t) => Some(t),
                Step::Expect(_) => None,
            })
            .chain(self.replies.iter().map(|r| &r.response))
            .chain(self.send.iter())
            .chain(self.headers.iter().map(|h| &h.value))
            .chain(self.ping_frame.iter())
    }
}

impl Protocol {
    /// Where a population's per-room join steps start: the first step that names `{room}`
    /// (the steps before it run once per connection). `join.len()`: none does.
    pub fn room_steps_from(&self) -> usize {
        self.join
            .iter()
            .position(|s| match s {
                Step::Send(t) => t.uses(Var::Room),
                Step::Expect(p) => p.names_room(),
            })
            .unwrap_or(self.join.len())
    }

    /// A population's protocol: each room is joined by name (or listed in the URL), and each
    /// message says its room.
    fn check_rooms(&self, url: Option<&UrlTemplate>) -> Result<()> {
        let usage = |flag: &str, msg: &str| Err(Error::Usage(format!("--{flag}: {msg}")));
        let listed = url.is_some_and(|u| u.uses(Var::Rooms));
        if self.room_steps_from() == self.join.len() && !listed {
            return usage(
                "join",
                "a population's connection joins every room of its user: name the room with {room} \
                 (e.g. --join 'join {room}' --expect 'joined {room}'), or list them with {rooms} in --url",
            );
        }
        if !self.send.as_ref().is_some_and(|t| t.uses(Var::Room)) {
            return usage(
                "send",
                "a population's message goes to one room: name it with {room} (e.g. 'to {room} {payload}')",
            );
        }
        Ok(())
    }

    /// Whether the upgrade request carries an Origin header.
    pub fn sends_origin(&self) -> bool {
        self.headers.iter().any(|h| h.name.eq_ignore_ascii_case("origin"))
    }

    /// Whether a server text frame outside the join may be a ping to answer or a pong.
    pub fn has_automatic(&self) -> bool {
        !self.replies.is_empty() || self.pong_frame.is_some()
    }
}

/// The join sequence: flags (`--join` and `--expect`, in command-line order; a scenario file's
/// `join` list arrives as those flags), else the preset's (its room variant for a population).
/// Empty strings are dropped (`--join ''`: none).
fn join_steps(a: &ProtocolArgs, preset: &presets::Preset, rooms: Option<&presets::RoomSteps>) -> Result<Vec<Step>> {
    use presets::PresetStep;
    let raw: Vec<(bool, String)> = if !a.join.is_empty() || !a.expect.is_empty() {
        steps::interleave(&a.join, &a.expect, &a.expect_after)
    } else {
        rooms
            .map_or(preset.join, |r| r.join)
            .iter()
            .map(|s| match s {
                PresetStep::Send(s) => (false, s.to_string()),
                PresetStep::Expect(p) => (true, p.to_string()),
            })
            .collect()
    };
    raw.into_iter()
        .filter(|(expect, s)| *expect || !s.is_empty())
        .map(|(expect, s)| {
            if expect {
                Pattern::parse(&s).map(Step::Expect).map_err(|e| Error::Usage(format!("--expect: {e}")))
            } else {
                Text::parse(&s, Var::CONNECTION)
                    .map(Step::Send)
                    .map_err(|e| Error::Usage(format!("--join: '{s}': {e}")))
            }
        })
        .collect()
}

/// `Name: value` (or `Name:value`).
fn parse_header(s: &str) -> std::result::Result<Header, String> {
    let (name, value) = s.split_once(':').ok_or_else(|| format!("'{s}' is not NAME:VALUE"))?;
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(format!("'{name}' is not a valid header name"));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("herd writes '{name}' itself (use --subprotocol for Sec-WebSocket-Protocol)"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("the value of '{name}' has a control character"));
    }
    let value = Text::parse(value, Var::CONNECTION).map_err(|e| format!("'{s}': {e}"))?;
    Ok(Header { name: name.to_string(), value })
}

/// RFC 7230 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> UrlTemplate {
        UrlTemplate::parse(s).unwrap()
    }

    #[test]
    fn defaults_are_herds_bare_protocol() {
        let p = resolve(&ProtocolArgs::default(), None).unwrap();
        assert_eq!(p.target, "herd");
        assert!(p.join.is_empty() && p.send.is_none() && p.headers.is_empty() && p.subprotocols.is_empty());
        assert_eq!((p.ping_interval, p.unmarked, p.binary), (None, Unmarked::Error, false));
    }

    #[test]
    fn preset_then_flags() {
        let u = url("ws://h:4000/socket/websocket?vsn=2.0.0");
        let a = ProtocolArgs { target: Some("phoenix".into()), ..Default::default() };
        let p = resolve(&a, Some(&u)).unwrap();
        assert_eq!((p.target, p.join.len(), p.unmarked), ("phoenix", 2, Unmarked::Ignore));
        assert_eq!(p.ping_interval, Some(Duration::from_secs(30)));
        let f = ProtocolArgs {
            target: Some("phoenix".into()),
            ping_interval: Some(Duration::from_secs(10)),
            unmarked: Some(Unmarked::Error),
            join: vec![String::new()],
            ..Default::default()
        };
        let p = resolve(&f, Some(&u)).unwrap();
        assert_eq!((p.ping_interval, p.unmarked, p.join.len()), (Some(Duration::from_secs(10)), Unmarked::Error, 0));
        let a = ProtocolArgs { ping_interval: Some(Duration::ZERO), ping_frame: Some(String::new()), ..f };
        let p = resolve(&a, Some(&u)).unwrap();
        assert_eq!((p.ping_interval, p.ping_frame.is_none()), (None, true));
        let a =
            ProtocolArgs { target: Some("actioncable".into()), subprotocol: vec![String::new()], ..Default::default() };
        let p = resolve(&a, Some(&u)).unwrap();
        assert!(p.subprotocols.is_empty() && p.send.is_some());
    }

    #[test]
    fn headers_tokens_and_subprotocols() {
        let u = url("ws://h/c/{conv}");
        let f = ProtocolArgs {
            headers: vec!["Authorization: Bearer {token}".into(), "X-User:{user}".into()],
            tokens: Some("t.txt".into()),
            subprotocol: vec!["chat.v1".into()],
            ..Default::default()
        };
        let p = resolve(&f, Some(&u)).unwrap();
        assert_eq!(p.headers.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["Authorization", "X-User"]);
        assert_eq!(p.subprotocols, ["chat.v1"]);
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"headers\":[\"Authorization\",\"X-User\"]") && !json.contains("Bearer"), "{json}");
    }

    #[test]
    fn mistakes_name_their_flag() {
        let u = url("ws://h/c/{conv}");
        let e = |a: ProtocolArgs, url: Option<&UrlTemplate>| resolve(&a, url).unwrap_err().to_string();
        let a = |f: fn(&mut ProtocolArgs)| {
            let mut a = ProtocolArgs::default();
            f(&mut a);
            a
        };
        assert!(e(a(|a| a.target = Some("nchan".into())), None).contains("needs --url"));
        assert!(e(a(|a| a.target = Some("xmpp".into())), Some(&u)).contains("unknown target"));
        assert!(e(a(|a| a.send = Some("{\"t\":\"{seq}\"}".into())), Some(&u)).contains("no {payload}"));
        assert!(e(a(|a| a.join = vec!["{\"room\":\"{rom}\"}".into()]), Some(&u)).contains("--join"));
        assert!(e(a(|a| a.join = vec!["{payload}".into()]), Some(&u)).contains("not available"));
        assert!(e(a(|a| a.headers = vec!["NoColon".into()]), Some(&u)).contains("NAME:VALUE"));
        assert!(e(a(|a| a.headers = vec!["Sec-WebSocket-Protocol: x".into()]), Some(&u)).contains("--subprotocol"));
        assert!(e(a(|a| a.headers = vec!["Bad Name: x".into()]), Some(&u)).contains("header name"));
        assert!(e(a(|a| a.subprotocol = vec!["a b".into()]), Some(&u)).contains("--subprotocol"));
        assert!(e(a(|a| a.subprotocol = vec!["a".into(), "a".into()]), Some(&u)).contains("twice"));
        assert!(e(a(|a| a.ping_frame = Some("{}".into())), Some(&u)).contains("--ping-interval"));
        assert!(e(a(|a| a.headers = vec!["X-T: {token}".into()]), Some(&u)).contains("--tokens"));
        assert!(e(ProtocolArgs::default(), Some(&url("ws://h/?t={token}"))).contains("--tokens"));
    }

    fn kinds(p: &Protocol) -> Vec<String> {
        p.join
            .iter()
            .map(|s| match s {
                Step::Send(_) => "send".to_string(),
                Step::Expect(p) => format!("expect {}", p.as_str()),
            })
            .collect()
    }

    #[test]
    fn join_steps_come_from_flags_in_order_then_file_then_preset() {
        let u = url("ws://h/socket.io/?EIO=4&transport=websocket");
        let a = ProtocolArgs {
            join: vec!["40".into(), "42[\"join\",\"room-{conv}\"]".into()],
            expect: vec!["^40".into()],
            expect_after: vec![1],
            ..Default::default()
        };
        let p = resolve(&a, Some(&u)).unwrap();
        assert_eq!(kinds(&p), ["send", "expect ^40", "send"]);
        assert_eq!(p.expect_timeout, DEFAULT_EXPECT_TIMEOUT);
        let f = ProtocolArgs {
            join: vec!["join {conv}".into()],
            expect: vec!["^hello".into()],
            expect_after: vec![0],
            expect_timeout: Some(Duration::from_secs(3)),
            reply: vec!["^2$=3".into()],
            ..Default::default()
        };
        let p = resolve(&f, Some(&u)).unwrap();
        assert_eq!(kinds(&p), ["expect ^hello", "send"]);
        assert_eq!((p.expect_timeout, p.replies.len()), (Duration::from_secs(3), 1));
        let a = ProtocolArgs { target: Some("socketio".into()), ..Default::default() };
        let p = resolve(&a, Some(&u)).unwrap();
        assert_eq!(kinds(&p), ["expect ^0\\{", "send", "expect ^40", "send"]);
        assert_eq!(p.replies[0].pattern.as_str(), "^2$");
        assert!(p.has_automatic() && !p.sends_origin());
        // The user's empty --reply drops the preset's answers.
        let a = ProtocolArgs { target: Some("socketio".into()), reply: vec![String::new()], ..Default::default() };
        assert!(resolve(&a, Some(&u)).unwrap().replies.is_empty());
    }

    #[test]
    fn pongs_origin_and_timeouts_are_checked() {
        let u = url("ws://h/c/{conv}");
        let ok = |a: ProtocolArgs| resolve(&a, Some(&u));
        let a = ProtocolArgs {
            ping_interval: Some(Duration::from_secs(1)),
            ping_frame: Some("PING".into()),
            pong_frame: Some("^PONG$".into()),
            origin: Some("http://127.0.0.1".into()),
            ..Default::default()
        };
        let p = ok(a).unwrap();
        assert!(p.pong_frame.as_ref().unwrap().matches("PONG") && p.sends_origin());
        let e = ok(ProtocolArgs { pong_frame: Some("^PONG$".into()), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("--pong-frame") && e.contains("--ping-frame"), "{e}");
        let e = ok(ProtocolArgs { expect: vec!["(".into()], ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("--expect") && e.contains("not a valid pattern"), "{e}");
        let e = ok(ProtocolArgs { reply: vec!["^2$".into()], ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("--reply") && e.contains("PATTERN=RESPONSE"), "{e}");
        let e =
            ok(ProtocolArgs { expect_timeout: Some(Duration::ZERO), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("--expect-timeout"), "{e}");
        let a = ProtocolArgs {
            origin: Some("http://a".into()),
            headers: vec!["origin: http://b".into()],
            ..Default::default()
        };
        assert!(ok(a).unwrap_err().to_string().contains("--origin"));
        // Phoenix's heartbeat answer is only looked for while its heartbeat is sent.
        let a = ProtocolArgs { target: Some("phoenix".into()), ..Default::default() };
        assert!(ok(a).unwrap().pong_frame.is_some());
        let a = ProtocolArgs { target: Some("phoenix".into()), ping_frame: Some(String::new()), ..Default::default() };
        assert!(ok(a).unwrap().pong_frame.is_none());
    }
}
