//! The scenario file (`--scenario FILE`, TOML): its keys, their value types, and the one
//! precedence rule every setting follows: a flag given on the command line wins over the same key
//! in the file, which wins over the default (or a `--target` preset's value). Keys are the flag
//! names without dashes (`connect-rate = "5k"`); unknown keys are errors.
//!
//! `scenario`, `protocol`, `tls::args` and `shape::args` all resolve their settings through the
//! `pick*` functions here, so a key parses and fails the same way everywhere. This module
//! depends on none of them.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The scenario file: the same keys as the flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScenarioFile {
    pub url: Option<String>,
    pub conversations: Option<Value>,
    pub members: Option<Value>,
    pub senders: Option<Value>,
    pub rate: Option<Value>,
    pub size: Option<Value>,
    pub connect_rate: Option<Value>,
    pub duration: Option<Value>,
    pub drain: Option<Value>,
    pub connect_timeout: Option<Value>,
    pub send_window: Option<Value>,
    pub source_ip: Option<String>,
    pub sndbuf: Option<Value>,
    pub rcvbuf: Option<Value>,
    pub reconnect: Option<bool>,
    pub max_frame: Option<Value>,
    pub threads: Option<Value>,
    pub cores: Option<String>,
    pub server_threads: Option<Value>,
    pub out: Option<PathBuf>,
    pub hdr_log: Option<PathBuf>,
    pub seed: Option<u64>,
    pub quiet: Option<bool>,
    // The protocol keys: see `crate::config::protocol`.
    pub target: Option<String>,
    pub join: Option<JoinSteps>,
    pub expect_timeout: Option<Value>,
    pub reply: Option<OneOrMany>,
    pub pong_frame: Option<String>,
    pub origin: Option<String>,
    pub send: Option<String>,
    pub header: Option<OneOrMany>,
    pub tokens: Option<PathBuf>,
    pub subprotocol: Option<OneOrMany>,
    pub ping_interval: Option<Value>,
    pub ping_frame: Option<String>,
    pub unmarked: Option<Unmarked>,
    pub binary: Option<bool>,
    // Judging and reporting: see `crate::outcome::thresholds`.
    pub threshold: Option<OneOrMany>,
    pub abort_on_fail: Option<bool>,
    pub report: Option<PathBuf>,
    // The TLS keys: see `crate::tls::args`.
    pub ca: Option<PathBuf>,
    pub insecure: Option<bool>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub no_tls_resume: Option<bool>,
    pub tls_version: Option<String>,
    pub embedded_tls: Option<bool>,
    // Load shapes: see `crate::shape::args`.
    pub stage: Option<OneOrMany>,
    pub churn: Option<Value>,
    pub storm: Option<String>,
}

/// A number or a string such as "10k" or "20s".
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
}

/// A file value as text, for the flag's own parser.
pub trait FileText {
    fn text(&self) -> Cow<'_, str>;
}

impl FileText for Value {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Float(f) => Cow::Owned(f.to_string()),
            Value::Str(s) => Cow::Borrowed(s),
        }
    }
}

impl FileText for String {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

/// What a frame without herd's marker means (`--unmarked`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unmarked {
    #[default]
    Error,
    Ignore,
}

/// A scenario file value given as one string or a list.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn list(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A join sequence in the scenario file: one frame, or a list of frames and `{ expect = "..." }`
/// steps.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum JoinSteps {
    One(String),
    Many(Vec<JoinEntry>),
}

#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum JoinEntry {
    Send(String),
    Expect { expect: String },
}

/// Reads and parses a scenario file.
pub fn load_file(path: &Path) -> Result<ScenarioFile> {
    let text = crate::config::readfile::read_text(
        path,
        crate::config::readfile::SCENARIO_LIMIT,
        &crate::runtime::signal::stop_requested,
    )
    .map_err(|e| Error::Usage(format!("--scenario {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::Usage(format!("--scenario {}: {e}", path.display())))
}

/// The flag's value if given, else the file's key parsed with the flag's own parser (an error
/// names the key), else `None`.
pub fn pick<T, V: FileText>(
    flag: Option<T>,
    file: &Option<V>,
    key: &str,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    if flag.is_some() {
        return Ok(flag);
    }
    match file {
        None => Ok(None),
        Some(v) => parse(&v.text()).map(Some).map_err(|e| Error::Usage(format!("scenario key '{key}': {e}"))),
    }
}

/// The flag's value if given, else the file's, for settings both give in the same form (paths,
/// text checked later).
pub fn pick_raw<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.clone().or_else(|| file.clone())
}

/// A switch: on if the flag is given or the file turns it on.
pub fn pick_switch(flag: bool, file: Option<bool>) -> bool {
    flag || file.unwrap_or(false)
}

/// A repeatable setting: the flags given replace the file's list; `None` when neither gives one
/// (the caller's default or preset applies).
pub fn pick_list(flag: &[String], file: &Option<OneOrMany>) -> Option<Vec<String>> {
    if !flag.is_empty() {
        Some(flag.to_vec())
    } else {
        file.as_ref().map(OneOrMany::list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(t: &str) -> ScenarioFile {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn flag_then_file_then_none() {
        let f = file("rate = \"2k\"\nsize = 64\ntls-version = \"1.3\"");
        let rate = |flag| pick(flag, &f.rate, "rate", crate::config::units::parse_rate);
        assert_eq!(rate(Some(5.0)).unwrap(), Some(5.0));
        assert_eq!(rate(None).unwrap(), Some(2000.0));
        assert_eq!(pick(None, &f.size, "size", crate::config::units::parse_bytes).unwrap(), Some(64));
        assert_eq!(pick(None, &f.drain, "drain", crate::config::units::parse_duration).unwrap(), None);
        let v = pick(None, &f.tls_version, "tls-version", |s| Ok::<_, String>(s.to_string())).unwrap();
        assert_eq!(v.as_deref(), Some("1.3"));
    }

    #[test]
    fn a_bad_file_value_names_its_key() {
        let f = file("duration = \"soon\"");
        let e = pick(None, &f.duration, "duration", crate::config::units::parse_duration).unwrap_err();
        assert!(e.to_string().starts_with("scenario key 'duration': "), "{e}");
        assert_eq!(e.exit_code(), 64);
        // A flag given never looks at the file's value.
        assert!(pick(Some(std::time::Duration::ZERO), &f.duration, "duration", crate::config::units::parse_duration)
            .is_ok());
    }

    #[test]
    fn lists_switches_and_plain_values() {
        let f = file("header = \"A: 1\"\nsubprotocol = [\"x\", \"y\"]\nreconnect = true\norigin = \"http://f\"");
        assert_eq!(pick_list(&[], &f.header), Some(vec!["A: 1".to_string()]));
        assert_eq!(pick_list(&[], &f.subprotocol), Some(vec!["x".to_string(), "y".to_string()]));
        assert_eq!(pick_list(&["z".to_string()], &f.subprotocol), Some(vec!["z".to_string()]));
        assert_eq!(pick_list(&[], &f.reply), None);
        assert!(pick_switch(false, f.reconnect) && pick_switch(true, None) && !pick_switch(false, None));
        assert_eq!(pick_raw(&None, &f.origin).as_deref(), Some("http://f"));
        assert_eq!(pick_raw(&Some("http://a".to_string()), &f.origin).as_deref(), Some("http://a"));
    }
}
