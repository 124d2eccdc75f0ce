//! The pusher: a thread of its own that PUTs the newest exposition text to the Pushgateway.
//!
//! The run never waits for it. [`Pusher::update`] only swaps a string under a mutex (latest
//! wins, nothing queues); the thread pushes at most once per interval, with a short timeout, and
//! a failure costs one warning on stderr and a retry at the next interval with whatever text is
//! newest by then. [`Pusher::finish`] pushes the final text with a few retries, deletes the group
//! if configured to, and reports what happened.
//!
//! HTTP is `ureq` without default features (plain http, blocking, no async runtime), not the
//! prometheus crate's `push` feature: that feature brings reqwest with its tokio runtime and
//! native-tls (OpenSSL), a large build and a system library for what is one PUT every few
//! seconds to a Pushgateway that is almost always on the local network. Without TLS, `https://`
//! Pushgateway URLs are refused when the options are parsed.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::grouping::group_url_with;

/// Where and how often to push.
#[derive(Clone, Debug, PartialEq)]
pub struct PushConfig {
    /// The Pushgateway's base URL, `http://host:port` (a path prefix is allowed).
    pub url: String,
    pub job: String,
    pub instance: String,
    /// Time between pushes during the run.
    pub interval: Duration,
    /// Timeout of one HTTP request, connect included.
    pub timeout: Duration,
    /// Delete the group after the final push.
    pub delete_on_finish: bool,
    /// Pauses between the tries of the final push (and of the delete): one more try than pauses.
    pub final_backoff: Vec<Duration>,
    /// Grouping labels after `instance` (`shard` for a sharded run).
    pub grouping: Vec<(String, String)>,
}

impl PushConfig {
    /// Defaults: push every 5 s, 2 s timeout, final push tried 4 times (after 200, 400 and
    /// 800 ms pauses), no delete.
    pub fn new(url: &str, job: &str, instance: &str) -> PushConfig {
        PushConfig {
            url: url.trim_end_matches('/').to_string(),
            job: job.to_string(),
            instance: instance.to_string(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            delete_on_finish: false,
            final_backoff: vec![Duration::from_millis(200), Duration::from_millis(400), Duration::from_millis(800)],
            grouping: vec![],
        }
    }

    /// The group's URL: `{url}/metrics/job/{job}/instance/{instance}`.
    pub fn group_url(&self) -> String {
        group_url_with(&self.url, &self.job, &self.instance, &self.grouping)
    }
}

/// What the pusher did, for the results file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PushReport {
    /// The group's URL.
    pub url: String,
    /// Successful PUTs, the final one included.
    pub pushes_ok: u64,
    /// Failed PUTs (every try of the final push counts).
    pub pushes_failed: u64,
    /// Whether the final text reached the Pushgateway.
    pub final_push_ok: bool,
    /// `None` when no delete was asked for; otherwise whether it succeeded.
    pub deleted: Option<bool>,
    /// The most recent error, if any request ever failed.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct State {
    /// Newest text not pushed yet.
    pending: Option<String>,
    /// The final text; its arrival ends the periodic pushes.
    final_body: Option<String>,
    /// The pusher was dropped without `finish`: exit without pushing.
    abandoned: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only plain data behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Pushes metrics from its own thread. Create it with [`Pusher::start`], feed it with
/// [`Pusher::update`], end it with [`Pusher::finish`]. Dropping it without `finish` stops the
/// thread without a final push.
pub struct Pusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<PushReport>>,
    url: String,
}

