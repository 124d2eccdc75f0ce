//! The collector's store without sockets: what it takes and refuses, when a run is settled, why a
//! shard is missing, the merge, and carrying on from the files of an earlier collector.

use super::*;
use crate::measure::stats::Histos;
use crate::merge::encode_histograms;

/// A results document of shard `shard` ("I/N") with `sent` messages, each delivered twice.
fn results(shard: &str, sent: u64, outcome: &str) -> String {
    let mut h = Histos::default();
    for us in [800, 900, 1200] {
        h.corrected.record(us).unwrap();
        h.uncorrected.record(us).unwrap();
    }
    h.connect.record(500).unwrap();
    json!({
        "herd_version": "0.1.0", "run_id": format!("r{shard}"), "started_at_unix_s": 100.0,
        "scenario": {"conversations": 9, "members": 3, "senders": 1, "rate": 1.0, "size": 128,
                     "duration": 2.0, "drain": 1.0, "url": null, "seed": 7, "shard": shard},
        "target": "ws://x", "embedded_server": false, "outcome": outcome,
        "connections": {"attempted": 9, "established": 9, "failed": 0, "closed": 9, "peak_open": 9},
        "messages": {"sent": sent, "expected": 2 * sent, "delivered": 2 * sent},
        "errors": {}, "duration_s": 5.0, "phases": {}, "process": {}, "notes": [],
        "histograms": encode_histograms(&h),
    })
    .to_string()
}

#[test]
fn results_are_taken_once_and_refused_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), 3, Some("run-a".into())).unwrap();
    let body = results("1/3", 10, "completed");
    assert_eq!(s.results(&body, Some("run-a")), Ok("shard-1-of-3.json".into()));
    assert_eq!(std::fs::read_to_string(dir.path().join("shard-1-of-3.json")).unwrap(), body);
    // A retry whose answer was lost: the same body is fine; other results for the shard are not.
    assert_eq!(s.results(&body, Some("run-a")), Ok("shard-1-of-3.json".into()));
    let Refusal(code, why) = s.results(&results("1/3", 11, "completed"), Some("run-a")).unwrap_err();
    assert!(code == 409 && why.contains("already taken"), "{why}");
    let Refusal(code, why) = s.results(&results("0/3", 10, "completed"), Some("run-b")).unwrap_err();
    assert!(code == 409 && why.contains("run-b") && why.contains("run-a"), "{why}");
    assert_eq!(s.results(&results("0/3", 10, "completed"), None).unwrap_err().0, 409);
    let Refusal(code, why) = s.results(&results("0/4", 10, "completed"), Some("run-a")).unwrap_err();
    assert!(code == 409 && why.contains("takes 3 shards"), "{why}");
    let Refusal(code, why) = s.results("{\"not\": 1}", Some("run-a")).unwrap_err();
    assert!(code == 400 && why.contains("not herd's results"), "{why}");
    assert_eq!(s.started(7, "w", Some("run-a"), 1.0).unwrap_err().0, 400);
}

#[test]
fn a_shard_settles_with_results_or_a_failure_and_the_merge_says_why_the_others_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), 3, None).unwrap();
    assert!(s.merge("asked").unwrap_err().to_string().contains("never heard from"));
    s.results(&results("0/3", 10, "completed"), None).unwrap();
    s.started(2, "herd-abc-2", None, 1_000.0).unwrap();
    assert!(!s.settled(), "shard 1 unheard of and shard 2 only started");
    s.failed(1, "exit 64: --members: must be at least 2", None).unwrap();
    assert!(!s.settled(), "shard 2 started but has neither results nor a failure");
    assert!(s.slots[1].settled() && !s.slots[2].settled());

    let (doc, summary) = s.merge("the --deadline passed").unwrap();
    assert_eq!(doc["missing_shards"], json!(["1/3", "2/3"]));
    assert_eq!(doc["messages"]["sent"], 10);
    let notes = doc["notes"].to_string();
    assert!(notes.contains("shard 1/3 missing: its worker failed: exit 64: --members"), "{notes}");
    assert!(notes.contains("shard 2/3 missing: its worker herd-abc-2 started"), "{notes}");
    assert!(summary.contains("shard 2/3 missing"), "{summary}");
    assert_eq!(doc["collect"]["merged_because"], "the --deadline passed");
    assert_eq!(doc["collect"]["shards"][0]["outcome"], "completed");

    // Shard 2's results, then: every shard settled, and the merge adds them.
    s.results(&results("2/3", 5, "interrupted"), None).unwrap();
    assert!(s.settled());
    let (doc, _) = s.merge("every shard settled").unwrap();
    assert_eq!(doc["missing_shards"], json!(["1/3"]));
    assert_eq!(doc["messages"]["sent"], 15);
    s.write_merged(&doc).unwrap();
    assert!(dir.path().join("merged.json").exists() && dir.path().join("report.html").exists());
}

#[test]
fn a_restarted_collector_carries_on_from_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), 2, None).unwrap();
    s.results(&results("1/2", 4, "completed"), None).unwrap();
    drop(s);
    let s = Store::open(dir.path(), 2, None).unwrap();
    assert_eq!(s.slots[1].results.as_deref(), Some("shard-1-of-2.json"));
    assert_eq!(s.slots[1].outcome.as_deref(), Some("completed"));
    assert!(s.slots[0].results.is_none());
    // A damaged file is an error naming it, not a silent gap.
    std::fs::write(dir.path().join("shard-0-of-2.json"), "{").unwrap();
    let e = Store::open(dir.path(), 2, None).err().expect("a damaged file is refused");
    assert!(e.to_string().contains("shard-0-of-2.json"), "{e}");
}
