//! Third-party WebSocket servers for herd's tests, from `tests/peers/` (see its README.md):
//! `ws_peer.py` (PyPI `websockets`), `ws_peer.js` (npm `ws`) and `nchan.py` (nginx + nchan).
//!
//! [`Peer::start`] checks the fixture's prerequisites first and fails the test with the package
//! to install when one is missing (tests never skip). Each fixture runs on a free loopback port
//! with `--exit-on-stdin-eof` and a piped stdin, so it stops even if the test process dies;
//! [`Peer::stop`] stops it with SIGTERM and returns its JSON report, and dropping a [`Peer`] (also
//! while a test panics) stops it too. [`herd`] runs `herd run` and returns its results even when
//! the run fails.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Which fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// `ws_peer.py`, PyPI `websockets`.
    Py,
    /// `ws_peer.js`, npm `ws`.
    Js,
    /// `nchan.py`, nginx + nchan.
    Nchan,
    /// `sio_peer.js`, npm `socket.io`.
    SocketIo,
    /// `strict_peer.js`, npm `ws`: strict join and text-ping servers.
    Strict,
}

pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// A running fixture.
pub struct Peer {
    child: Child,
    /// Kept open: the fixture exits when it is closed.
    stdin: Option<ChildStdin>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    report: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// `ws_peer.py`/`ws_peer.js` in `mode` with extra options (e.g. `["--bytes", "1000"]`).
    pub fn ws(which: Impl, mode: &str, extra: &[&str]) -> Peer {
        let mut args = vec!["--mode", mode];
        args.extend_from_slice(extra);
        Peer::start(which, &args)
    }

    /// `nchan.py` with extra options.
    pub fn nchan(extra: &[&str]) -> Peer {
        Peer::start(Impl::Nchan, extra)
    }

    pub fn start(which: Impl, extra: &[&str]) -> Peer {
        prerequisites(which);
        let dir = tempfile::tempdir().expect("temp dir");
        let report = dir.path().join("report.json");
        let stderr = dir.path().join("stderr.txt");
        let (program, script) = match which {
            Impl::Py => ("python3", "ws_peer.py"),
            Impl::Js => ("node", "ws_peer.js"),
            Impl::Nchan => ("python3", "nchan.py"),
            Impl::SocketIo => ("node", "sio_peer.js"),
            Impl::Strict => ("node", "strict_peer.js"),
        };
        let mut cmd = Command::new(program);
        cmd.arg(peers_dir().join(script)).args(["--port", "0", "--exit-on-stdin-eof", "--report"]).arg(&report);
        if which == Impl::Nchan {
            cmd.arg("--dir").arg(dir.path().join("nginx"));
        }
        let mut child = cmd
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} {script}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut peer = Peer { child, stdin, addr: String::new(), report, stderr, _dir: dir };
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        match line.trim().strip_prefix("LISTENING ") {
            Some(addr) if addr.starts_with("127.0.0.1:") => peer.addr = addr.to_string(),
            _ => panic!("{script} did not start (first line {line:?}); stderr:\n{}", peer.stderr_text()),
        }
        peer
    }

    /// `ws://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, wait for exit 0, and return the report written at shutdown.
    pub fn stop(mut self) -> Value {
        let status =
            self.terminate().unwrap_or_else(|| panic!("fixture did not stop; stderr:\n{}", self.stderr_text()));
        assert!(status.success(), "fixture exited with {status}; stderr:\n{}", self.stderr_text());
        let text = std::fs::read_to_string(&self.report)
            .unwrap_or_else(|e| panic!("no report ({e}); stderr:\n{}", self.stderr_text()));
        serde_json::from_str(&text).expect("report JSON")
    }

    /// SIGTERM and wait; `None` if it had to be killed.
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let status = super::terminate(&mut self.child, STOP_TIMEOUT);
        if status.is_some() {
            self.stdin.take();
        }
        status
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.terminate();
        self.stdin.take();
    }
}

