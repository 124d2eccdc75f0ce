//! A run's Pushgateway groups (grouping label `run=ID`: its workers' metrics, their
//! `--start-when` ready groups, a crashed worker's frozen last push), deleted once the run is
//! merged so that they neither pile up across runs nor count in the next run's `--start-when`.

use crate::metrics::group_url_with;
use std::time::Duration;

/// The URLs of the groups labelled `run=ID`, from the Pushgateway's `/api/v1/metrics` (pure).
pub fn run_groups(base: &str, api_json: &str, run: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(api_json).map_err(|e| format!("the Pushgateway's group list is not JSON: {e}"))?;
    let groups = v["data"].as_array().ok_or("the Pushgateway's group list has no data")?;
    let mut out = vec![];
    for g in groups {
        let Some(labels) = g["labels"].as_object() else { continue };
        if labels.get("run").and_then(|r| r.as_str()) != Some(run) {
            continue;
        }
        let s = |k: &str| labels.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let mut more: Vec<(String, String)> = labels
            .iter()
            .filter(|(k, _)| *k != "job" && *k != "instance")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect();
        more.sort();
        out.push(group_url_with(base, &s("job"), &s("instance"), &more));
    }
    Ok(out)
}

/// Deletes every group of run `run`; returns how many.
pub fn delete_run(pushgateway: &str, run: &str) -> Result<usize, String> {
    let base = pushgateway.trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build().into();
    let url = format!("{base}/api/v1/metrics");
    let mut resp = agent.get(&url).call().map_err(|e| format!("GET {url}: {e}"))?;
    let text = resp.body_mut().with_config().limit(256 << 20).read_to_string().map_err(|e| e.to_string())?;
    let urls = run_groups(base, &text, run)?;
    for u in &urls {
        agent.delete(u).call().map_err(|e| format!("DELETE {u}: {e}"))?;
    }
    Ok(urls.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_runs_groups_are_picked() {
        let json = r#"{"status":"success","data":[
            {"labels":{"job":"herd","instance":"w-0","shard":"0","run":"r1"}},
            {"labels":{"job":"herd","instance":"w-0","shard":"0","run":"r1","herd_start":"ready"}},
            {"labels":{"job":"herd","instance":"w-1","shard":"1","run":"r0"}},
            {"labels":{"job":"herd","instance":"old","shard":"1"}}]}"#;
        let urls = run_groups("http://pg:9091", json, "r1").unwrap();
        assert_eq!(
            urls,
            [
                "http://pg:9091/metrics/job/herd/instance/w-0/run/r1/shard/0",
                "http://pg:9091/metrics/job/herd/instance/w-0/herd_start/ready/run/r1/shard/0"
            ]
        );
        assert!(run_groups("http://pg:9091", "[", "r1").is_err());
    }
}
