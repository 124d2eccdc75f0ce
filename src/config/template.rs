//! Templates: the target URL (`ws://` or `wss://host:port/path?query`) and the text templates of a protocol
//! (`--join`, `--send`, `--header` values, `--ping-frame`), with placeholders filled per
//! connection or per message.
//!
//! - `{conv}`: the conversation number, 0-based.
//! - `{member}`: the member's number within its conversation, 0-based (senders come first).
//! - `{user}`: the connection's number across the whole run, `conv * members + member`.
//! - `{token}`: the user's line of `--tokens FILE` (line `user mod lines`).
//! - `{room}`: the room a join step or message is for: a population's room number, in a grid
//!   the conversation number (the same as `{conv}`).
//! - `{rooms}`: every room of the connection's user, comma-separated (for servers that take
//!   the list at connect; a grid connection's one conversation).
//! - `{seq}`: the message's sequence number of its sender (`--send` only).
//! - `{payload}`: herd's marker padded to `--size` bytes (`--send` only).
//!
//! A template is parsed once per run; rendering is a walk over pre-split pieces into a buffer the
//! caller reuses. In the URL every `{` must open a placeholder, no literal part may hold white
//! space or a control character, and a value put in (`{token}`) is percent-encoded but for
//! the characters RFC 3986 leaves unreserved. Text templates are lenient about
//! braces so that JSON can be written as is: only `{name}` with `name` made of lowercase letters
//! and `_` is a placeholder (and must be a known one); any other `{` or `}` is literal text.

use std::fmt::Write;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate {
    pub source: String,
    /// Host as written (for the Host header), without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// wss:// (TLS).
    pub tls: bool,
    /// The request target (path and query).
    target: Text,
}

/// A placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Conv,
    Member,
    User,
    Token,
    Seq,
    Payload,
    Room,
    Rooms,
}

impl Var {
    pub const ALL: [Var; 8] =
        [Var::Conv, Var::Member, Var::User, Var::Token, Var::Seq, Var::Payload, Var::Room, Var::Rooms];
    /// Placeholders known for every connection (URL, headers, join and keep-alive frames).
    pub const CONNECTION: &'static [Var] = &[Var::Conv, Var::Member, Var::User, Var::Token, Var::Room, Var::Rooms];
    /// Placeholders of a chat message (`--send`).
    pub const MESSAGE: &'static [Var] = &Var::ALL;

    pub fn name(self) -> &'static str {
        match self {
            Var::Conv => "conv",
            Var::Member => "member",
            Var::User => "user",
            Var::Token => "token",
            Var::Seq => "seq",
            Var::Payload => "payload",
            Var::Room => "room",
            Var::Rooms => "rooms",
        }
    }

    fn from_name(s: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Var(Var),
}

/// What a connection fills into a template.
#[derive(Clone, Copy, Debug)]
pub struct Vars {
    pub conv: u64,
    pub member: u32,
    pub user: u64,
}

/// Everything a template may ask for: the connection's [`Vars`] plus the per-run and per-message
/// values.
#[derive(Clone, Copy, Debug)]
pub struct Fill<'a> {
    pub vars: Vars,
    pub token: &'a str,
    pub seq: u64,
    pub payload: &'a str,
    /// `{rooms}`: a population connection's rooms (empty: the conversation alone).
    pub rooms: &'a [u32],
}

impl<'a> Fill<'a> {
    pub fn new(vars: Vars, token: &'a str) -> Fill<'a> {
        Fill { vars, token, seq: 0, payload: "", rooms: &[] }
    }
}

/// A parsed text template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text {
    pub source: String,
    pieces: Vec<Piece>,
}

impl Text {
    /// Parses a lenient text template that may use the `allowed` placeholders.
    pub fn parse(s: &str, allowed: &[Var]) -> Result<Text, String> {
        Ok(Text { source: s.to_string(), pieces: parse_pieces(s, allowed, false)? })
    }

    /// Appends the rendered text to `out`.
    pub fn render_into(&self, f: &Fill, out: &mut String) {
        for p in &self.pieces {
            Text::render_piece(p, f, out);
        }
    }

