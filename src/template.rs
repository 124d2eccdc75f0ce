//! Target URL templates: `ws://host:port/path?query` with `{conv}`, `{member}` and `{user}`
//! filled per connection.
//!
//! - `{conv}`: the conversation number, 0-based.
//! - `{member}`: the member's number within its conversation, 0-based (senders come first).
//! - `{user}`: the connection's number across the whole run, `conv * members + member`.
//!
//! The template is parsed once; rendering a connection's request target is a walk over
//! pre-split pieces.

use std::fmt::Write;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate {
    pub source: String,
    /// Host as written (for the Host header), without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// The request target (path and query) in pieces.
    target: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Conv,
    Member,
    User,
}

/// What a connection fills into a template.
#[derive(Clone, Copy, Debug)]
pub struct Vars {
    pub conv: u64,
    pub member: u32,
    pub user: u64,
}

impl UrlTemplate {
    pub fn parse(s: &str) -> Result<UrlTemplate, String> {
        let rest = if let Some(r) = s.strip_prefix("ws://") {
            r
        } else if s.starts_with("wss://") {
            return Err(format!("'{s}': wss:// (TLS) is not supported; use ws://"));
        } else {
            return Err(format!("'{s}' must start with ws://"));
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority).map_err(|e| format!("'{s}': {e}"))?;
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_string()
        };
        Ok(UrlTemplate {
            source: s.to_string(),
            host,
            port,
            target: parse_pieces(&target).map_err(|e| format!("'{s}': {e}"))?,
        })
    }

    /// Writes the request target (path and query) for one connection.
    pub fn render_target(&self, v: &Vars, out: &mut String) {
        out.clear();
        for p in &self.target {
            let _ = match p {
                Piece::Lit(l) => {
                    out.push_str(l);
                    Ok(())
                }
                Piece::Conv => write!(out, "{}", v.conv),
                Piece::Member => write!(out, "{}", v.member),
                Piece::User => write!(out, "{}", v.user),
            };
        }
    }

    /// The Host header value.
    pub fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

fn split_host_port(a: &str) -> Result<(String, u16), String> {
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
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port '{p}'"))?,
        None => 80,
    };
    Ok((host.to_string(), port))
}

fn parse_pieces(t: &str) -> Result<Vec<Piece>, String> {
    let mut out = vec![];
    let mut lit = String::new();
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find('}').ok_or("unclosed '{' in template")?;
        let piece = match &after[..end] {
            "conv" => Piece::Conv,
            "member" => Piece::Member,
            "user" => Piece::User,
            other => {
                return Err(format!(
                    "unknown placeholder '{{{other}}}' (known: {{conv}}, {{member}}, {{user}})"
                ))
            }
        };
        if !lit.is_empty() {
            out.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        out.push(piece);
        rest = &after[end + 1..];
    }
    lit.push_str(rest);
    if lit.contains('}') {
        return Err("stray '}' in template".into());
    }
    if lit.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("spaces or control characters in the URL".into());
    }
    if !lit.is_empty() {
        out.push(Piece::Lit(lit));
    }
    Ok(out)
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
    fn rejects_bad_templates_with_reasons() {
        for (bad, why) in [
            ("http://x/", "ws://"),
            ("wss://x/", "TLS"),
            ("ws://", "no host"),
            ("ws://h:99999/", "bad port"),
            ("ws://h/{room}", "unknown placeholder"),
            ("ws://h/{conv", "unclosed"),
            ("ws://h/a}b", "stray"),
            ("ws://h/a b", "spaces"),
            ("ws://{conv}.h/", "literal"),
            ("ws://u:p@h/", "user info"),
            ("ws://[::1/", "unclosed"),
        ] {
            let e = UrlTemplate::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
