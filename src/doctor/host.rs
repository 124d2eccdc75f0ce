//! Reads the host's limits from /proc and getrlimit into a plain [`HostLimits`] value.

use super::parse::{self, ParseError};
use serde::Serialize;
use std::path::Path;

/// `getrlimit`'s "no limit" value, as stored in [`HostLimits`].
pub const UNLIMITED: u64 = u64::MAX;

/// One value read from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading<T> {
    /// The value as read.
    Value(T),
    /// The file does not exist on this kernel (a module not loaded, an older kernel).
    NotPresent,
    /// The file exists but could not be read or parsed.
    Unreadable(String),
}

impl<T> Reading<T> {
    /// The value, if one was read.
    pub fn value(&self) -> Option<&T> {
        match self {
            Reading::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// The limits doctor checks, as read from one host. Tests build these by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostLimits {
    /// Soft `RLIMIT_NOFILE` ([`UNLIMITED`] for none).
    pub nofile_soft: Reading<u64>,
    /// Hard `RLIMIT_NOFILE`.
    pub nofile_hard: Reading<u64>,
    /// `fs.nr_open`.
    pub nr_open: Reading<u64>,
    /// `fs.file-max`.
    pub file_max: Reading<u64>,
    /// Open files allocated system-wide right now (first field of `fs.file-nr`).
    pub files_in_use: Reading<u64>,
    /// `net.ipv4.ip_local_port_range` as `(low, high)`.
    pub port_range: Reading<(u64, u64)>,
    /// `net.core.somaxconn`.
    pub somaxconn: Reading<u64>,
    /// `net.ipv4.tcp_max_syn_backlog`.
    pub tcp_max_syn_backlog: Reading<u64>,
    /// `net.ipv4.tcp_mem` (low, pressure, high) in pages.
    pub tcp_mem: Reading<[u64; 3]>,
    /// `net.netfilter.nf_conntrack_max`.
    pub nf_conntrack_max: Reading<u64>,
    /// `net.ipv4.tcp_tw_reuse`.
    pub tcp_tw_reuse: Reading<u64>,
    /// `kernel.io_uring_disabled` (absent before Linux 6.6).
    pub io_uring_disabled: Reading<u64>,
    /// Soft `RLIMIT_MEMLOCK` in bytes ([`UNLIMITED`] for none).
    pub memlock_soft: Reading<u64>,
    /// Hard `RLIMIT_MEMLOCK` in bytes.
    pub memlock_hard: Reading<u64>,
    /// `MemAvailable` from /proc/meminfo in bytes (`MemFree` on kernels without it).
    pub mem_available: Reading<u64>,
    /// The kernel page size in bytes (the unit of `tcp_mem`).
    pub page_size: u64,
    /// CPUs herd may run on: one glommio executor each.
    pub cpus: u64,
}

fn read_text(path: &Path) -> Reading<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Reading::Value(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Reading::NotPresent,
        Err(e) => Reading::Unreadable(format!("{}: {e}", path.display())),
    }
}

fn read_with<T>(path: &Path, parse: impl Fn(&str) -> Result<T, ParseError>) -> Reading<T> {
    match read_text(path) {
        Reading::Value(text) => match parse(&text) {
            Ok(v) => Reading::Value(v),
            Err(e) => Reading::Unreadable(format!("{}: {e}", path.display())),
        },
        Reading::NotPresent => Reading::NotPresent,
        Reading::Unreadable(e) => Reading::Unreadable(e),
    }
}

/// The resource limits doctor reads.
enum Rlimit {
    Nofile,
    Memlock,
}

fn rlimit(which: Rlimit) -> (Reading<u64>, Reading<u64>) {
    let resource = match which {
        Rlimit::Nofile => libc::RLIMIT_NOFILE,
        Rlimit::Memlock => libc::RLIMIT_MEMLOCK,
    };
    match crate::runtime::limits::rlimit(resource as libc::c_int) {
        // limits::rlimit gives u64::MAX for none, which is UNLIMITED.
        Ok((soft, hard)) => (Reading::Value(soft), Reading::Value(hard)),
        Err(e) => (Reading::Unreadable(e.to_string()), Reading::Unreadable(e.to_string())),
    }
}

impl HostLimits {
    /// Reads this host: sysctls under /proc/sys, /proc/meminfo and this process's rlimits.
    pub fn read() -> HostLimits {
        Self::read_from(Path::new("/proc"))
    }

    /// Reads sysctls and meminfo under `proc` (normally `/proc`), rlimits from this process.
    pub fn read_from(proc: &Path) -> HostLimits {
        let sys = |name: &str| proc.join("sys").join(name.replace('.', "/"));
        let (nofile_soft, nofile_hard) = rlimit(Rlimit::Nofile);
        let (memlock_soft, memlock_hard) = rlimit(Rlimit::Memlock);
        let meminfo = proc.join("meminfo");
        let mem_available = read_with(&meminfo, |text| {
            parse::parse_meminfo(text, "MemAvailable").or_else(|_| parse::parse_meminfo(text, "MemFree"))
        });
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        HostLimits {
            nofile_soft,
            nofile_hard,
            nr_open: read_with(&sys("fs.nr_open"), parse::parse_u64),
            file_max: read_with(&sys("fs.file-max"), parse::parse_u64),
            files_in_use: read_with(&sys("fs.file-nr"), parse::parse_first_u64),
            port_range: read_with(&sys("net.ipv4.ip_local_port_range"), parse::parse_port_range),
            somaxconn: read_with(&sys("net.core.somaxconn"), parse::parse_u64),
            tcp_max_syn_backlog: read_with(&sys("net.ipv4.tcp_max_syn_backlog"), parse::parse_u64),
            tcp_mem: read_with(&sys("net.ipv4.tcp_mem"), parse::parse_tcp_mem),
            nf_conntrack_max: read_with(&sys("net.netfilter.nf_conntrack_max"), parse::parse_u64),
            tcp_tw_reuse: read_with(&sys("net.ipv4.tcp_tw_reuse"), parse::parse_u64),
            io_uring_disabled: read_with(&sys("kernel.io_uring_disabled"), parse::parse_u64),
            memlock_soft,
            memlock_hard,
            mem_available,
            page_size: if page_size > 0 { page_size as u64 } else { 4096 },
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        }
    }
}
