//! Conversations with the server beyond sending: join steps that wait for a server frame
//! (`--expect`), automatic answers to the server's application-level pings (`--reply`), and the
//! expected answer to herd's own `--ping-frame` keep-alives (`--pong-frame`).
//!
//! Patterns are regular expressions (the `regex` crate: linear-time matching, so a hostile frame
//! cannot make matching slow), searched anywhere in a text frame unless anchored (`^2$`). They are
//! compiled once per run, here; connections only match against them and keep no state of their
//! own beyond which join step they are on.

use crate::config::template::{Text, Var};
use regex::Regex;
use serde::{Serialize, Serializer};

/// A compiled pattern and its source (for the results).
#[derive(Clone, Debug)]
pub struct Pattern {
    re: Regex,
    source: String,
    /// The pattern holds `{room}`: compiled as a group of digits that must be the room joined
    /// (one regex per run, not one per membership).
    room: bool,
}

/// What each `{room}` in a pattern stands for while compiled (numbered: a pattern may name the
/// room more than once).
fn room_group(i: usize) -> String {
    format!("(?P<herd_room{i}>[0-9]+)")
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, String> {
        if s.is_empty() {
            return Err("an empty pattern matches every frame".into());
        }
        let parts: Vec<&str> = s.split("{room}").collect();
        let room = parts.len() > 1;
        let mut compiled = String::from(parts[0]);
        for (i, p) in parts[1..].iter().enumerate() {
            compiled.push_str(&room_group(i));
            compiled.push_str(p);
        }
        // A frame is at most --max-frame; the default size limit of a compiled regex is ample for
        // patterns a user types, and a pattern beyond it is refused here rather than at a frame.
        Regex::new(&compiled)
            .map(|re| Pattern { re, source: s.to_string(), room })
            .map_err(|e| format!("'{s}' is not a valid pattern: {e}"))
    }

    /// Whether the frame matches (`{room}` matching any room).
    pub fn matches(&self, frame: &str) -> bool {
        self.re.is_match(frame)
    }

    /// Whether the frame matches with `{room}` being `room`.
    pub fn matches_room(&self, frame: &str, room: u64) -> bool {
        if !self.room {
            return self.re.is_match(frame);
        }
        let groups = self.source.matches("{room}").count();
        self.re.captures_iter(frame).any(|c| {
            (0..groups).all(|i| c.name(&format!("herd_room{i}")).is_some_and(|m| m.as_str().parse::<u64>() == Ok(room)))
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern names the room (`{room}`).
    pub fn names_room(&self) -> bool {
        self.room
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One step of the join sequence.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Send this text frame.
    Send(Text),
    /// Wait until the server sends a text frame matching this pattern.
    Expect(Pattern),
}

/// `--reply PATTERN=RESPONSE`: answer every server text frame matching PATTERN with RESPONSE.
#[derive(Clone, Debug, Serialize)]
pub struct Reply {
    pub pattern: Pattern,
    pub response: Text,
}

impl Reply {
    /// `PATTERN=RESPONSE`, split at the first `=` not escaped as `\=` (a pattern that must
    /// match `=` writes `\=`, which the regex syntax reads as a literal `=`).
    pub fn parse(s: &str) -> Result<Reply, String> {
        let b = s.as_bytes();
        let at = (0..b.len())
            .find(|&i| b[i] == b'=' && (i == 0 || b[i - 1] != b'\\'))
            .ok_or_else(|| format!("'{s}' is not PATTERN=RESPONSE"))?;
        let (pattern, response) = (&s[..at], &s[at + 1..]);
        if response.is_empty() {
            return Err(format!("'{s}' has an empty RESPONSE"));
        }
        Ok(Reply {
            pattern: Pattern::parse(pattern)?,
            response: Text::parse(response, Var::CONNECTION).map_err(|e| format!("'{response}': {e}"))?,
        })
    }
}

/// What a server text frame outside the join is, to the automatic part of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Automatic {
    /// The answer to herd's `--ping-frame` keep-alive.
    Pong,
    /// A ping to answer with reply number `i`.
    Reply(usize),
}

/// Checks a text frame against the pong pattern, then the replies in order; `None`: an ordinary
/// frame (a chat message, or something unmarked).
pub fn classify(pong: Option<&Pattern>, replies: &[Reply], frame: &str) -> Option<Automatic> {
    if pong.is_some_and(|p| p.matches(frame)) {
        return Some(Automatic::Pong);
    }
    replies.iter().position(|r| r.pattern.matches(frame)).map(Automatic::Reply)
}

/// Interleaves `--join` frames and `--expect` patterns in command-line order: `expect_after[i]`
/// is how many `--join` flags came before the i-th `--expect`.
pub fn interleave<T: Clone>(joins: &[T], expects: &[T], expect_after: &[usize]) -> Vec<(bool, T)> {
    let mut out = Vec::with_capacity(joins.len() + expects.len());
    let mut e = 0;
    for (j, join) in joins.iter().enumerate() {
        while e < expects.len() && expect_after.get(e).copied().unwrap_or(usize::MAX) <= j {
            out.push((true, expects[e].clone()));
            e += 1;
        }
        out.push((false, join.clone()));
    }
    out.extend(expects[e..].iter().map(|x| (true, x.clone())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_search_unless_anchored() {
        let p = Pattern::parse("^2$").unwrap();
        assert!(p.matches("2") && !p.matches("22") && !p.matches("42[\"2\"]"));
        let p = Pattern::parse(r#""type":\s*"ping""#).unwrap();
        assert!(p.matches(r#"{"id":1,"type": "ping"}"#));
        assert!(Pattern::parse("(").unwrap_err().contains("not a valid pattern"));
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn replies_split_at_the_first_unescaped_equals() {
        let r = Reply::parse("^2$=3").unwrap();
        assert_eq!(r.pattern.as_str(), "^2$");
        // `{` starts a repetition in a regex: JSON patterns leave the braces out.
        assert!(Reply::parse(r#"{"type":"ping"}={"type":"pong"}"#).unwrap_err().contains("not a valid pattern"));
        let r = Reply::parse(r#""type":"ping"={"type":"pong","user":{user}}"#).unwrap();
        assert!(r.pattern.matches(r#"{"type":"ping"}"#));
        assert!(r.response.uses(Var::User));
        let r = Reply::parse(r"a\=b=c=d").unwrap();
        assert!(r.pattern.matches("a=b"));
        assert!(Reply::parse("noequals").unwrap_err().contains("PATTERN=RESPONSE"));
        assert!(Reply::parse("^2$=").unwrap_err().contains("empty RESPONSE"));
        assert!(Reply::parse("=3").is_err());
        assert!(Reply::parse("x={payload}").is_err(), "no message placeholders in a reply");
    }

    #[test]
    fn frames_are_pongs_replies_or_ordinary() {
        let replies = [Reply::parse("^2$=3").unwrap(), Reply::parse("^ping=pong").unwrap()];
        let pong = Pattern::parse("^PONG$").unwrap();
        assert_eq!(classify(Some(&pong), &replies, "PONG"), Some(Automatic::Pong));
        assert_eq!(classify(Some(&pong), &replies, "2"), Some(Automatic::Reply(0)));
        assert_eq!(classify(None, &replies, "ping 7"), Some(Automatic::Reply(1)));
        assert_eq!(classify(None, &replies, "42[\"message\",\"~h1~\"]"), None);
        assert_eq!(classify(None, &[], "PONG"), None);
    }

    #[test]
    fn joins_and_expects_interleave_in_flag_order() {
        let j = ["40", "42join"];
        let e = ["^0", "^40"];
        // --expect ^0 --join 40 --expect ^40 --join 42join
        assert_eq!(interleave(&j, &e, &[0, 1]), vec![(true, "^0"), (false, "40"), (true, "^40"), (false, "42join")]);
        // Order unknown (no positions): every expect after the joins.
        assert_eq!(interleave(&j, &e[..1], &[]), vec![(false, "40"), (false, "42join"), (true, "^0")]);
        assert_eq!(interleave::<&str>(&[], &e, &[0, 0]), vec![(true, "^0"), (true, "^40")]);
    }

    #[test]
    fn a_room_in_a_pattern_must_be_the_room_joined() {
        let p = super::Pattern::parse("^joined {room}$").unwrap();
        assert!(p.matches_room("joined 42", 42));
        assert!(!p.matches_room("joined 421", 42) && !p.matches_room("joined 4", 42));
        assert!(!p.matches_room("joined x", 42));
        assert!(p.matches("joined 7"));
        assert_eq!(p.as_str(), "^joined {room}$");
        let q = super::Pattern::parse("^43{room}\\[").unwrap();
        assert!(q.matches_room("437[\"joined\"]", 7) && !q.matches_room("438[", 7));
        let twice = super::Pattern::parse("^\\[\"{room}\",\"room:{room}\"").unwrap();
        assert!(twice.matches_room("[\"5\",\"room:5\"", 5) && !twice.matches_room("[\"5\",\"room:6\"", 5));
    }
}
