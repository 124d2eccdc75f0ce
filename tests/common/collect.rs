//! A `herd collect` on a free loopback port, stopped (and waited for) when dropped.

use super::*;

pub struct CollectProc {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Every stderr line after the listening line, once the process ended.
    lines: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl CollectProc {
    /// `herd collect --listen 127.0.0.1:0 --shards N --dir DIR EXTRA...`, once it listens.
    pub fn start(dir: &Path, shards: u32, extra: &[&str]) -> CollectProc {
        let mut child = Command::new(herd_bin())
            .args(["collect", "--listen", "127.0.0.1:0", "--shards", &shards.to_string()])
            .args(["--dir", dir.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start herd collect");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).expect("read the listening line");
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        // Read on, so that it never blocks on a full pipe.
        let lines = std::thread::spawn(move || err.lines().map_while(Result::ok).collect());
        CollectProc { child, addr, lines: Some(lines) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `/v1/status` as JSON.
    pub fn status(&self) -> Value {
        serde_json::from_str(&http_get(&self.addr, "/v1/status").1).expect("status JSON")
    }

    /// Waits for it to exit by itself; returns its status and what it printed on stderr.
    pub fn wait_exit(mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let mut status = None;
        wait_for("herd collect to exit", within, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let said = self.lines.take().map(|h| h.join().unwrap_or_default().join("\n")).unwrap_or_default();
        (status.unwrap(), said)
    }
}

impl Drop for CollectProc {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}
