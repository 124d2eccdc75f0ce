//! A real Prometheus Pushgateway and Prometheus for tests, on free loopback ports.
//!
//! [`PromStack::start`] runs Debian's `prometheus-pushgateway` and `prometheus` binaries
//! (`apt-get install -y prometheus prometheus-pushgateway`) with a temporary directory for the
//! configuration, the TSDB and the logs. Prometheus scrapes the Pushgateway every second with
//! `honor_labels: true`, as `dashboards/prometheus.yml` does. Dropping the stack (also while a
//! test panics) kills both processes and removes the directory. A missing binary fails the test
//! and names the package to install. `HERD_TEST_PUSHGATEWAY_BIN` and `HERD_TEST_PROMETHEUS_BIN`
//! point at other binaries.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running Pushgateway and Prometheus.
pub struct PromStack {
    /// `http://127.0.0.1:PORT` of the Pushgateway.
    pub pushgateway: String,
    /// `http://127.0.0.1:PORT` of Prometheus.
    pub prometheus: String,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

/// How long a binary gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl PromStack {
    /// Starts both servers and waits until both answer `/-/ready`. Panics (failing the test) if a
    /// binary is missing or does not become ready.
    pub fn start() -> PromStack {
        PromStack::start_scraping(&[])
    }

    /// Like [`PromStack::start`], and Prometheus also scrapes `/metrics` of each `host:port` in
    /// `targets` (job `herd_server`), such as a running `herd serve`.
    pub fn start_scraping(targets: &[&str]) -> PromStack {
        let pushgateway_bin = find_binary(
            "HERD_TEST_PUSHGATEWAY_BIN",
            &["prometheus-pushgateway", "pushgateway"],
            "prometheus-pushgateway",
        );
        let prometheus_bin = find_binary("HERD_TEST_PROMETHEUS_BIN", &["prometheus"], "prometheus");

        // The stack exists before the first process does, so that a panic from here on still
        // kills what was started and removes the directory.
        let mut stack =
            PromStack { pushgateway: String::new(), prometheus: String::new(), dir: temp_dir(), children: Vec::new() };

        let pg_port = stack.spawn_ready("pushgateway", |port, _dir| {
            let mut cmd = Command::new(&pushgateway_bin);
            // Debian's build persists to a shared file by default; tests keep metrics in memory
            // so that no group outlives its test or leaks into another.
            cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--persistence.file=")
                .arg("--log.level=info");
            cmd
        });
        stack.pushgateway = format!("http://127.0.0.1:{pg_port}");

        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    \
             static_configs:\n      - targets: ['127.0.0.1:{pg_port}']\n"
        );
        let mut config = config;
        if !targets.is_empty() {
            let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            config.push_str(&format!(
                "  - job_name: herd_server\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ));
        }
        let config_path = stack.dir.join("prometheus.yml");
        fs::write(&config_path, config).expect("writing prometheus.yml");
        let prom_port = stack.spawn_ready("prometheus", |port, dir| {
            let data = dir.join(format!("data-{port}"));
            let mut cmd = Command::new(&prometheus_bin);
            cmd.arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--storage.tsdb.retention.time=1h")
                .arg("--log.level=info");
            cmd
        });
        stack.prometheus = format!("http://127.0.0.1:{prom_port}");
        stack
    }

    /// Spawns a server on a free port and waits for `/-/ready`; tries other ports if the port
    /// was taken between finding it and the server binding it. Returns the port.
    fn spawn_ready(&mut self, name: &str, make: impl Fn(u16, &Path) -> Command) -> u16 {
        let mut last_problem = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let log_path = self.dir.join(format!("{name}-{attempt}.log"));
            let log = fs::File::create(&log_path).expect("creating a log file");
            let mut cmd = make(port, &self.dir);
            cmd.current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("cloning a log file handle"))
                .stderr(log);
            // Should the test process die without unwinding, the kernel kills the server.
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {name} ({:?}): {e}", cmd.get_program()));
            self.children.push((name.to_string(), child));
            let idx = self.children.len() - 1;
            let url = format!("http://127.0.0.1:{port}/-/ready");
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Ok(Some(status)) = self.children[idx].1.try_wait() {
                    last_problem = format!("{name} exited with {status}");
                    self.children.remove(idx);
                    break;
                }
                if matches!(http_get(&url), Ok((200, _))) {
                    return port;
                }
                if Instant::now() > deadline {
                    panic!(
                        "{name} did not become ready on port {port} within {READY_TIMEOUT:?}; \
                         log:\n{}",
                        tail(&log_path)
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last_problem = format!("{last_problem}; log:\n{}", tail(&log_path));
        }
        panic!("{name} could not be started: {last_problem}");
    }

    /// Evaluates an instant PromQL query. `Ok` holds the `data.result` array; `Err` says why the
    /// query failed (a parse error, for instance).
    pub fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, String> {
        let url = format!("{}/api/v1/query?query={}", self.prometheus, urlencode(promql));
        let (status, body) = http_get(&url)?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!(
                "HTTP {status}: {} {}",
                v["errorType"].as_str().unwrap_or(""),
                v["error"].as_str().unwrap_or(&body)
            ));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The values of the label `label` on series matching `matcher` (`/api/v1/label/.../values`).
    pub fn label_values(&self, label: &str, matcher: &str) -> Result<Vec<String>, String> {
        let url =
            format!("{}/api/v1/label/{}/values?match[]={}", self.prometheus, urlencode(label), urlencode(matcher));
        let (status, body) = http_get(&url)?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if v["status"] != "success" {
            return Err(format!("HTTP {status}: {body}"));
        }
        Ok(v["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default())
    }

    /// Polls `promql` until `done` accepts its result; panics after `timeout`.
    pub fn wait_for_query(
        &self,
        promql: &str,
        timeout: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let mut last = Err(String::from("not queried"));
        while Instant::now() < deadline {
            last = self.query(promql);
            if let Ok(r) = &last {
                if done(r) {
                    return r.clone();
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{promql} did not reach the expected result within {timeout:?}; last: {last:?}");
    }

    /// The Pushgateway's own `/metrics` text.
    pub fn pushgateway_metrics(&self) -> String {
        let (status, body) = http_get(&format!("{}/metrics", self.pushgateway)).expect("GET pushgateway /metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The Pushgateway's `/api/v1/metrics`: one entry per group.
    pub fn pushgateway_groups(&self) -> serde_json::Value {
        let (status, body) =
            http_get(&format!("{}/api/v1/metrics", self.pushgateway)).expect("GET pushgateway /api/v1/metrics");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("pushgateway /api/v1/metrics is JSON")
    }

    /// The log of one of the servers (`"pushgateway"` or `"prometheus"`), for failure messages.
    pub fn log(&self, name: &str) -> String {
        let mut out = String::new();
        for attempt in 0..3 {
            let p = self.dir.join(format!("{name}-{attempt}.log"));
            if p.exists() {
                out.push_str(&tail(&p));
            }
        }
        out
    }
}

impl Drop for PromStack {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn find_binary(env: &str, names: &[&str], package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env}={} is not a file", p.display());
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push(PathBuf::from("/usr/bin"));
    for name in names {
        for d in &dirs {
            let p = d.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} not found on PATH or in /usr/bin: install the Debian package with \
         `apt-get update && apt-get install -y {package}` (or set {env} to the binary)",
        names.join(" or ")
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("binding a free loopback port").port()
}

fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "herd-promstack-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).expect("creating a temporary directory");
    dir
}

fn tail(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A plain-http agent for tests: short timeouts, no proxy, statuses returned rather than errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

/// GET `url`: status and body.
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    let mut resp = agent().get(url).call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().with_config().limit(64 << 20).read_to_string().map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// PUT `body` to `url` as the text exposition format: the status.
pub fn http_put(url: &str, body: &str) -> Result<u16, String> {
    let resp =
        agent().put(url).header("Content-Type", "text/plain; version=0.0.4").send(body).map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// Percent-encodes a query parameter.
pub fn urlencode(s: &str) -> String {
    herd::metrics::percent_encode(s)
}
