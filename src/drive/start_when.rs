//! `--start-when K/N`: start sending once K of the N shards are connected, with the Pushgateway
//! as the meeting point, for clusters whose pods start minutes apart (where no `--start-at` fits).
//!
//! Once connected, a worker PUTs a small group of its own next to its metrics group: the same
//! grouping labels plus `herd_start="ready"` (so the two never replace each other). It then reads
//! the Pushgateway's group list (`/api/v1/metrics`) every half second and counts the distinct
//! shards of its job that are ready. The ready group is deleted when the run ends, so that the
//! next run of the same job does not count it (a worker that crashed leaves its group behind:
//! delete it, or use a new `--job`). Workers start within about one poll of each other.

use crate::runtime::signal::Signals;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often the group list is read.
pub const POLL: Duration = Duration::from_millis(500);

/// `K/N` or `K`: start when K shards are connected (N, if given, must be the shard count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartWhen {
    pub ready: u32,
    pub of: Option<u32>,
}

pub fn parse_start_when(s: &str) -> Result<StartWhen, String> {
    let (k, n) = match s.trim().split_once('/') {
        Some((k, n)) => (k, Some(n)),
        None => (s.trim(), None),
    };
    let ready: u32 = k.trim().parse().map_err(|_| format!("{s:?} is not K/N (e.g. 3/3) or K"))?;
    let of = match n {
        Some(n) => Some(n.trim().parse::<u32>().map_err(|_| format!("{s:?} is not K/N (e.g. 3/3) or K"))?),
        None => None,
    };
    if ready == 0 || of.is_some_and(|n| ready > n) {
        return Err(format!("{s:?}: K must be between 1 and N"));
    }
    Ok(StartWhen { ready, of })
}

/// Checks `--start-when` against the run's shard count; returns K.
pub fn check(w: StartWhen, shards: Option<u32>, pushgateway: bool) -> Result<u32, String> {
    let n = shards.ok_or("--start-when: needs --shard or --shards (it counts the shards that are connected)")?;
    if !pushgateway {
        return Err("--start-when: needs --pushgateway (the workers meet there)".into());
    }
    if w.of.is_some_and(|of| of != n) || w.ready > n {
        return Err(format!("--start-when: {}/{} does not fit {n} shards", w.ready, w.of.unwrap_or(w.ready)));
    }
    Ok(w.ready)
}

/// The ready group's URL: the metrics group's URL plus `herd_start="ready"`.
pub fn ready_url(metrics_group_url: &str) -> String {
    format!("{}/herd_start/ready", metrics_group_url.trim_end_matches('/'))
}

/// The distinct shards of `job` that are ready, from the Pushgateway's `/api/v1/metrics`.
pub fn ready_shards(api_json: &str, job: &str) -> Result<BTreeSet<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(api_json).map_err(|e| format!("the Pushgateway's group list is not JSON: {e}"))?;
    let groups = v["data"].as_array().ok_or("the Pushgateway's group list has no data")?;
    Ok(groups
        .iter()
        .filter_map(|g| {
            let l = &g["labels"];
            (l["job"] == job && l["herd_start"] == "ready").then(|| l["shard"].as_str().map(String::from))?
        })
        .collect())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(true)
        .user_agent(concat!("herd/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Says this shard is connected.
pub fn announce(url: &str) -> Result<(), String> {
    agent()
        .put(url)
        .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .send("# TYPE herd_start_ready gauge\nherd_start_ready 1\n")
        .map(|_| ())
        .map_err(|e| format!("PUT {url}: {e}"))
}

/// Removes this shard's ready group (at the end of the run).
pub fn withdraw(url: &str) -> Result<(), String> {
    agent().delete(url).call().map(|_| ()).map_err(|e| format!("DELETE {url}: {e}"))
}

fn count(pushgateway: &str, job: &str) -> Result<usize, String> {
    let url = format!("{}/api/v1/metrics", pushgateway.trim_end_matches('/'));
    let mut resp = agent().get(&url).call().map_err(|e| format!("GET {url}: {e}"))?;
    let text = resp.body_mut().with_config().limit(64 << 20).read_to_string().map_err(|e| e.to_string())?;
    Ok(ready_shards(&text, job)?.len())
}

/// Announces this shard, then waits until `k` shards of `job` are ready (or a signal), saying
/// once per second how many are. Returns how many were ready when the wait ended.
pub fn wait(pushgateway: &str, job: &str, ready_group: &str, k: u32, signals: &Signals, say: impl Fn(String)) -> usize {
    let mut announced = false;
    let mut last_say = None::<Instant>;
    let mut seen = 0;
    while signals.count() == 0 {
        if !announced {
            match announce(ready_group) {
                Ok(()) => announced = true,
                Err(e) => say(format!("--start-when: {e}; trying again")),
            }
        }
        match count(pushgateway, job) {
            Ok(n) => seen = n,
            Err(e) => say(format!("--start-when: {e}; trying again")),
        }
        if announced && seen >= k as usize {
            break;
        }
        if last_say.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            say(format!("waiting for --start-when: {seen} of {k} shards connected"));
            last_say = Some(Instant::now());
        }
        std::thread::sleep(POLL);
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_when_parses_and_fits_the_shards() {
        assert_eq!(parse_start_when("3/3").unwrap(), StartWhen { ready: 3, of: Some(3) });
        assert_eq!(parse_start_when("2").unwrap(), StartWhen { ready: 2, of: None });
        for bad in ["0/3", "4/3", "x", "1/y", ""] {
            assert!(parse_start_when(bad).is_err(), "{bad}");
        }
        let w = parse_start_when("3/3").unwrap();
        assert_eq!(check(w, Some(3), true), Ok(3));
        assert!(check(w, Some(4), true).unwrap_err().contains("does not fit 4 shards"));
        assert!(check(w, None, true).unwrap_err().contains("--shard"));
        assert!(check(w, Some(3), false).unwrap_err().contains("--pushgateway"));
        assert!(check(parse_start_when("5").unwrap(), Some(3), true).is_err());
    }

    #[test]
    fn ready_shards_are_counted_per_job_once_each() {
        let json = r#"{"status":"success","data":[
            {"labels":{"job":"herd","instance":"a","shard":"0","herd_start":"ready"}},
            {"labels":{"job":"herd","instance":"a","shard":"0"}},
            {"labels":{"job":"herd","instance":"b","shard":"1","herd_start":"ready"}},
            {"labels":{"job":"herd","instance":"b2","shard":"1","herd_start":"ready"}},
            {"labels":{"job":"other","instance":"c","shard":"2","herd_start":"ready"}}]}"#;
        let r = ready_shards(json, "herd").unwrap();
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec!["0", "1"]);
        assert!(ready_shards("nope", "herd").is_err());
        assert_eq!(
            ready_url("http://pg:9091/metrics/job/herd/instance/a/shard/0"),
            "http://pg:9091/metrics/job/herd/instance/a/shard/0/herd_start/ready"
        );
    }
}