    fn render_piece(p: &Piece, f: &Fill, out: &mut String) {
        let _ = match p {
            Piece::Lit(l) => {
                out.push_str(l);
                Ok(())
            }
            Piece::Var(Var::Conv) | Piece::Var(Var::Room) => write!(out, "{}", f.vars.conv),
            Piece::Var(Var::Rooms) if f.rooms.is_empty() => write!(out, "{}", f.vars.conv),
            Piece::Var(Var::Rooms) => {
                for (i, r) in f.rooms.iter().enumerate() {
                    let _ = write!(out, "{}{r}", if i == 0 { "" } else { "," });
                }
                Ok(())
            }
            Piece::Var(Var::Member) => write!(out, "{}", f.vars.member),
            Piece::Var(Var::User) => write!(out, "{}", f.vars.user),
            Piece::Var(Var::Seq) => write!(out, "{}", f.seq),
            Piece::Var(Var::Token) => {
                out.push_str(f.token);
                Ok(())
            }
            Piece::Var(Var::Payload) => {
                out.push_str(f.payload);
                Ok(())
            }
        };
    }

    /// Clears `out` and renders into it.
    pub fn render(&self, f: &Fill, out: &mut String) {
        out.clear();
        self.render_into(f, out);
    }

    pub fn uses(&self, v: Var) -> bool {
        self.pieces.contains(&Piece::Var(v))
    }
}