/// Fails the test, naming what to install, when a fixture cannot run here.
pub fn prerequisites(which: Impl) {
    static PY: OnceLock<Result<(), String>> = OnceLock::new();
    static JS: OnceLock<Result<(), String>> = OnceLock::new();
    static NCHAN: OnceLock<Result<(), String>> = OnceLock::new();
    static SIO: OnceLock<Result<(), String>> = OnceLock::new();
    let r = match which {
        Impl::Py => PY.get_or_init(check_python),
        Impl::Js | Impl::Strict => JS.get_or_init(check_node),
        Impl::SocketIo => SIO.get_or_init(|| {
            check_node()?;
            if !peers_dir().join("node_modules/socket.io/package.json").exists() {
                return Err("npm package socket.io is not installed: npm ci --prefix tests/peers".into());
            }
            Ok(())
        }),
        Impl::Nchan => NCHAN.get_or_init(check_nchan),
    };
    if let Err(e) = r {
        panic!("prerequisite missing: {e} (or run .ci/peers.sh)");
    }
}

fn check_python() -> Result<(), String> {
    let o = Command::new("python3")
        .args(["-c", "import websockets, sys; print(websockets.__version__); sys.exit(sys.version_info < (3, 11))"])
        .output()
        .map_err(|e| format!("python3 not found ({e}): apt-get install -y python3"))?;
    if !o.status.success() {
        return Err(format!(
            "Python >= 3.11 with PyPI websockets is needed: python3 -m pip install -r tests/peers/requirements.txt ({})",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}

fn check_node() -> Result<(), String> {
    Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node not found ({e}): apt-get install -y nodejs npm"))?;
    if !peers_dir().join("node_modules/ws/package.json").exists() {
        return Err("npm package ws is not installed: npm ci --prefix tests/peers".into());
    }
    Ok(())
}

fn check_nchan() -> Result<(), String> {
    let python = Command::new("python3").args(["-c", "import sys; sys.exit(sys.version_info < (3, 8))"]).status();
    if !python.is_ok_and(|s| s.success()) {
        return Err("nchan.py needs python3: apt-get install -y python3".into());
    }
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).exists());
    if nginx.is_none() && Command::new("nginx").arg("-v").output().is_err() {
        return Err("nginx not found: apt-get install -y nginx-light libnginx-mod-nchan".into());
    }
    let module = ["/usr/lib/nginx/modules/ngx_nchan_module.so", "/usr/share/nginx/modules-available/mod-nchan.conf"]
        .into_iter()
        .any(|p| Path::new(p).exists());
    if !module {
        return Err("the nchan module is not installed: apt-get install -y libnginx-mod-nchan".into());
    }
    Ok(())
}

/// [`super::herd_run`] with results in `DIR/results.json`.
pub fn herd(dir: &Path, args: &[&str]) -> (Output, Value) {
    super::herd_run(dir, "results.json", args)
}

/// Like [`herd`], and the run must have succeeded.
pub fn herd_ok(dir: &Path, args: &[&str]) -> Value {
    super::run_herd(dir, args).1
}

/// The value at a dotted path, as u64.
pub fn n(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_u64().unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

/// Every herd error category that is not zero.
pub fn errors(v: &Value) -> Vec<(String, u64)> {
    v["errors"]
        .as_object()
        .expect("errors")
        .iter()
        .filter_map(|(k, c)| c.as_u64().filter(|&c| c > 0).map(|c| (k.clone(), c)))
        .collect()
}

/// Checks that every owed delivery arrived exactly once: every connection stayed up, so each
/// message was owed to every other member of its conversation, whatever herd's own `expected`
/// says.
pub fn assert_exact(v: &Value) {
    let m = &v["messages"];
    let sent = n(v, "messages.sent");
    assert!(sent > 0, "nothing sent: {m}");
    let (all, members) = (n(v, "scenario.conversations"), n(v, "scenario.members"));
    // A shard I/N owns the conversations c with c % N == I.
    let convs = match v["scenario"]["shard"].as_str().and_then(|s| s.split_once('/')) {
        Some((i, k)) => {
            let (i, k): (u64, u64) = (i.parse().unwrap(), k.parse().unwrap());
            (0..all).filter(|c| c % k == i).count() as u64
        }
        None => all,
    };
    assert_eq!(n(v, "connections.established"), convs * members, "{}", v["connections"]);
    assert_eq!(n(v, "connections.closed_by_peer"), 0, "{}", v["connections"]);
    assert_eq!(n(v, "messages.delivered"), sent * (members - 1), "{m}");
    assert_eq!(n(v, "messages.delivered"), n(v, "messages.expected"), "{m}");
    assert_eq!((n(v, "messages.missed"), n(v, "messages.duplicated")), (0, 0), "{m}");
}
