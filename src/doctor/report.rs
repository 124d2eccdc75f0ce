//! The report doctor prints: one check per limit, the binding limit, the verdict and exit code.

use super::host::HostLimits;
use serde::{Serialize, Serializer};

/// Exit code when every limit allows the target (or no target was given).
pub const EXIT_OK: i32 = 0;
/// Exit code (EX_UNAVAILABLE) when some limit binds below the target.
pub const EXIT_UNAVAILABLE: i32 = 69;
/// Exit code (EX_SOFTWARE) when doctor could not read a limit or write its report.
pub const EXIT_SOFTWARE: i32 = 70;

/// How many client connections one limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allows {
    /// At most this many connections.
    Connections(u64),
    /// The limit does not cap the number of established connections.
    Unbounded,
    /// The limit could not be read.
    Unknown,
}

impl Allows {
    /// The count, when the limit caps connections.
    pub fn count(self) -> Option<u64> {
        match self {
            Allows::Connections(n) => Some(n),
            _ => None,
        }
    }
}

impl std::fmt::Display for Allows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allows::Connections(n) => write!(f, "{n}"),
            Allows::Unbounded => f.write_str("no cap"),
            Allows::Unknown => f.write_str("unknown"),
        }
    }
}

impl Serialize for Allows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Allows::Connections(n) => s.serialize_u64(*n),
            Allows::Unbounded => s.serialize_str("unbounded"),
            Allows::Unknown => s.serialize_str("unknown"),
        }
    }
}

/// The state of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The limit allows the target.
    Ok,
    /// The limit allows the target but is worth raising (connect bursts, churn, executors).
    Advice,
    /// The limit allows fewer connections than the target.
    Binds,
    /// The knob does not exist on this host, so it limits nothing.
    NotPresent,
    /// The limit could not be read.
    Unreadable,
}

impl Status {
    /// A short upper-case label for the text report.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Advice => "ADVICE",
            Status::Binds => "BINDS",
            Status::NotPresent => "absent",
            Status::Unreadable => "ERROR",
        }
    }
}

/// One limit: what it is now, how many connections it allows, and how to raise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What is checked, such as `fs.nr_open` or `RLIMIT_NOFILE (soft)`.
    pub name: &'static str,
    /// The knob in [`super::checked_knobs`] that raises this limit, if any.
    pub knob: Option<&'static str>,
    /// The current value as shown to the user, or "not present".
    pub value: String,
    /// Connections the current value allows.
    pub allows: Allows,
    /// Ok, advice, binds, not present or unreadable.
    pub status: Status,
    /// How `allows` follows from the value (the cost assumed).
    pub note: String,
    /// The exact command or change that raises the limit.
    pub fix: String,
}

/// The whole answer for one host and target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Target connection count, if given.
    pub connections: Option<u64>,
    /// Source addresses connections are spread over.
    pub source_ips: u64,
    /// One entry per limit.
    pub checks: Vec<Check>,
    /// The check that binds first: the one with the lowest cap (below the target when the
    /// target is unreachable).
    pub binding: Option<String>,
    /// The most connections every limit allows together.
    pub ceiling: Allows,
    /// One line summing up the answer.
    pub verdict: String,
    /// The process exit code: 0, 69 or 70.
    pub exit_code: i32,
    /// The readings the checks came from.
    pub host: HostLimits,
}

impl Report {
    /// Marks binding checks, then finds the binding limit, the verdict and the exit code.
    pub fn new(host: HostLimits, connections: Option<u64>, source_ips: u64, mut checks: Vec<Check>) -> Report {
        for c in &mut checks {
            if let (Some(n), Some(a)) = (connections, c.allows.count()) {
                if a < n {
                    c.status = Status::Binds;
                }
            }
        }
        let lowest = checks.iter().filter(|c| c.allows.count().is_some()).min_by_key(|c| c.allows.count());
        let ceiling = lowest.map_or(Allows::Unbounded, |c| c.allows);
        let binding = lowest.map(|c| c.name.to_string());
        let unreadable: Vec<&str> = checks.iter().filter(|c| c.status == Status::Unreadable).map(|c| c.name).collect();
        let binds = checks.iter().filter(|c| c.status == Status::Binds).count();
        let first = |c: Option<&Check>| c.map_or("none".to_string(), |c| format!("{} at {}", c.name, c.allows));
        let (verdict, exit_code) = match connections {
            Some(n) if binds > 0 => (
                format!(
                    "NOT REACHABLE: {n} connections exceed {binds} limit(s); {} binds first. \
                     Apply the fixes above or tuning/apply.sh, then run herd doctor again.",
                    first(lowest)
                ),
                EXIT_UNAVAILABLE,
            ),
            _ if !unreadable.is_empty() => {
                (format!("UNKNOWN: could not read {}.", unreadable.join(", ")), EXIT_SOFTWARE)
            }
            Some(n) => {
                (format!("REACHABLE: {n} connections fit; the first limit to bind is {}.", first(lowest)), EXIT_OK)
            }
            None => (
                format!("This host allows up to {ceiling} herd client connections; {} binds first.", first(lowest)),
                EXIT_OK,
            ),
        };
        Report { connections, source_ips, checks, binding, ceiling, verdict, exit_code, host }
    }

    /// The check named `name`.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}
