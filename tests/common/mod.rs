//! Helpers for the integration tests: the real `herd` binary, started on loopback with port 0,
//! stopped (and waited for) when dropped. Submodules: `raw` (WebSocket bytes by hand), `hostile`
//! (a misbehaving server), `peers` (third-party servers from tests/peers), `promstack` (real
//! Prometheus and Pushgateway), `dashboard` (the Grafana dashboards' queries), `tlsfix` (TLS
//! certificates, servers and nginx), `collect` (a `herd collect`).
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn herd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_herd")
}

/// A `herd serve` process on a free loopback port.
pub struct ServeProc {
    pub child: Child,
    pub addr: String,
}

impl ServeProc {
    pub fn start(extra: &[&str]) -> ServeProc {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// On a given address (a port a killed server left).
    pub fn start_on(listen: &str, extra: &[&str]) -> ServeProc {
        let mut child = Command::new(herd_bin())
            .args(["serve", "--listen", listen])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start herd serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).expect("read the listening line");
        let addr = line
            .split_whitespace()
            .find(|w| w.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        ServeProc { child, addr }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/conv/{{conv}}?user={{user}}", self.addr)
    }

    /// The server's /metrics as (name with labels -> value).
    pub fn metrics(&self) -> std::collections::HashMap<String, f64> {
        let body = http_get(&self.addr, "/metrics").1;
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for ServeProc {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// Stops a child with SIGTERM, killing it if it has not exited within `within`; returns its exit
/// status, `None` if it had to be killed.
pub fn terminate(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    if let Ok(Some(s)) = child.try_wait() {
        return Some(s);
    }
    signal(child, libc::SIGTERM);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Polls `ready` until it holds; fails the test, naming `what`, if it has not after `within`. For
/// tests that must wait for a condition (a port, a file, a count) rather than sleep and hope.
pub fn wait_for(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "gave up after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// A plain HTTP GET; returns (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect for HTTP");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let status = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A herd run in these tests takes a few seconds; one still running after this is stuck.
pub const HERD_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `herd run ARGS --out DIR/NAME -q` to completion, successful or not; returns the process
/// output and the results JSON (written in both cases once a run started). Its output goes to
/// files, so a chatty run cannot fill a pipe and stall. A run that does not end within
/// [`HERD_TIMEOUT`] is killed and fails the test.
pub fn herd_run(dir: &Path, name: &str, args: &[&str]) -> (Output, Value) {
    let out = dir.join(name);
    let _ = std::fs::remove_file(&out);
    let (stdout, stderr) = (dir.join("herd.stdout"), dir.join("herd.stderr"));
    let mut child = Command::new(herd_bin())
        .arg("run")
        .args(args)
        .args(["--out", out.to_str().unwrap(), "-q"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("run herd");
    let deadline = Instant::now() + HERD_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for herd") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("herd run {args:?} still running after {HERD_TIMEOUT:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let o = Output {
        status,
        stdout: std::fs::read(&stdout).unwrap_or_default(),
        stderr: std::fs::read(&stderr).unwrap_or_default(),
    };
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| {
        panic!(
            "no results from herd ({e}), exit {:?}:\n{}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o, serde_json::from_str(&text).expect("results JSON"))
}

/// Runs `herd run ARGS --out DIR/results.json -q`, which must succeed; returns the process
/// output and the JSON.
pub fn run_herd(dir: &Path, args: &[&str]) -> (Output, Value) {
    let (o, v) = herd_run(dir, "results.json", args);
    assert!(
        o.status.success(),
        "herd run failed ({:?}): {}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    (o, v)
}

/// Waits for a child's output, killing it (and failing the test) if it runs past `limit`, so a
/// hung run fails fast instead of holding the suite.
pub fn output_within(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait for herd").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().expect("collect herd's output");
            panic!("herd did not finish within {limit:?}; stderr:\n{}", String::from_utf8_lossy(&o.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect herd's output")
}

pub fn u(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_u64().unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

pub fn f(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_f64().unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

pub mod collect;
pub mod dashboard;
pub mod hostile;
pub mod peers;
pub mod promstack;
pub mod raw;
pub mod tlsfix;

/// A `herd run` in the background, its stderr read line by line on a thread.
pub struct RunProc {
    pub child: Child,
    pub out: PathBuf,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every stderr line seen so far.
    pub seen: Vec<String>,
}

impl RunProc {
    /// Starts `herd run ARGS --out DIR/results.json` (progress lines on, so tests can read them).
    pub fn start(dir: &Path, args: &[&str]) -> RunProc {
        let out = dir.join("results.json");
        let mut child = Command::new(herd_bin())
            .arg("run")
            .args(args)
            .args(["--out", out.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start herd run");
        let err = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        RunProc { child, out, lines, seen: vec![] }
    }

    /// Waits for a stderr line containing `needle` (up to `within`); returns it.
    pub fn wait_line(&mut self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Waits for a progress line that shows messages going out (`sent N/s` with N > 0): the
    /// send phase is under way, not only announced.
    pub fn wait_sent(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let sending = |l: &str| {
            l.split(" sent ").nth(1).and_then(|r| r.split('/').next()?.parse::<f64>().ok()).is_some_and(|n| n > 0.0)
        };
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.wait_line(" sent ", left) {
                Some(l) if sending(&l) => return true,
                Some(_) => {}
                None => return false,
            }
        }
        false
    }

    /// Waits for the process to exit (killing it after `within`); returns its status, stdout,
    /// the time it took and the results JSON if written.
    pub fn finish(mut self, within: Duration) -> (std::process::ExitStatus, String, Duration, Option<Value>) {
        let t = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > within {
                let _ = self.child.kill();
                panic!("herd run did not finish within {within:?}; stderr so far: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        let v = std::fs::read_to_string(&self.out).ok().map(|t| serde_json::from_str(&t).expect("results JSON"));
        (status, stdout, t.elapsed(), v)
    }
}

impl Drop for RunProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
