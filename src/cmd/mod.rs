//! The subcommands that drive a load or read results: `herd run`, `herd knee`, `herd ceiling`,
//! `herd compare`. Each file owns its flags, its driver and what it prints; `herd serve`,
//! `herd doctor`, `herd merge` and `herd report` live with their concern (`server/`, `doctor/`,
//! `merge/`, `report/`).
//!
//! Commands sit at the top of the house: they import configuration, the drive, the outcome; none of
//! those import a command.

pub mod ceiling;
pub mod compare;
pub mod knee;
pub mod run;
