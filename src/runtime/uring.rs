//! Whether this process may use io_uring, asked once before any executor starts, so that a host
//! without it (a hardened sysctl, a container's default seccomp profile) gets one error that names
//! the cause and the fix instead of a runtime panic per executor.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// Why io_uring is unusable, from the errno of a tiny `io_uring_setup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// ENOSYS: a kernel built without io_uring, or a seccomp profile that answers "no such call".
    NoSyscall,
    /// EPERM/EACCES: `kernel.io_uring_disabled` or a seccomp profile that denies the call.
    Denied,
    /// Anything else (ENOMEM from RLIMIT_MEMLOCK on old kernels, ...), with its errno.
    Other(i32),
}

/// Why the executors cannot start, in words a user can act on.
pub fn explain(refusal: &Refusal, disabled_sysctl: Option<&str>) -> String {
    let sysctl = match disabled_sysctl.map(str::trim) {
        Some(v @ ("1" | "2")) => format!(" This host sets kernel.io_uring_disabled = {v}."),
        _ => String::new(),
    };
    let cause = match refusal {
        Refusal::NoSyscall => "io_uring_setup is not available (ENOSYS: a kernel without io_uring, or a \
                               seccomp profile that hides it)"
            .to_string(),
        Refusal::Denied => "io_uring_setup is not permitted (EPERM: the sysctl kernel.io_uring_disabled, or \
                            a seccomp profile that denies it)"
            .to_string(),
        Refusal::Other(errno) => {
            format!("io_uring_setup failed: {} (errno {errno})", std::io::Error::from_raw_os_error(*errno))
        }
    };
    format!(
        "herd's executors need io_uring, and this process cannot use it: {cause}.{sysctl} Fix: \
         `sysctl -w kernel.io_uring_disabled=0` on the host; in Docker run with `--security-opt \
         seccomp=unconfined` (or a seccomp profile that allows io_uring_setup, io_uring_enter and \
         io_uring_register); in Kubernetes the Localhost profile deploy/seccomp/herd-io-uring.json, or \
         `seccompProfile.type: Unconfined` (docs/KUBERNETES.md). `herd doctor` checks the host."
    )
}

/// Asks the kernel for a 1-entry ring and closes it at once.
pub fn probe() -> std::result::Result<(), Refusal> {
    // struct io_uring_params is 120 bytes; zeroed asks for the defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes only `params`, which outlives the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: the fd was just returned to us and is closed once.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    Err(match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
        libc::ENOSYS => Refusal::NoSyscall,
        libc::EPERM | libc::EACCES => Refusal::Denied,
        e => Refusal::Other(e),
    })
}

/// `Ok` when io_uring is usable; else the one error every command stops with (exit 69). Probed
/// once per process.
pub fn require() -> Result<()> {
    static ANSWER: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            probe().map_err(|r| {
                let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
                explain(&r, sysctl.as_deref())
            })
        })
        .clone()
        .map_err(Error::Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_can_use_io_uring() {
        // The test machines run the executors, so the probe must agree with them.
        assert_eq!(probe(), Ok(()));
    }

    #[test]
    fn the_explanation_names_cause_and_fix() {
        let m = explain(&Refusal::Denied, Some("2\n"));
        assert!(m.contains("EPERM"), "{m}");
        assert!(m.contains("kernel.io_uring_disabled = 2"), "{m}");
        assert!(m.contains("seccomp=unconfined") && m.contains("Unconfined"), "{m}");
        assert!(m.contains("docs/KUBERNETES.md"), "{m}");
        let m = explain(&Refusal::NoSyscall, Some("0"));
        assert!(m.contains("ENOSYS") && !m.contains("This host sets"), "{m}");
        assert!(explain(&Refusal::Other(libc::ENOMEM), None).contains("errno 12"));
    }
}
