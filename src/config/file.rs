//! The scenario file (`--scenario FILE`, TOML). Its keys are the long flag names of the command
//! that reads it (`connect-rate = "5k"`, `header = ["A: 1", "B: 2"]`, `reconnect = true`), so a
//! key is declared once, by its flag: the file is turned into command-line words and parsed by
//! the same clap definition, with the same value parsers and the same errors.
//!
//! Precedence (`cli::parse_from` applies it): a flag given on the command line wins over the
//! same key in the file (for a repeatable flag, the command line's list replaces the file's),
//! which wins over a `--target` preset's value, which wins over the default. Tables
//! (`[population]`) are not flags: they are kept aside for whoever reads them.

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::path::Path;

/// A parsed scenario file: each key's command-line words, in the file's order, and its tables.
#[derive(Debug, Default, Clone)]
pub struct ScenarioFile {
    /// (key, words): `rate = "2k"` is `("rate", ["--rate=2k"])`.
    pub flags: Vec<(String, Vec<OsString>)>,
    /// Keys whose value is a table (`[population]`), by name.
    pub tables: toml::Table,
}

/// Reads and parses a scenario file.
pub fn load_file(path: &Path) -> Result<ScenarioFile> {
    let text = crate::config::readfile::read_text(
        path,
        crate::config::readfile::SCENARIO_LIMIT,
        &crate::runtime::signal::stop_requested,
    )
    .map_err(|e| Error::Usage(format!("--scenario {}: {e}", path.display())))?;
    parse(&text).map_err(|e| Error::Usage(format!("--scenario {}: {e}", path.display())))
}

/// Parses a scenario file's text (pure).
pub fn parse(text: &str) -> std::result::Result<ScenarioFile, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = ScenarioFile::default();
    for (key, value) in table {
        if key == "scenario" {
            return Err("scenario key 'scenario': a scenario file cannot name another".into());
        }
        if let toml::Value::Table(t) = value {
            out.tables.insert(key, toml::Value::Table(t));
            continue;
        }
        let words = words(&key, &value).map_err(|e| format!("scenario key '{key}': {e}"))?;
        out.flags.push((key, words));
    }
    // A top-level `expect` follows the top-level `join` frames (the ordered form is a `join` list
    // with `{ expect = ... }` items).
    out.flags.sort_by_key(|(k, _)| k == "expect");
    Ok(out)
}

/// A key's command-line words: a string or number is the flag's value, `true` the bare flag,
/// `false` nothing (every switch is off by default), a list the flag once per item (an empty
/// list the flag with an empty value, as `--join ''` says "none"). In `join`
/// lists, `{ expect = "..." }` items are `--expect` steps, in order among the frames.
fn words(key: &str, value: &toml::Value) -> std::result::Result<Vec<OsString>, String> {
    // `--key=value`, one word: a value that starts with '-' (`rate = -1`) stays a value.
    let word = |flag: &str, v: &str| OsString::from(format!("--{flag}={v}"));
    let scalar = |v: &toml::Value| -> std::result::Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            other => Err(format!("expected a string or a number, got {}", other.type_str())),
        }
    };
    Ok(match value {
        toml::Value::Boolean(true) => vec![OsString::from(format!("--{key}"))],
        toml::Value::Boolean(false) => vec![],
        // An empty list is the flag given empty: "none", replacing a preset's list.
        toml::Value::Array(items) if items.is_empty() => vec![word(key, "")],
        toml::Value::Array(items) => {
            let mut out = vec![];
            for item in items {
                match item {
                    toml::Value::Table(t) if key == "join" => match (t.get("expect"), t.len()) {
                        (Some(e), 1) => out.push(word("expect", &scalar(e)?)),
                        _ => return Err("a join step is a frame (a string) or { expect = \"PATTERN\" }".into()),
                    },
                    v => out.push(word(key, &scalar(v)?)),
                }
            }
            out
        }
        v => vec![word(key, &scalar(v)?)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(t: &str) -> Vec<(String, Vec<String>)> {
        let f = parse(t).unwrap();
        f.flags.into_iter().map(|(k, w)| (k, w.into_iter().map(|w| w.into_string().unwrap()).collect())).collect()
    }

    #[test]
    fn keys_become_the_flags_words() {
        let w = words_of("rate = \"2k\"\nsize = 64\nreconnect = true\nquiet = false\nheader = [\"A: 1\", \"B: 2\"]");
        let words = |k: &str| w.iter().find(|(key, _)| key == k).map(|(_, w)| w.clone()).unwrap();
        assert_eq!(words("header"), ["--header=A: 1", "--header=B: 2"]);
        assert_eq!((words("rate"), words("size")), (vec!["--rate=2k".to_string()], vec!["--size=64".to_string()]));
        assert_eq!((words("reconnect"), words("quiet")), (vec!["--reconnect".to_string()], vec![]));
        // A negative value stays the flag's value, not another flag.
        assert_eq!(words_of("rate = -1")[0].1, ["--rate=-1"]);
    }

    #[test]
    fn join_lists_keep_expect_steps_in_order() {
        let w = words_of("join = [\"a\", { expect = \"^ok\" }, \"b\"]");
        assert_eq!(w[0].1, ["--join=a", "--expect=^ok", "--join=b"]);
        assert!(parse("join = [{ wait = 1 }]").unwrap_err().contains("scenario key 'join'"));
    }

    #[test]
    fn tables_are_kept_aside_and_bad_values_name_their_key() {
        let f = parse("rate = 1\n[population]\nusers = 10").unwrap();
        assert_eq!(f.flags.len(), 1);
        assert!(f.tables.contains_key("population"));
        assert!(parse("rate = [[1]]").unwrap_err().contains("scenario key 'rate'"));
        assert!(parse("scenario = \"x.toml\"").unwrap_err().contains("cannot name another"));
        assert!(parse("rate = ").is_err());
    }
}
