//! Setup errors: what stops herd before or instead of a run, each with its sysexits code.
//!
//! Errors on one connection are never these: they are counted in the run's statistics.

use std::fmt;

/// Exit code of a run whose threshold was crossed (and of `herd compare` finding a regression
/// beyond `--max-regression`). Outside the sysexits range on purpose: the run itself worked.
pub const EXIT_CROSSED: i32 = 99;

#[derive(Debug)]
pub enum Error {
    /// A flag or scenario key has a bad value. Exit 64 (EX_USAGE).
    Usage(String),
    /// A needed resource is missing or too small: fd limit, port, target. Exit 69 (EX_UNAVAILABLE).
    Unavailable(String),
    /// A file could not be read or written. Exit 74 (EX_IOERR).
    Io(String),
    /// herd itself failed. Exit 70 (EX_SOFTWARE).
    Software(String),
    /// A signal stopped herd before it had anything to report. Exit 130 (128 + SIGINT).
    Interrupted(String),
    /// Input files disagree: `herd compare` of different scenarios. Exit 65 (EX_DATAERR).
    Data(String),
    /// The run worked, but a threshold was crossed, or `herd compare` found a regression beyond
    /// its limit. Exit 99 ([`EXIT_CROSSED`]).
    Crossed(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::Unavailable(_) => 69,
            Error::Software(_) => 70,
            Error::Io(_) => 74,
            Error::Interrupted(_) => 130,
            Error::Data(_) => 65,
            Error::Crossed(_) => EXIT_CROSSED,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m)
            | Error::Unavailable(m)
            | Error::Io(m)
            | Error::Software(m)
            | Error::Interrupted(m)
            | Error::Data(m)
            | Error::Crossed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
