//! Process limits herd needs: it raises its soft `RLIMIT_NOFILE` to the hard limit and refuses a
//! scenario the hard limit cannot hold, saying which limit and what is needed.

use crate::error::{Error, Result};

/// File descriptors a process needs beside its connections: executors' rings and eventfds,
/// listeners, std streams, output files.
pub const SPARE_FDS: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoFile {
    pub soft: u64,
    pub hard: u64,
}

pub fn nofile() -> NoFile {
    let (soft, hard) = rlimit(libc::RLIMIT_NOFILE as libc::c_int).unwrap_or((0, 0));
    NoFile { soft, hard }
}

/// One of this process's resource limits, (soft, hard); `u64::MAX` is unlimited. The one
/// getrlimit reader (herd run's fd check, herd doctor).
pub fn rlimit(resource: libc::c_int) -> std::io::Result<(u64, u64)> {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct we pass it. (The resource's type differs between
    // C libraries, hence the cast.)
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    if unsafe { libc::getrlimit(resource as _, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // rlim_t is u64 on 64-bit Linux but not on every target.
    #[allow(clippy::unnecessary_cast)]
    let conv = |v: libc::rlim_t| if v == libc::RLIM_INFINITY { u64::MAX } else { v as u64 };
    Ok((conv(r.rlim_cur), conv(r.rlim_max)))
}

/// Raises the soft fd limit to the hard limit; returns the limits now in force.
pub fn raise_nofile() -> NoFile {
    let cur = nofile();
    if cur.soft < cur.hard {
        let r = libc::rlimit { rlim_cur: cur.hard as libc::rlim_t, rlim_max: cur.hard as libc::rlim_t };
        // SAFETY: setrlimit reads the struct we pass.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    }
    nofile()
}

/// Checks that `needed` descriptors fit under the limit (pure).
pub fn check_nofile(limit: NoFile, needed: u64, what: &str) -> Result<()> {
    if needed <= limit.soft {
        return Ok(());
    }
    Err(Error::Unavailable(format!(
        "RLIMIT_NOFILE is {} (hard {}), but this scenario needs {needed} file descriptors ({what}). \
         Raise the hard limit (`ulimit -Hn {needed}` as root, LimitNOFILE= for systemd, or tuning/limits.d; \
         `herd doctor --connections N` shows every limit) or lower --conversations/--members.",
        limit.soft, limit.hard
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_the_limit_cannot_hold_and_names_it() {
        let l = NoFile { soft: 20_000, hard: 20_000 };
        assert!(check_nofile(l, 19_000, "x").is_ok());
        let e = check_nofile(l, 30_000, "15000 client + 15000 server connections").unwrap_err();
        assert_eq!(e.exit_code(), 69);
        let m = e.to_string();
        assert!(m.contains("RLIMIT_NOFILE is 20000") && m.contains("30000"), "{m}");
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let l = raise_nofile();
        assert_eq!(l.soft, l.hard);
    }
}
