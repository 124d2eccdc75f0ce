//! One scenario split over several herd processes, as the pods of a Kubernetes Indexed Job run
//! it: three `herd run --shards 3` workers (JOB_COMPLETION_INDEX 0..2) starting together with
//! `--start-at`, against one `herd serve`, pushing to a real Pushgateway scraped by a real
//! Prometheus; `herd merge` of their results equals one process running the whole scenario.
//! Also: the same split against nginx + nchan, and `herd merge` refusing what it must refuse.

mod common;

use common::promstack::PromStack;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn merge(args: &[&Path], extra: &[&str]) -> Output {
    let child = Command::new(herd_bin())
        .arg("merge")
        .args(args)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run herd merge");
    output_within(child, Duration::from_secs(60))
}

/// `herd merge FILES --out OUT`, which must succeed; returns the merged JSON and the summary.
fn merge_ok(files: &[PathBuf], out: &Path) -> (Value, String) {
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let o = merge(&refs, &["--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "herd merge failed: {}", String::from_utf8_lossy(&o.stderr));
    (read(out), String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `herd merge` that must fail with exit 64 and a message containing every one of `want`.
fn merge_refused(files: &[&Path], extra: &[&str], want: &[&str]) {
    let o = merge(files, extra);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(64), "herd merge {files:?} should be refused: {err}");
    for w in want {
        assert!(err.contains(w), "{w:?} not in {err:?}");
    }
}

/// The merged histograms, added here independently of herd merge.
fn added_histograms(files: &[PathBuf]) -> herd::measure::stats::Histos {
    let mut sum = herd::measure::stats::Histos::default();
    for f in files {
        let v = read(f);
        let enc: herd::merge::EncodedHistos = serde_json::from_value(v["histograms"].clone()).unwrap();
        sum.add(&herd::merge::decode_histograms(&enc).unwrap());
    }
    sum
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn three_shards_pushing_to_prometheus_merge_to_the_whole_scenario() {
    let srv = ServeProc::start(&[]);
    let stack = PromStack::start();
    stack.wait_for_query("up{job=\"pushgateway\"}", Duration::from_secs(60), |r| {
        r.len() == 1 && r[0]["value"][1] == "1"
    });
    let dir = tempfile::tempdir().unwrap();
    let scenario = ["--url", &srv.url(), "-c", "30", "-k", "3", "--rate", "5", "-d", "3s", "--drain", "5s"];
    let (conversations, members) = (30u64, 3u64);

    // The whole scenario in one process.
    let whole_dir = dir.path().join("whole");
    std::fs::create_dir(&whole_dir).unwrap();
    let (_, whole) = run_herd(&whole_dir, &scenario);
    assert_eq!(u(&whole, "messages.missed"), 0, "{}", whole["messages"]);
    assert!(u(&whole, "messages.sent") > 0);

    // Three workers of an Indexed Job: same flags, the index from the environment.
    let job = "herd_shards";
    let at = unix_now() + 8;
    let at_text = at.to_string();
    let files: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("shard-{i}.json"))).collect();
    let workers: Vec<_> = (0..3)
        .map(|i| {
            Command::new(herd_bin())
                .arg("run")
                .args(scenario)
                .args(["--shards", "3", "--start-at", &at_text, "-o", files[i].to_str().unwrap()])
                .args(["--pushgateway", &stack.pushgateway, "--push-interval", "500ms", "--job", job])
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env_remove("HERD_SHARD")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a worker")
        })
        .collect();
    for (i, w) in workers.into_iter().enumerate() {
        let o = output_within(w, Duration::from_secs(120));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "worker {i} failed: {err}");
        // Every progress line names the shard, and so does the summary.
        assert!(err.lines().any(|l| l.starts_with(&format!("shard {i}/3 ["))), "{err}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(&format!("shard        {i}/3: 10 of the 30 conversations")), "{out}");
        let v = read(&files[i]);
        assert_eq!(v["scenario"]["shard"], format!("{i}/3"));
        assert_eq!(u(&v, "connections.established"), conversations / 3 * members, "shard {i}");
        assert_eq!(f(&v, "start.start_at_unix_s"), at as f64);
        // On time it waited and said so; late, its results say so.
        if f(&v, "start.late_s") > 0.0 {
            assert!(v["notes"].to_string().contains("after --start-at"), "{}", v["notes"]);
        } else {
            assert!(err.contains("waiting for --start-at"), "{err}");
        }
        assert_eq!(v["push"]["final_push_ok"], true, "{}", v["push"]);
        assert!(v["push"]["url"].as_str().unwrap().ends_with(&format!("/shard/{i}")), "{}", v["push"]);
    }

    // The merge equals the whole scenario, exactly.
    let (merged, summary) = merge_ok(&files, &dir.path().join("merged.json"));
    for k in ["sent", "expected", "delivered", "duplicated", "reordered"] {
        assert_eq!(merged["messages"][k], whole["messages"][k], "messages.{k}: {summary}");
    }
    assert_eq!(u(&merged, "messages.missed"), 0);
    assert_eq!(u(&merged, "messages.delivered"), u(&whole, "messages.sent") * (members - 1));
    assert_eq!(u(&merged, "connections.established"), conversations * members);
    assert_eq!(merged["scenario"]["shard"], Value::Null);
    assert_eq!(merged["scenario"]["conversations"], conversations);
    // Merged percentiles come from the added histograms, not from the shards' percentiles.
    let sum = added_histograms(&files);
    assert_eq!(u(&merged, "latency.corrected.count"), sum.corrected.len());
    assert_eq!(sum.corrected.len(), u(&merged, "messages.delivered"));
    let p99 = sum.corrected.value_at_quantile(0.99) as f64 / 1000.0;
    assert_eq!(f(&merged, "latency.corrected.p99_ms"), p99);
    assert_eq!(u(&merged, "connect.count"), sum.connect.len());
    let enc: herd::merge::EncodedHistos = serde_json::from_value(merged["histograms"].clone()).unwrap();
    assert_eq!(herd::merge::decode_histograms(&enc).unwrap().uncorrected, sum.uncorrected);
    // The summary is herd run's table plus one line per shard.
    assert!(summary.contains("messages     sent"), "{summary}");
    for i in 0..3 {
        assert!(summary.contains(&format!("shard {i}/3")), "{summary}");
    }

    // Prometheus: one group per shard; the connections of all shards added up to the whole
    // scenario while they were held; the pushed totals add up to the merged ones.
    let shards = stack.label_values("shard", &format!("herd_run_info{{job=\"{job}\"}}")).unwrap();
    assert_eq!(shards, vec!["0", "1", "2"]);
    let q = format!("max_over_time(sum(herd_connections{{job=\"{job}\"}})[10m:250ms])");
    let r = stack.wait_for_query(&q, Duration::from_secs(60), |r| r.len() == 1 && r[0]["value"][1] != "0");
    assert_eq!(r[0]["value"][1], (conversations * members).to_string(), "{q}");
    let sent = u(&merged, "messages.sent").to_string();
    stack.wait_for_query(&format!("sum(herd_messages_sent_total{{job=\"{job}\"}})"), Duration::from_secs(60), |r| {
        r.len() == 1 && r[0]["value"][1] == sent.as_str()
    });
    let q = format!("sum(herd_delivery_latency_seconds_count{{job=\"{job}\"}})");
    let delivered = u(&merged, "messages.delivered").to_string();
    stack.wait_for_query(&q, Duration::from_secs(60), |r| r.len() == 1 && r[0]["value"][1] == delivered.as_str());

    // What merge refuses, naming the files.
    let [s0, s1, s2] = [&files[0], &files[1], &files[2]].map(|p| p.as_path());
    let s0_name = s0.display().to_string();
    let s1_name = s1.display().to_string();
    merge_refused(&[s0, s1], &[], &["shard(s) 2/3 missing", "--partial"]);
    merge_refused(&[s0, s1, s1, s2], &[], &[&s1_name, "both shard 1/3"]);
    let whole_file = whole_dir.join("results.json");
    merge_refused(&[s0, &whole_file], &[], &[&s0_name, "different shard counts"]);
    let mut other = read(s2);
    other["scenario"]["members"] = Value::from(4);
    let other_file = dir.path().join("other.json");
    std::fs::write(&other_file, other.to_string()).unwrap();
    merge_refused(&[s0, s1, &other_file], &[], &["different scenarios", "scenario.members", "3 and 4"]);
    let not_herd = dir.path().join("not-herd.json");
    std::fs::write(&not_herd, "{\"status\": \"success\"}").unwrap();
    merge_refused(&[s0, &not_herd], &[], &["not-herd.json", "not herd's results"]);
    // --partial merges what is there and says what is missing.
    let (partial, _) = {
        let o = merge(&[s0, s1], &["--partial", "--out", dir.path().join("partial.json").to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (read(&dir.path().join("partial.json")), ())
    };
    assert_eq!(partial["missing_shards"], serde_json::json!(["2/3"]));
    assert_eq!(u(&partial, "messages.sent"), u(&read(s0), "messages.sent") + u(&read(s1), "messages.sent"));
}

#[test]
fn a_scenario_split_three_ways_against_nchan_merges_to_exact_accounting() {
    use common::peers::{assert_exact, herd_ok, n, Peer};
    let nchan = Peer::nchan(&[]);
    let url = nchan.url("/conv/{conv}");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let at = (unix_now() + 5).to_string();
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (url, at) = (url.clone(), at.clone());
                s.spawn(move || {
                    let shard = format!("{i}/3");
                    let args = [
                        "--target",
                        "nchan",
                        "--url",
                        &url,
                        "-c",
                        "12",
                        "-k",
                        "4",
                        "--senders",
                        "2",
                        "--rate",
                        "5",
                        "-d",
                        "2s",
                        "--drain",
                        "3s",
                        "--shard",
                        &shard,
                        "--start-at",
                        &at,
                    ];
                    herd_ok(d.path(), &args)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a shard's thread")).collect()
    });
    for v in &results {
        assert_exact(v);
    }
    let files: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("results.json")).collect();
    let out = dirs[0].path().join("merged.json");
    let (v, summary) = merge_ok(&files, &out);
    assert_exact(&v);
    let sent = n(&v, "messages.sent");
    assert_eq!(sent, 12 * 2 * 5 * 2, "{summary}");
    assert_eq!(n(&v, "messages.delivered"), sent * 3);
    assert_eq!(n(&v, "messages.echoed"), sent, "nchan echoes each message to its sender once");
    assert_eq!(n(&v, "connections.established"), 48);
    assert_eq!(common::peers::errors(&v), vec![]);
    let r = nchan.stop();
    assert_eq!(r["stub_status"]["total_published_messages"], serde_json::json!(sent), "{r}");
}

#[test]
fn start_when_holds_every_shard_until_all_are_connected() {
    let srv = ServeProc::start(&[]);
    let stack = PromStack::start();
    let job = "herd_start_when";
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let url = srv.url();
    let start = |i: usize| {
        let shard = format!("{i}/3");
        let args = ["--url", &url, "-c", "15", "-k", "3", "--rate", "5", "-d", "2s", "--drain", "5s"];
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--shard", &shard, "--start-when", "3/3", "--job", job, "--pushgateway", &stack.pushgateway]);
        all.extend(["--push-interval", "500ms"]);
        RunProc::start(dirs[i].path(), &all)
    };
    // Two shards connect and wait: they cannot go on before the third is there.
    let mut early = vec![start(0), start(1)];
    for w in early.iter_mut() {
        let line = w.wait_line("waiting for --start-when", Duration::from_secs(60));
        assert!(line.is_some_and(|l| l.contains("of 3 shards connected")), "{:?}", w.seen);
    }
    early.push(start(2));
    let mut results = vec![];
    for (i, w) in early.into_iter().enumerate() {
        let (status, _, _, v) = w.finish(Duration::from_secs(120));
        assert!(status.success(), "shard {i} failed");
        results.push(v.expect("results written"));
    }
    let last_connected = results.iter().map(|v| f(v, "start.connected_at_unix_s")).fold(0.0, f64::max);
    for (i, v) in results.iter().enumerate() {
        assert_eq!(u(v, "start.start_when"), 3);
        assert_eq!(u(v, "start.shards_ready"), 3, "shard {i}: {}", v["start"]);
        // Nobody sent before the last shard was connected.
        assert!(f(v, "start.sending_at_unix_s") >= last_connected, "shard {i}: {}", v["start"]);
        assert_eq!(v["notes"], serde_json::json!([]), "shard {i}");
    }
    let files: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("results.json")).collect();
    let (merged, summary) = merge_ok(&files, &dirs[0].path().join("merged.json"));
    assert_eq!(u(&merged, "messages.sent"), 15 * 5 * 2, "{summary}");
    assert_eq!(u(&merged, "messages.delivered"), 15 * 5 * 2 * 2);
    assert_eq!(u(&merged, "messages.missed"), 0);
    // The meeting groups are gone; the metrics groups stay.
    let groups = stack.pushgateway_groups();
    let labels: Vec<&Value> = groups["data"].as_array().unwrap().iter().map(|g| &g["labels"]).collect();
    assert_eq!(labels.iter().filter(|l| l["job"] == job).count(), 3, "{labels:?}");
    assert!(labels.iter().all(|l| l["herd_start"].is_null()), "{labels:?}");
}
