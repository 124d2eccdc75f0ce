//! One run, one identity, against a real Pushgateway on loopback: a crashed worker's "ready"
//! groups of an earlier run (another `--run-id`) do not count in this run's `--start-when`,
//! which then gives up after `--start-when-timeout` with an error naming what was ready; and
//! `herd collect --pushgateway` deletes every group of its run once merged, and no other.

mod common;

use common::collect::CollectProc;
use common::promstack::{agent, PromStack};
use common::*;
use std::process::Command;
use std::time::Duration;

/// PUTs a "ready" group of `run` for `shard`, as a worker of that run would have left it.
fn leftover(stack: &PromStack, run: &str, shard: u32) {
    let url = format!(
        "{}/metrics/job/herd/instance/crashed-{shard}/shard/{shard}/run/{run}/herd_start/ready",
        stack.pushgateway
    );
    let r = agent().put(&url).send("# TYPE herd_start_ready gauge\nherd_start_ready 1\n").unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// The runs of the groups on the Pushgateway (`-` for a group without one).
fn group_runs(stack: &PromStack) -> Vec<String> {
    let g = stack.pushgateway_groups();
    let mut runs: Vec<String> =
        g["data"].as_array().unwrap().iter().map(|x| x["labels"]["run"].as_str().unwrap_or("-").to_string()).collect();
    runs.sort();
    runs
}

#[test]
fn an_earlier_runs_leftovers_never_count_and_start_when_gives_up_with_why() {
    let stack = PromStack::start();
    // Crashed workers of run "old" left both shards "ready".
    leftover(&stack, "old", 0);
    leftover(&stack, "old", 1);
    let o = Command::new(herd_bin())
        .args(["run", "-c", "4", "-k", "2", "-d", "1s", "--drain", "0s", "--threads", "1", "-q"])
        .args(["--shard", "0/2", "--start-when", "2/2", "--start-when-timeout", "2s"])
        .args(["--pushgateway", &stack.pushgateway, "--run-id", "new"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("only 1 of the 2 shard(s)") && stderr.contains("ready: [0]"), "{stderr}");
    assert!(stderr.contains("--start-when-timeout"), "{stderr}");
    // Its ready group went with it (its metrics group stays for the dashboards); the old run's
    // stay until that run's collector deletes them.
    assert_eq!(group_runs(&stack), ["new", "old", "old"]);
    let ready_new = stack.pushgateway_groups()["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["labels"]["run"] == "new" && g["labels"]["herd_start"] == "ready")
        .count();
    assert_eq!(ready_new, 0, "the ready group of the worker that gave up is left");
}

#[test]
fn the_collector_deletes_its_runs_groups_once_merged() {
    let stack = PromStack::start();
    leftover(&stack, "old", 1);
    leftover(&stack, "other", 0);
    let dir = tempfile::tempdir().unwrap();
    let c = CollectProc::start(
        &dir.path().join("c"),
        1,
        &["--run-id", "old", "--pushgateway", &stack.pushgateway, "--keep-groups", "0s", "--exit-after", "2s"],
    );
    let o = Command::new(herd_bin())
        .args(["run", "-c", "2", "-k", "2", "-d", "1s", "--drain", "1s", "--threads", "1", "-q"])
        .args(["--pushgateway", &stack.pushgateway, "--run-id", "old", "--collect", &c.url()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (status, said) = c.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{said}");
    // The worker's metrics group and the leftover of run "old" went; run "other" stays.
    assert!(said.contains("deleted 2 Pushgateway group(s) of run old"), "{said}");
    assert_eq!(group_runs(&stack), ["other"]);
}
