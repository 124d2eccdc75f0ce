//! `--target actioncable` against a real Action Cable server: Debian's `ruby-actioncable` 6.1
//! under `puma`, mounted by the standalone `tests/peers/cable/config.ru` (the Rails guide's
//! ChatChannel, one stream per room). The preset waits for the welcome and for
//! `confirm_subscription` before a member is owed messages, so the accounting is exact.

mod common;
use common::peers::{assert_exact, errors, herd_ok, n, peers_dir};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// puma serving config.ru on a free loopback port; stopped when dropped (and killed with the
/// test process, through PR_SET_PDEATHSIG, if that dies first).
struct Cable {
    child: Child,
    addr: String,
}

impl Cable {
    fn start() -> Cable {
        let ru = peers_dir().join("cable/config.ru");
        let mut cmd = Command::new("puma");
        cmd.args(["-b", "tcp://127.0.0.1:0", "-t", "4:4", "--environment", "production"])
            .arg(&ru)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: prctl only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            })
        };
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("prerequisite missing: puma ({e}): install ruby-actioncable and puma (.ci/peers.sh)")
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = vec![];
        while Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(addr) = line.split("tcp://").nth(1).or_else(|| line.split("http://").nth(1)) {
                // Keep draining puma's output so that it never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return Cable { child, addr: addr.trim().to_string() };
            }
            seen.push(line);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("puma did not start: {seen:?}");
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        common::signal(&self.child, libc::SIGTERM);
        if common::terminate(&mut self.child, Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn actioncable_preset_against_a_real_action_cable_server_is_exact() {
    let cable = Cable::start();
    let url = format!("ws://{}/", cable.addr);
    let d = tempfile::tempdir().unwrap();
    // The run: 50 conversations of 4 at 1 message/s per sender.
    let v = herd_ok(d.path(), &["--target", "actioncable", "--url", &url, "-c", "50", "-k", "4", "-d", "3s"]);
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    assert_eq!(n(&v, "messages.sent"), 150, "{}", v["messages"]);
    // Every member waited for both acknowledgements: the join phase was timed for each.
    assert_eq!(n(&v, "connect_phases.join.count"), 200, "{}", v["connect_phases"]);
    // Action Cable echoes a broadcast to its sender: counted apart, never as delivered.
    assert_eq!(n(&v, "messages.echoed"), 150, "{}", v["messages"]);
}