/// A template is written out as its source.
impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl UrlTemplate {
    pub fn parse(s: &str) -> Result<UrlTemplate, String> {
        let (rest, tls) = if let Some(r) = s.strip_prefix("ws://") {
            (r, false)
        } else if let Some(r) = s.strip_prefix("wss://") {
            (r, true)
        } else {
            return Err(format!("'{s}' must start with ws:// or wss://"));
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority, if tls { 443 } else { 80 }).map_err(|e| format!("'{s}': {e}"))?;
        let target = if target.starts_with('?') { format!("/{target}") } else { target.to_string() };
        let pieces = parse_pieces(&target, Var::CONNECTION, true).map_err(|e| format!("'{s}': {e}"))?;
        Ok(UrlTemplate { source: s.to_string(), host, port, tls, target: Text { source: target, pieces } })
    }

    /// Writes the request target (path and query) for one connection.
    pub fn render_target(&self, v: &Vars, out: &mut String) {
        self.target.render(&Fill::new(*v, ""), out);
    }

    /// Writes the request target with every value a connection has (`{token}` included,
    /// percent-encoded: a token with spaces or CR/LF must not change the request line).
    pub fn render_target_fill(&self, f: &Fill, out: &mut String) {
        out.clear();
        for p in &self.target.pieces {
            match p {
                Piece::Var(Var::Token) => out.extend(percent_encoding::utf8_percent_encode(f.token, UNRESERVED)),
                Piece::Lit(_) | Piece::Var(_) => Text::render_piece(p, f, out),
            }
        }
    }

    /// Whether the URL uses a placeholder.
    pub fn uses(&self, v: Var) -> bool {
        self.target.uses(v)
    }

    /// The Host header value.
    pub fn host_header(&self) -> String {
        let h = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.tls { 443 } else { 80 } {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// What a value put into a URL keeps as is: RFC 3986's unreserved characters.
pub const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn split_host_port(a: &str, default_port: u16) -> Result<(String, u16), String> {
    if a.is_empty() {
        return Err("no host".into());
    }
    if a.contains('@') {
        return Err("user info in the URL is not supported; use --header".into());
    }
    let (host, port) = if let Some(r) = a.strip_prefix('[') {
        let end = r.find(']').ok_or("unclosed '[' in host")?;
        let after = &r[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("junk after ']' in host".into()),
        };
        (&r[..end], port)
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if host.is_empty() || host.contains(['{', '}']) {
        return Err("the host must be a literal name or address".into());
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control() || "/?#\\".contains(c)) {
        return Err(format!("bad character in host '{}'", host.escape_debug()));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port '{p}'"))?,
        None => default_port,
    };
    if port == 0 {
        return Err("port 0 cannot be connected to".into());
    }
    Ok((host.to_string(), port))
}

/// Splits a template into literal text and placeholders. `strict` (the URL): every `{` opens a
/// placeholder, a stray `}` and white space are errors.
fn parse_pieces(t: &str, allowed: &[Var], strict: bool) -> Result<Vec<Piece>, String> {
    let mut out = vec![];
    let mut lit = String::new();
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let name_len = after.bytes().take_while(|b| b.is_ascii_lowercase() || *b == b'_').count();
        let closed = after.as_bytes().get(name_len) == Some(&b'}');
        if !strict && (name_len == 0 || !closed) {
            // JSON and other literal braces.
            lit.push('{');
            rest = after;
            continue;
        }
        let end = if closed { name_len } else { after.find('}').ok_or("unclosed '{' in template")? };
        let name = &after[..end];
        let var = match Var::from_name(name) {
            Some(v) if allowed.contains(&v) => v,
            Some(v) => return Err(format!("placeholder '{{{}}}' is not available here", v.name())),
            None => {
                let known: Vec<String> = allowed.iter().map(|v| format!("{{{}}}", v.name())).collect();
                return Err(format!("unknown placeholder '{{{name}}}' (known: {})", known.join(", ")));
            }
        };
        if strict {
            check_url_literal(&lit)?;
        }
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        out.push(Piece::Var(var));
        rest = &after[end + 1..];
    }
    lit.push_str(rest);
    if strict {
        check_url_literal(&lit)?;
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
}

/// A literal part of the URL's path or query: every one of them, not only the last (text before
/// a placeholder goes into the request line as well).
fn check_url_literal(lit: &str) -> Result<(), String> {
    if lit.contains('}') {
        return Err("stray '}' in template".into());
    }
    if let Some(c) = lit.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("a space or control character ({:?}) in the URL; percent-encode it", c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &UrlTemplate, conv: u64, member: u32, user: u64) -> String {
        let mut s = String::new();
        t.render_target(&Vars { conv, member, user }, &mut s);
        s
    }

    #[test]
    fn renders_placeholders() {
        let t = UrlTemplate::parse("ws://127.0.0.1:8080/conv/{conv}?user={user}&m={member}").unwrap();
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.port, 8080);
        assert_eq!(render(&t, 7, 2, 30), "/conv/7?user=30&m=2");
        assert_eq!(t.host_header(), "127.0.0.1:8080");
    }

    #[test]
    fn every_literal_part_of_the_url_is_checked() {
        for bad in [
            "ws://h/a\r\nX-Evil: 1\r\nY: /{conv}",
            "ws://h/conv/a b{conv}",
            "ws://h/a\t{conv}/{member}",
            "ws://h/}{conv}",
        ] {
            assert!(UrlTemplate::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(UrlTemplate::parse("ws://h/a\r\n").unwrap_err().contains("control character"));
        assert!(UrlTemplate::parse("ws://h/a b").unwrap_err().contains("percent-encode"));
    }

    #[test]
    fn port_0_and_odd_hosts_are_refused() {
        assert!(UrlTemplate::parse("ws://127.0.0.1:0/{conv}").unwrap_err().contains("port 0"));
        assert!(UrlTemplate::parse("ws://a\tb:80/").unwrap_err().contains("bad character in host"));
    }

    #[test]
    fn tokens_are_percent_encoded_in_the_url() {
        let t = UrlTemplate::parse("ws://h/c/{conv}?token={token}").unwrap();
        let mut out = String::new();
        let f = Fill::new(Vars { conv: 4, member: 0, user: 9 }, "a b&c=d/é~_.-Z9");
        t.render_target_fill(&f, &mut out);
        assert_eq!(out, "/c/4?token=a%20b%26c%3Dd%2F%C3%A9~_.-Z9");
    }

    #[test]
    fn defaults_and_ipv6() {
        let t = UrlTemplate::parse("ws://localhost").unwrap();
        assert_eq!((t.port, render(&t, 0, 0, 0)), (80, "/".to_string()));
        assert_eq!(t.host_header(), "localhost");
        let t = UrlTemplate::parse("ws://[::1]:9000?room={conv}").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(render(&t, 3, 0, 0), "/?room=3");
        assert_eq!(t.host_header(), "[::1]:9000");
    }

    #[test]
    fn wss_defaults_to_port_443() {
        let t = UrlTemplate::parse("wss://chat.example/conv/{conv}").unwrap();
        assert!(t.tls);
        assert_eq!((t.port, t.host_header()), (443, "chat.example".to_string()));
        let t = UrlTemplate::parse("wss://chat.example:80/").unwrap();
        assert_eq!(t.host_header(), "chat.example:80");
        assert!(!UrlTemplate::parse("ws://h/").unwrap().tls);
    }

    #[test]
    fn rejects_bad_templates_with_reasons() {
        for (bad, why) in [
            ("http://x/", "ws:// or wss://"),
            ("wss://", "no host"),
            ("ws://", "no host"),
            ("ws://h:99999/", "bad port"),
            ("ws://h/{roomz}", "unknown placeholder"),
            ("ws://h/{conv", "unclosed"),
            ("ws://h/a}b", "stray"),
            ("ws://h/a b", "a space or control character"),
            ("ws://{conv}.h/", "literal"),
            ("ws://u:p@h/", "user info"),
            ("ws://[::1/", "unclosed"),
            ("ws://h/{payload}", "not available"),
        ] {
            let e = UrlTemplate::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn url_token_comes_from_the_fill() {
        let t = UrlTemplate::parse("ws://h/ws?room={conv}&access_token={token}").unwrap();
        assert!(t.uses(Var::Token) && !t.uses(Var::User));
        let mut s = String::new();
        t.render_target_fill(&Fill::new(Vars { conv: 4, member: 0, user: 8 }, "abc"), &mut s);
        assert_eq!(s, "/ws?room=4&access_token=abc");
    }

    #[test]
    fn text_templates_keep_json_braces_literal() {
        let t = Text::parse(
            r#"{"type":"msg","room":"{conv}","seq":{seq},"body":"{payload}","x":{},"y":"{ a }"}"#,
            Var::MESSAGE,
        )
        .unwrap();
        let f =
            Fill { vars: Vars { conv: 2, member: 1, user: 9 }, token: "", seq: 17, payload: "~h1.x~--", rooms: &[] };
        let mut s = String::from("old");
        t.render(&f, &mut s);
        assert_eq!(s, r#"{"type":"msg","room":"2","seq":17,"body":"~h1.x~--","x":{},"y":"{ a }"}"#);
        assert!(t.uses(Var::Payload) && t.uses(Var::Seq) && !t.uses(Var::Token));
        // Appending keeps what is there.
        Text::parse("+{user}", Var::CONNECTION).unwrap().render_into(&f, &mut s);
        assert!(s.ends_with("}+9"), "{s}");
    }

    #[test]
    fn text_templates_catch_typos_and_misplaced_placeholders() {
        let e = Text::parse(r#"{"room":"{rom}"}"#, Var::CONNECTION).unwrap_err();
        assert!(e.contains("unknown placeholder '{rom}'") && e.contains("{conv}"), "{e}");
        let e = Text::parse("{payload}", Var::CONNECTION).unwrap_err();
        assert!(e.contains("not available"), "{e}");
        // Not a placeholder: upper case, digits, unclosed.
        let t = Text::parse("{Conv} {c0} {conv", Var::CONNECTION).unwrap();
        let mut s = String::new();
        t.render(&Fill::new(Vars { conv: 1, member: 0, user: 0 }, ""), &mut s);
        assert_eq!(s, "{Conv} {c0} {conv");
    }

    #[test]
    fn room_and_rooms_fill_from_the_population_or_the_conversation() {
        let t = Text::parse("join {room} of [{rooms}]", Var::CONNECTION).unwrap();
        let mut s = String::new();
        let v = Vars { conv: 7, member: 0, user: 3 };
        t.render(&Fill { rooms: &[4, 7, 19], ..Fill::new(v, "") }, &mut s);
        assert_eq!(s, "join 7 of [4,7,19]");
        t.render(&Fill::new(v, ""), &mut s);
        assert_eq!(s, "join 7 of [7]");
        let u = UrlTemplate::parse("ws://127.0.0.1:9/sub?rooms={rooms}").unwrap();
        u.render_target_fill(&Fill { rooms: &[1, 2], ..Fill::new(v, "") }, &mut s);
        assert_eq!(s, "/sub?rooms=1,2");
    }
}
