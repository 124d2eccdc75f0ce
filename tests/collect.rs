//! The results path of a distributed run with every role a process on loopback: `herd collect`
//! and four `herd run --collect` workers (shards of one scenario, results over 200 KB each from
//! 800 stages). One worker is killed mid-run (SIGKILL: nothing of it arrives), one starts late,
//! after the collector was asked to merge. The merge is exact for the shards that finished (it
//! equals `herd merge` of the workers' own results files) and names the missing shard and why.

mod common;

use common::collect::CollectProc;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

/// POSTs to the collector with an empty body; returns the status.
fn post(c: &CollectProc, path: &str) -> u16 {
    let o = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!("{}{path}", c.url()))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&o.stdout).parse().unwrap_or(0)
}

const SHARDS: u32 = 4;

/// A worker's flags: shard `i` of 4, 800 short stages (results of ~400 KB), one executor.
fn worker_args(collect: &str, i: u32) -> Vec<String> {
    let mut a: Vec<String> = ["-c", "8", "-k", "2", "--threads", "1", "--drain", "2s", "--run-id", "run-a"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(["--shard".into(), format!("{i}/{SHARDS}"), "--collect".into(), format!("http://{collect}")]);
    for k in 0..800 {
        a.extend(["--stage".into(), format!("4ms::{}/s", 50 + k % 3)]);
    }
    a
}

/// A worker in the background, its stdout and stderr in files (a summary of 800 stages is
/// larger than a pipe holds).
struct Worker {
    child: Child,
    dir: std::path::PathBuf,
}

impl Worker {
    fn start(dir: &Path, collect: &str, i: u32) -> Worker {
        let d = dir.join(format!("w{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let child = Command::new(herd_bin())
            .arg("run")
            .args(worker_args(collect, i))
            .args(["--out", d.join("results.json").to_str().unwrap()])
            .stdout(std::fs::File::create(d.join("stdout")).unwrap())
            .stderr(std::fs::File::create(d.join("stderr")).unwrap())
            .spawn()
            .expect("start herd run");
        Worker { child, dir: d }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Waits for it to end; returns its exit status and its own results file.
    fn finish(mut self) -> (std::process::ExitStatus, Option<Value>) {
        let mut status = None;
        wait_for("a worker to end", HERD_TIMEOUT, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let v = std::fs::read_to_string(self.dir.join("results.json")).ok().map(|t| serde_json::from_str(&t).unwrap());
        (status.unwrap(), v)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

fn merged(c: &CollectProc) -> Option<Value> {
    match http_get(&c.addr, "/merged.json") {
        (200, body) => Some(serde_json::from_str(&body).expect("merged JSON")),
        _ => None,
    }
}

#[test]
fn collect_merges_the_shards_that_finished_and_names_the_one_that_did_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("collected");
    let c = CollectProc::start(&store, SHARDS, &["--run-id", "run-a", "--deadline", "10m"]);
    assert_eq!(http_get(&c.addr, "/merged.json").0, 503, "nothing merged before any shard");

    // Shards 0, 1 and 2 start together; 2 is killed once it is sending.
    let w0 = Worker::start(dir.path(), &c.addr, 0);
    let w1 = Worker::start(dir.path(), &c.addr, 1);
    let w2 = Worker::start(dir.path(), &c.addr, 2);
    // A progress line of the send phase that names a stage: it is sending.
    wait_for("shard 2 to send", Duration::from_secs(60), || w2.stderr().contains("| stage "));
    wait_for("shard 2's start notice", Duration::from_secs(20), || {
        !c.status()["shard_states"][2]["started_at_unix_s"].is_null()
    });
    signal(&w2.child, libc::SIGKILL);
    let (st2, _) = w2.finish();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st2), Some(libc::SIGKILL));

    let mut outs = vec![];
    for w in [w0, w1] {
        let (st, v) = w.finish();
        assert!(st.success(), "a worker failed: {st}");
        outs.push(v.expect("the worker's own results file"));
    }
    // A wrong run's results are refused, with why.
    let foreign = store.join("shard-0-of-4.json");
    let o = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-H", "X-Herd-Run: run-b", "--data-binary"])
        .arg(format!("@{}", foreign.display()))
        .arg(format!("http://{}/v1/results", c.addr))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.ends_with("409") && text.contains("run-b"), "{text}");

    // Asked to merge before the deadline: 0 and 1 are in, 2 started and went silent, 3 never
    // started.
    assert_eq!(post(&c, "/v1/merge"), 202);
    let mut first = None;
    wait_for("the first merge", Duration::from_secs(20), || {
        first = merged(&c);
        first.is_some()
    });
    let first = first.unwrap();
    assert_eq!(first["missing_shards"], serde_json::json!(["2/4", "3/4"]));
    let notes = first["notes"].to_string();
    assert!(notes.contains("shard 2/4 missing: its worker") && notes.contains("started"), "{notes}");
    assert!(notes.contains("shard 3/4 missing: never heard from"), "{notes}");

    // The late worker: its results arrive after the merge, and the collector merges again.
    let w3 = Worker::start(dir.path(), &c.addr, 3);
    let (st, v) = w3.finish();
    assert!(st.success(), "the late worker failed: {st}");
    outs.push(v.unwrap());
    let mut last = None;
    wait_for("the merge with the late shard", Duration::from_secs(20), || {
        last = merged(&c).filter(|m| m["missing_shards"] == serde_json::json!(["2/4"]));
        last.is_some()
    });
    let last = last.unwrap();
    let why = &last["collect"]["shards"][2]["why_missing"];
    assert!(why.as_str().unwrap().contains("killed or crashed mid-run"), "{why}");

    // Results over 200 KB went through whole.
    for i in [0, 1, 3] {
        let len = std::fs::metadata(store.join(format!("shard-{i}-of-4.json"))).unwrap().len();
        assert!(len > 200_000, "shard {i}'s results are only {len} bytes");
    }
    // Exact: the counts add up over the shards that finished, and the merge equals `herd merge`
    // of the workers' own results files.
    for key in ["sent", "delivered", "expected"] {
        let sum: u64 = outs.iter().map(|v| u(v, &format!("messages.{key}"))).sum();
        assert_eq!(u(&last, &format!("messages.{key}")), sum, "messages.{key}");
    }
    assert!(u(&last, "messages.delivered") > 0);
    let files: Vec<String> =
        [0, 1, 3].iter().map(|i| dir.path().join(format!("w{i}/results.json")).display().to_string()).collect();
    let by_hand = dir.path().join("by-hand.json");
    let o = Command::new(herd_bin())
        .arg("merge")
        .args(&files)
        .args(["--partial", "--out", by_hand.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hand: Value = serde_json::from_str(&std::fs::read_to_string(&by_hand).unwrap()).unwrap();
    for key in ["messages", "latency", "connections", "histograms", "missing_shards"] {
        assert_eq!(last[key], hand[key], "{key} differs from herd merge's");
    }
    // The HTML report of the merge is served and written.
    let (code, html) = http_get(&c.addr, "/report.html");
    assert_eq!(code, 200);
    assert!(html.contains("<svg") && html.contains("shard 2/4 missing"), "report without the merge");
    assert!(store.join("report.html").exists() && store.join("merged.json").exists());
}

#[test]
fn a_worker_that_fails_says_why_and_the_collector_merges_when_every_shard_settled() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("collected");
    let c = CollectProc::start(&store, 2, &["--deadline", "10m", "--exit-after", "0s"]);
    let url = format!("http://{}", c.addr);
    // Shard 1 cannot run: its target refuses connections (a closed loopback port), so it ends
    // with exit 69 after posting its results, and reports that error too.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o1 = Command::new(herd_bin())
        .args(["run", "-c", "2", "-k", "2", "-d", "1s", "--drain", "0s", "--threads", "1", "-q"])
        .args(["--connect-timeout", "1s", "--shard", "1/2", "--collect", &url])
        .arg(format!("--url=ws://127.0.0.1:{closed}/conv/{{conv}}"))
        .output()
        .unwrap();
    assert_eq!(o1.status.code(), Some(69), "{}", String::from_utf8_lossy(&o1.stderr));
    // Shard 0 ends before it runs: a bad flag value (exit 64), reported to the collector.
    let o0 = Command::new(herd_bin())
        .args(["run", "-c", "2", "--shard", "0/2", "--members", "1", "--collect", &url])
        .output()
        .unwrap();
    assert_eq!(o0.status.code(), Some(64));
    // Both shards settled: the collector merges (shard 1's results) and exits.
    let (status, said) = c.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "herd collect exited {status}: {said}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(store.join("merged.json")).unwrap()).unwrap();
    assert_eq!(m["missing_shards"], serde_json::json!(["0/2"]));
    let notes = m["notes"].to_string();
    assert!(notes.contains("shard 0/2 missing: its worker failed: exit 64") && notes.contains("--members"), "{notes}");
    assert!(notes.contains("shard 1/2: its worker ended with an error: exit 69"), "{notes}");
    assert_eq!(m["collect"]["merged_because"], "every shard settled");
}
