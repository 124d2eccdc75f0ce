//! The worker's side of `herd collect`: `herd run --collect URL` says when it starts, posts its
//! results JSON when it ends (any size: an HTTP body, not a log line), or the error it ended
//! with. Posting retries with exponential backoff, bounded in time by `--collect-within`.

use crate::config::shard::Shard;
use crate::error::{Error, Result};
use crate::outcome::results::RunResult;
use std::time::{Duration, Instant};

pub use crate::config::collect::PostArgs;

/// The wait before retry `attempt` (0-based): 0.5 s doubling, at most 15 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(15))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .user_agent(concat!("herd/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// One POST: `Ok` on 2xx; `Err((retry, why))`: 4xx answers are not retried (the collector
/// refused these results for good), anything else is.
fn post_once(url: &str, run: Option<&str>, worker: &str, body: &str) -> std::result::Result<(), (bool, String)> {
    let mut req = agent().post(url).header("X-Herd-Worker", worker);
    if let Some(r) = run {
        req = req.header("X-Herd-Run", r);
    }
    match req.send(body) {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(mut resp) => {
            let code = resp.status().as_u16();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            Err((!(400..500).contains(&code), format!("POST {url}: {code} {}", text.trim())))
        }
        Err(e) => Err((true, format!("POST {url}: {e}"))),
    }
}

/// POSTs `body` until it is taken, a 4xx refuses it, or `within` has passed.
pub fn post(
    url: &str,
    run: Option<&str>,
    body: &str,
    within: Duration,
    say: &dyn Fn(String),
) -> std::result::Result<(), String> {
    let t0 = Instant::now();
    let worker = crate::metrics::hostname();
    let mut attempt = 0;
    loop {
        match post_once(url, run, &worker, body) {
            Ok(()) => return Ok(()),
            Err((false, e)) => return Err(e),
            Err((true, e)) => {
                let wait = backoff(attempt);
                if t0.elapsed() + wait > within {
                    return Err(format!("{e} (gave up after {} tries in {:.0?})", attempt + 1, t0.elapsed()));
                }
                say(format!("--collect: {e}; trying again in {wait:?}"));
                std::thread::sleep(wait);
                attempt += 1;
            }
        }
    }
}

/// The collector URL, the run id and this process's shard, when `--collect` is given.
pub struct Worker {
    url: String,
    run: Option<String>,
    shard: Shard,
    within: Duration,
}

impl Worker {
    pub fn new(a: &PostArgs, run: Option<&str>, shard: Option<Shard>) -> Option<Worker> {
        Some(Worker {
            url: a.collect.clone()?,
            run: run.map(String::from),
            shard: shard.unwrap_or(Shard { index: 0, count: 1 }),
            within: a.collect_within.unwrap_or(Duration::from_secs(300)),
        })
    }

    /// Says this shard started, in the background (a lost notice costs only the reason the
    /// collector gives if no results follow).
    pub fn started(&self) {
        let url = format!("{}/v1/started?shard={}", self.url, self.shard.index);
        let run = self.run.clone();
        let _ = std::thread::Builder::new().name("herd-collect-started".into()).spawn(move || {
            let _ = post(&url, run.as_deref(), "", Duration::from_secs(20), &|_| {});
        });
    }

    /// Posts the results; on failure the error says so (the caller still has them).
    pub fn results(&self, r: &RunResult, say: &dyn Fn(String)) -> Result<()> {
        let body = serde_json::to_string(r).map_err(|e| Error::Software(format!("--collect: {e}")))?;
        let url = format!("{}/v1/results", self.url);
        post(&url, self.run.as_deref(), &body, self.within, say)
            .map_err(|e| Error::Unavailable(format!("--collect: the results could not be posted: {e}")))
    }

    /// Reports the error this worker ends with.
    pub fn failed(&self, e: &Error) {
        let url = format!("{}/v1/failed?shard={}", self.url, self.shard.index);
        let text = format!("exit {}: {e}", e.exit_code());
        let _ = post(&url, self.run.as_deref(), &text, self.within.min(Duration::from_secs(60)), &|m| {
            crate::errln!("herd: {m}")
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling() {
        let waits: Vec<u64> = (0..8).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(15));
    }

    #[test]
    fn collect_urls_are_http() {
        assert_eq!(crate::config::collect::parse_collect_url("http://c:8090/").unwrap(), "http://c:8090");
        assert!(crate::config::collect::parse_collect_url("https://c").unwrap_err().contains("http://"));
        assert!(crate::config::collect::parse_collect_url("c:8090").is_err());
    }

    #[test]
    fn a_post_to_nothing_gives_up_within_its_bound() {
        // A loopback port that was just free: connections are refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = post(&format!("http://127.0.0.1:{port}/v1/results"), None, "{}", Duration::from_secs(2), &|_| {})
            .unwrap_err();
        assert!(e.contains("gave up after") && e.contains(&port.to_string()), "{e}");
    }
}
