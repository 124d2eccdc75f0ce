//! A host without io_uring: every command that starts executors stops with one error naming the
//! cause and the fix, exit 69, and no runtime panic. The host is made so for the child alone by a
//! seccomp filter, installed between fork and exec, that answers `io_uring_setup` with EPERM (as a
//! container runtime's default profile or `kernel.io_uring_disabled=2` do).

mod common;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Installs a filter that fails `io_uring_setup` with EPERM and allows every other call.
fn deny_io_uring() -> std::io::Result<()> {
    // Classic BPF over struct seccomp_data: nr at offset 0, arch at offset 4.
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xc000_00b7;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let prog = [
        f(LD_W_ABS, 0, 0, 4),
        f(JEQ_K, 1, 0, ARCH),
        f(RET_K, 0, 0, RET_ALLOW),
        f(LD_W_ABS, 0, 0, 0),
        f(JEQ_K, 0, 1, libc::SYS_io_uring_setup as u32),
        f(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
        f(RET_K, 0, 0, RET_ALLOW),
    ];
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
    // SAFETY: prctl with these arguments only reads `fprog`, which lives across the calls; only
    // async-signal-safe calls run here, between fork and exec.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const libc::sock_fprog) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn without_io_uring(args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(common::herd_bin());
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: the closure calls only prctl (see deny_io_uring).
    unsafe { cmd.pre_exec(deny_io_uring) };
    let out = common::output_within(cmd.spawn().expect("start herd"), Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), text)
}

fn assert_explained(args: &[&str]) {
    let (code, text) = without_io_uring(args);
    assert!(!text.contains("panicked"), "herd {args:?} panicked:\n{text}");
    assert_eq!(code, 69, "herd {args:?} exit code:\n{text}");
    for needle in ["io_uring", "EPERM", "kernel.io_uring_disabled", "seccomp", "docs/KUBERNETES.md"] {
        assert!(text.contains(needle), "herd {args:?}: no {needle:?} in:\n{text}");
    }
    assert_eq!(text.matches("herd's executors need io_uring").count(), 1, "said once:\n{text}");
}

#[test]
fn run_without_io_uring_says_why_and_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    assert_explained(&["run", "-c", "2", "-k", "2", "-d", "1s", "--threads", "2", "--out", out.to_str().unwrap()]);
}

#[test]
fn serve_without_io_uring_says_why_and_exits_69() {
    assert_explained(&["serve", "--listen", "127.0.0.1:0", "--threads", "2"]);
}

#[test]
fn ceiling_and_knee_without_io_uring_say_why_and_exit_69() {
    assert_explained(&["ceiling", "--max", "100", "--threads", "1"]);
    assert_explained(&["knee", "-c", "2", "-k", "2", "--p99", "50ms", "--steps", "2", "--step-duration", "1s"]);
}
