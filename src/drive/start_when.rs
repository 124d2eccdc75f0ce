//! `--start-when K/N`: start sending once K of the N shards are connected, with the Pushgateway
//! as the meeting point, for clusters whose pods start minutes apart (where no `--start-at` fits).
//!
//! Once connected, a worker PUTs a small group of its own next to its metrics group: the same
//! grouping labels plus `herd_start="ready"` (so the two never replace each other). It then reads
//! the Pushgateway's group list (`/api/v1/metrics`) every half second and counts the distinct
//! shards of its job (and of its run, `--run-id`) that are ready. The ready group is deleted when
//! the run ends, so that the next run of the same job does not count it; a worker that crashed
//! leaves its group behind, which a run with another `--run-id` never counts (and `herd collect`
//! deletes the run's groups once it merged). Workers start within about one poll of each other;
//! a worker that waited `--start-when-timeout` in vain gives up with an error naming the shards
//! that were ready.

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

/// Where the shards of one run meet: the Pushgateway, their job and their run id (`None`: the
/// groups without a `run` label).
#[derive(Clone, Copy, Debug)]
pub struct Group<'a> {
    pub pushgateway: &'a str,
    pub job: &'a str,
    pub run: Option<&'a str>,
}

/// The distinct shards of `job` and `run` that are ready, from the Pushgateway's
/// `/api/v1/metrics`.
pub fn ready_shards(api_json: &str, job: &str, run: Option<&str>) -> Result<BTreeSet<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(api_json).map_err(|e| format!("the Pushgateway's group list is not JSON: {e}"))?;
    let groups = v["data"].as_array().ok_or("the Pushgateway's group list has no data")?;
    Ok(groups
        .iter()
        .filter_map(|g| {
            let l = &g["labels"];
            (l["job"] == job && l["herd_start"] == "ready" && l["run"].as_str() == run)
                .then(|| l["shard"].as_str().map(String::from))?
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

fn ready(g: &Group) -> Result<BTreeSet<String>, String> {
    let url = format!("{}/api/v1/metrics", g.pushgateway.trim_end_matches('/'));
    let mut resp = agent().get(&url).call().map_err(|e| format!("GET {url}: {e}"))?;
    let text = resp.body_mut().with_config().limit(64 << 20).read_to_string().map_err(|e| e.to_string())?;
    ready_shards(&text, g.job, g.run)
}

/// The error of a wait that ran out of time.
pub fn gave_up(k: u32, ready: &BTreeSet<String>, timeout: Duration) -> String {
    let list: Vec<&str> = ready.iter().map(String::as_str).collect();
    format!(
        "--start-when: only {} of the {k} shard(s) needed were connected after {timeout:?} (--start-when-timeout); \
         ready: [{}]. The others are not running: see `kubectl get pods` (Pending, image pull) or their logs",
        ready.len(),
        list.join(", ")
    )
}

/// Announces this shard, then waits until `k` shards of the group's job and run are ready (or a
/// signal), saying once per second how many are. Returns how many were ready when the wait
/// ended; `Err` after `timeout` without `k`.
pub fn wait(
    g: &Group,
    ready_group: &str,
    k: u32,
    timeout: Duration,
    signals: &Signals,
    say: impl Fn(String),
) -> Result<usize, String> {
    let mut announced = false;
    let mut last_say = None::<Instant>;
    let mut seen = BTreeSet::new();
    let t0 = Instant::now();
    while signals.count() == 0 {
        if t0.elapsed() >= timeout {
            return Err(gave_up(k, &seen, timeout));
        }
        if !announced {
            match announce(ready_group) {
                Ok(()) => announced = true,
                Err(e) => say(format!("--start-when: {e}; trying again")),
            }
        }
        match ready(g) {
            Ok(n) => seen = n,
            Err(e) => say(format!("--start-when: {e}; trying again")),
        }
        if announced && seen.len() >= k as usize {
            break;
        }
        if last_say.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            say(format!("waiting for --start-when: {} of {k} shards connected", seen.len()));
            last_say = Some(Instant::now());
        }
        std::thread::sleep(POLL);
    }
    Ok(seen.len())
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
            {"labels":{"job":"other","instance":"c","shard":"2","herd_start":"ready"}},
            {"labels":{"job":"herd","instance":"d","shard":"2","herd_start":"ready","run":"r1"}},
            {"labels":{"job":"herd","instance":"e","shard":"0","herd_start":"ready","run":"r2"}}]}"#;
        let r = ready_shards(json, "herd", None).unwrap();
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec!["0", "1"]);
        // A run id counts only its own run's shards: an earlier run's leftovers never join.
        assert_eq!(ready_shards(json, "herd", Some("r1")).unwrap().into_iter().collect::<Vec<_>>(), vec!["2"]);
        assert_eq!(ready_shards(json, "herd", Some("r3")).unwrap().len(), 0);
        assert!(ready_shards("nope", "herd", None).is_err());
        let e = gave_up(3, &["0".to_string(), "2".to_string()].into(), Duration::from_secs(600));
        assert!(e.contains("only 2 of the 3") && e.contains("[0, 2]") && e.contains("--start-when-timeout"), "{e}");
        assert_eq!(
            ready_url("http://pg:9091/metrics/job/herd/instance/a/shard/0"),
            "http://pg:9091/metrics/job/herd/instance/a/shard/0/herd_start/ready"
        );
    }
}
