//! Helpers for the integration tests: the real `herd` binary, started on loopback with port 0,
//! stopped (and waited for) when dropped.
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
        let mut child = Command::new(herd_bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
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
        signal(&self.child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Runs `herd run ARGS --out FILE -q` to completion; returns the process output and the JSON.
pub fn run_herd(dir: &Path, args: &[&str]) -> (Output, Value) {
    let out: PathBuf = dir.join("results.json");
    let o = Command::new(herd_bin())
        .arg("run")
        .args(args)
        .args(["--out", out.to_str().unwrap(), "-q"])
        .output()
        .expect("run herd");
    assert!(o.status.success(), "herd run failed: {}\n{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("results file")).expect("results JSON");
    (o, v)
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
