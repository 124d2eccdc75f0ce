//! The text commands a `/user/{id}` connection sends, and the server's answers. Pure parsing.
//!
//! ```text
//! join {room}            -> joined {room}   (once the membership is effective on every core)
//! leave {room}           -> left {room}
//! to {room} {payload}    -> {payload} to every other member; error not-member {room} if the
//!                           sender is not in the room
//! anything else          -> error unknown-command
//! ```
//! A room name is 1-128 bytes without spaces; `{payload}` is everything after the room's space
//! (it may be empty, and may hold spaces).

use tungstenite::{Bytes, Utf8Bytes};

/// Longest room name a command may carry.
pub const MAX_ROOM: usize = 128;

#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Join(&'a str),
    Leave(&'a str),
    /// A room and the byte offset where the payload starts in the frame.
    To(&'a str, usize),
    Unknown,
}

fn valid_room(room: &str) -> bool {
    !room.is_empty() && room.len() <= MAX_ROOM && !room.contains(' ')
}

pub fn parse(frame: &str) -> Command<'_> {
    if let Some(room) = frame.strip_prefix("join ") {
        return if valid_room(room) { Command::Join(room) } else { Command::Unknown };
    }
    if let Some(room) = frame.strip_prefix("leave ") {
        return if valid_room(room) { Command::Leave(room) } else { Command::Unknown };
    }
    if let Some(rest) = frame.strip_prefix("to ") {
        if let Some((room, _)) = rest.split_once(' ') {
            if valid_room(room) {
                return Command::To(room, "to ".len() + room.len() + 1);
            }
        }
    }
    Command::Unknown
}

/// The frame's payload from byte `at` on, sharing the frame's buffer.
pub fn payload(frame: &Utf8Bytes, at: usize) -> Utf8Bytes {
    let bytes: &Bytes = frame.as_ref();
    // `at` follows an ASCII space, so the slice is valid UTF-8 and this cannot fail.
    Utf8Bytes::try_from(bytes.slice(at..)).unwrap_or_default()
}

pub fn joined(room: &str) -> Utf8Bytes {
    format!("joined {room}").into()
}

pub fn left(room: &str) -> Utf8Bytes {
    format!("left {room}").into()
}

pub fn not_member(room: &str) -> Utf8Bytes {
    format!("error not-member {room}").into()
}

pub const UNKNOWN: &str = "error unknown-command";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("join a"), Command::Join("a"));
        assert_eq!(parse("leave room-7"), Command::Leave("room-7"));
        assert_eq!(parse("to r hello there"), Command::To("r", 5));
        assert_eq!(parse("to r "), Command::To("r", 5));
        let max = "x".repeat(MAX_ROOM);
        assert_eq!(parse(&format!("join {max}")), Command::Join(&max));
    }

    #[test]
    fn anything_else_is_unknown() {
        let long = "x".repeat(MAX_ROOM + 1);
        for f in [
            "",
            "join",
            "join ",
            "join a b",
            "leave ",
            "to r",
            "to  payload",
            "JOIN a",
            "hello",
            &format!("join {long}"),
            &format!("to {long} p"),
        ] {
            assert_eq!(parse(f), Command::Unknown, "{f:?}");
        }
    }

    #[test]
    fn payload_is_everything_after_the_room() {
        let f: Utf8Bytes = "to r héllo  world ".into();
        let Command::To(room, at) = parse(&f) else { panic!("not a to") };
        assert_eq!(room, "r");
        assert_eq!(payload(&f, at).as_str(), "héllo  world ");
        let f: Utf8Bytes = "to r ".into();
        assert_eq!(payload(&f, 5).as_str(), "");
    }
}