impl Pusher {
    /// Starts the pushing thread. Nothing is sent until the first [`Pusher::update`], which is
    /// pushed at once; later texts at most once per interval.
    pub fn start(cfg: PushConfig) -> Pusher {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), wake: Condvar::new() });
        let url = cfg.group_url();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("herd-pusher".to_string())
            .spawn(move || run(cfg, &thread_shared))
            .expect("spawning the metrics pusher thread");
        Pusher { shared, thread: Some(thread), url }
    }

    /// The group's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Hands over the newest exposition text; it replaces any text not pushed yet. Never blocks
    /// on the network.
    pub fn update(&self, body: String) {
        self.shared.lock().pending = Some(body);
        self.shared.wake.notify_one();
    }

    /// Pushes `final_body` (retrying as configured), deletes the group if configured, stops the
    /// thread and reports. Takes at most about (tries × timeout + the backoff pauses), twice
    /// over with a delete; much less when the Pushgateway refuses connections outright.
    pub fn finish(mut self, final_body: String) -> PushReport {
        self.shared.lock().final_body = Some(final_body);
        self.shared.wake.notify_one();
        let handle = self.thread.take().expect("the thread is joined only here");
        match handle.join() {
            Ok(report) => report,
            Err(_) => PushReport {
                url: self.url.clone(),
                last_error: Some("the metrics pusher thread panicked".to_string()),
                ..PushReport::default()
            },
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.lock().abandoned = true;
            self.shared.wake.notify_one();
        }
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("herd/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn check(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(), String> {
    let mut resp = result.map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.body_mut().with_config().limit(2048).read_to_string().unwrap_or_default();
    Err(format!("HTTP {status}: {}", body.trim()))
}

fn put(agent: &ureq::Agent, url: &str, body: &str) -> Result<(), String> {
    check(agent.put(url).header("Content-Type", "text/plain; version=0.0.4; charset=utf-8").send(body))
}

fn delete(agent: &ureq::Agent, url: &str) -> Result<(), String> {
    check(agent.delete(url).call())
}

/// Runs `op` once, then once more after each pause, until it succeeds.
fn with_retries(pauses: &[Duration], report: &mut PushReport, mut op: impl FnMut() -> Result<(), String>) -> bool {
    for attempt in 0..=pauses.len() {
        match op() {
            Ok(()) => return true,
            Err(e) => {
                report.last_error = Some(e);
                if let Some(p) = pauses.get(attempt) {
                    std::thread::sleep(*p);
                }
            }
        }
    }
    false
}

enum Action {
    Push(String),
    Final(String),
}

fn run(cfg: PushConfig, shared: &Shared) -> PushReport {
    let agent = agent(cfg.timeout);
    let url = cfg.group_url();
    let mut report = PushReport { url: url.clone(), ..PushReport::default() };
    let mut failing = false;
    // When the next periodic push may happen; `None` until the first text arrives.
    let mut next: Option<Instant> = None;

    let final_body = loop {
        let action = {
            let mut st = shared.lock();
            loop {
                if st.abandoned {
                    return report;
                }
                if let Some(f) = st.final_body.take() {
                    break Action::Final(f);
                }
                if st.pending.is_none() {
                    st = shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                let now = Instant::now();
                match next {
                    Some(at) if at > now => {
                        st = shared.wake.wait_timeout(st, at - now).unwrap_or_else(|e| e.into_inner()).0;
                    }
                    _ => break Action::Push(st.pending.take().unwrap_or_default()),
                }
            }
        };
        let body = match action {
            Action::Final(f) => break f,
            Action::Push(b) => b,
        };
        next = Some(Instant::now() + cfg.interval);
        match put(&agent, &url, &body) {
            Ok(()) => {
                report.pushes_ok += 1;
                if failing {
                    crate::errln!("herd: pushing metrics to {url} works again");
                    failing = false;
                }
            }
            Err(e) => {
                report.pushes_failed += 1;
                crate::errln!("herd: warning: pushing metrics to {url} failed: {e} (retrying in {:?})", cfg.interval);
                report.last_error = Some(e);
                failing = true;
                // Retry next interval, unless a newer text arrived meanwhile.
                let mut st = shared.lock();
                if st.pending.is_none() {
                    st.pending = Some(body);
                }
            }
        }
    };

    let mut ok = 0u64;
    let mut tries = 0u64;
    let pushed = with_retries(&cfg.final_backoff, &mut report, || {
        tries += 1;
        let r = put(&agent, &url, &final_body);
        ok += u64::from(r.is_ok());
        r
    });
    report.pushes_ok += ok;
    report.pushes_failed += tries - ok;
    report.final_push_ok = pushed;
    if !pushed {
        crate::errln!(
            "herd: warning: the final metrics push to {url} failed after {tries} tries: {}",
            report.last_error.as_deref().unwrap_or("unknown error")
        );
    }
    if cfg.delete_on_finish {
        // An unreachable Pushgateway gets a single delete try, not another round of retries.
        let pauses: &[Duration] = if pushed { &cfg.final_backoff } else { &[] };
        let deleted = with_retries(pauses, &mut report, || delete(&agent, &url));
        if !deleted {
            crate::errln!(
                "herd: warning: deleting the metrics group {url} failed: {}",
                report.last_error.as_deref().unwrap_or("unknown error")
            );
        }
        report.deleted = Some(deleted);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A minimal HTTP server that answers 200 to everything and reports each request as
    /// (method, path, body).
    fn fake_gateway() -> (String, mpsc::Receiver<(String, String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let _ =
                    reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                if tx.send((method, path, String::from_utf8_lossy(&body).into_owned())).is_err() {
                    return;
                }
            }
        });
        (url, rx)
    }

    #[test]
    fn latest_text_wins_and_final_push_and_delete_follow() {
        let (url, requests) = fake_gateway();
        let mut cfg = PushConfig::new(&url, "herd", "box/1");
        cfg.interval = Duration::from_millis(300);
        cfg.delete_on_finish = true;
        let pusher = Pusher::start(cfg);
        assert_eq!(pusher.url(), format!("{url}/metrics/job/herd/instance@base64/Ym94LzE="));
        let wait = Duration::from_secs(10);

        pusher.update("a 1\n".to_string());
        let (method, path, body) = requests.recv_timeout(wait).unwrap();
        assert_eq!(method, "PUT");
        assert_eq!(path, "/metrics/job/herd/instance@base64/Ym94LzE=");
        assert_eq!(body, "a 1\n", "the first text is pushed at once");

        // Within one interval, only the newest text is pushed.
        pusher.update("a 2\n".to_string());
        pusher.update("a 3\n".to_string());
        let (_, _, body) = requests.recv_timeout(wait).unwrap();
        assert_eq!(body, "a 3\n");

        let report = pusher.finish("a 4\n".to_string());
        let (method, _, body) = requests.recv_timeout(wait).unwrap();
        assert_eq!((method.as_str(), body.as_str()), ("PUT", "a 4\n"));
        let (method, path, _) = requests.recv_timeout(wait).unwrap();
        assert_eq!(method, "DELETE");
        assert_eq!(path, "/metrics/job/herd/instance@base64/Ym94LzE=");
        assert!(requests.try_recv().is_err(), "nothing else was sent");
        assert_eq!(report.pushes_ok, 3, "{report:?}");
        assert_eq!(report.pushes_failed, 0, "{report:?}");
        assert!(report.final_push_ok);
        assert_eq!(report.deleted, Some(true));
        assert_eq!(report.last_error, None);
    }

    #[test]
    fn dropping_without_finish_stops_the_thread_quietly() {
        let (url, requests) = fake_gateway();
        let mut cfg = PushConfig::new(&url, "herd", "x");
        cfg.delete_on_finish = true;
        let pusher = Pusher::start(cfg);
        pusher.update("a 1\n".to_string());
        let (method, _, body) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((method.as_str(), body.as_str()), ("PUT", "a 1\n"));
        // The thread holds the other reference to the shared state: it is gone once the thread
        // has ended.
        let shared = Arc::clone(&pusher.shared);
        drop(pusher);
        let t = std::time::Instant::now();
        while Arc::strong_count(&shared) > 1 {
            assert!(t.elapsed() < Duration::from_secs(30), "the pusher thread did not stop");
            std::thread::yield_now();
        }
        // Nothing after the first push: no final push, no delete.
        assert!(requests.try_recv().is_err());
    }
}
