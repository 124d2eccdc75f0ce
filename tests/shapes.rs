//! Load shapes end to end against real servers: stages (rate and connection ramps) with exact
//! per-stage figures, churn, a reconnect storm, a server restart brought back by
//! `--reconnect`, the knee against one server executor, and stages with churn through nginx+nchan.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

fn stage(v: &Value, i: usize) -> &Value {
    &v["shape"]["stages"][i]
}

fn sn(v: &Value, i: usize, key: &str) -> u64 {
    stage(v, i)[key].as_u64().unwrap_or_else(|| panic!("stage {i} {key} in {}", v["shape"]))
}

/// Every message of every stage was delivered exactly once to every member it was owed to: every
/// other member, except in the first `opening` stages, which open conversations (a connection
/// ramp). There a sender starts once it is connected, and what it sends before the rest of its
/// conversation has connected is owed only to the members connected then.
fn assert_stages_exact(v: &Value, members: u64, opening: usize) {
    let stages = v["shape"]["stages"].as_array().expect("stages in the results");
    let (mut sent, mut delivered) = (0, 0);
    for (i, _) in stages.iter().enumerate() {
        let all = sn(v, i, "sent") * (members - 1);
        if i < opening {
            assert!(sn(v, i, "expected") <= all, "stage {i}: {}", stage(v, i));
        } else {
            assert_eq!(sn(v, i, "expected"), all, "stage {i}: {}", stage(v, i));
        }
        assert_eq!(sn(v, i, "delivered"), sn(v, i, "expected"), "stage {i}: {}", stage(v, i));
        assert_eq!((sn(v, i, "missed"), sn(v, i, "duplicated")), (0, 0), "stage {i}");
        sent += sn(v, i, "sent");
        delivered += sn(v, i, "delivered");
    }
    assert_eq!(sent, u(v, "messages.sent"), "the stages add up to the run");
    assert_eq!(delivered, u(v, "messages.delivered"));
    assert_eq!(u(v, "messages.missed"), 0);
}

#[test]
fn rate_stages_count_exactly_and_carry_the_injected_delay() {
    let srv = ServeProc::start(&["--delay", "20ms", "--threads", "1"]);
    let dir = tempfile::tempdir().unwrap();
    // 10 senders: hold 5/s for 2 s (10 each), ramp 5 -> 10/s over 2 s (15 each), hold 10/s for
    // 1 s (10 each). Every phase gives these counts exactly.
    let (_, v) = run_herd(
        dir.path(),
        &[
            "--url",
            &srv.url(),
            "-c",
            "10",
            "-k",
            "3",
            "--stage",
            "0s::5",
            "--stage",
            "2s::5",
            "--stage",
            "2s::10",
            "--stage",
            "1s::10",
            "--seed",
            "7",
        ],
    );
    assert_stages_exact(&v, 3, 0);
    let sent: Vec<u64> = (0..4).map(|i| sn(&v, i, "sent")).collect();
    assert_eq!(sent, vec![0, 100, 150, 100]);
    assert_eq!(v["scenario"]["duration"], 5.0);
    for i in 1..4 {
        let l = &stage(&v, i)["latency"]["uncorrected"];
        let p50 = l["p50_ms"].as_f64().unwrap();
        // The server holds every delivery 20 ms: no stage can be faster, and on loopback the
        // rest is well under the delay.
        assert!((20.0..30.0).contains(&p50), "stage {i} p50 {p50} ms");
    }
}

#[test]
fn connection_stages_open_and_close_whole_conversations() {
    let srv = ServeProc::start(&["--threads", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let (out, v) = run_herd(
        dir.path(),
        &[
            "--url",
            &srv.url(),
            "-k",
            "3",
            "--stage",
            "1s:30:5",
            "--stage",
            "1s:30:5",
            "--stage",
            "2s:30:5",
            "--stage",
            "1s:0:5",
        ],
    );
    // -c comes from the stages: 30 connections of 3 members.
    assert_eq!(u(&v, "scenario.conversations"), 10);
    assert_eq!(u(&v, "connections.established"), 30);
    assert_eq!(u(&v, "connections.peak_open"), 30);
    assert_eq!(u(&v, "shape.left"), 30, "the last stage closes every conversation");
    assert_eq!(u(&v, "connections.closed_by_peer"), 0);
    assert_eq!(u(&v, "messages.unexpected"), 0);
    assert_eq!(u(&v, "messages.expected"), u(&v, "messages.delivered"));
    assert_eq!(u(&v, "messages.missed"), 0);
    for i in 0..4 {
        assert!(sn(&v, i, "sent") > 0, "stage {i} sent nothing: {}", stage(&v, i));
        assert_eq!(sn(&v, i, "delivered"), sn(&v, i, "expected"), "stage {i}");
    }
    // The third stage holds all 10 conversations at 5/s for 2 s: exactly 100 messages. (The
    // second lets the last conversations of the ramp connect: a sender starts at its first
    // tick after it is connected, so a stage right after a ramp may have a few less.)
    assert_eq!(sn(&v, 2, "sent"), 100);
    assert_eq!(sn(&v, 2, "expected"), 200);
    assert!(sn(&v, 1, "sent") <= 50);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("stages"), "{summary}");
}

/// The storm closes exactly round(fraction x open), however the connections are spread over
/// executors (16 on two cores here, oversubscribed, each rounding its own share).
#[test]
fn a_storm_closes_exactly_its_fraction_of_the_open_connections() {
    let srv = ServeProc::start(&["--threads", "1"]);
    let dir = tempfile::tempdir().unwrap();
    for (threads, convs, storm, closed) in
        [("16", "100", "1s:0.5:500ms", 200), ("16", "25", "1s:0.3:500ms", 30), ("3", "7", "1s:0.5:500ms", 14)]
    {
        let args = ["--url", &srv.url(), "--threads", threads, "-c", convs, "-k", "4", "--rate", "2", "-d", "2s"];
        let (out, v) = run_herd(dir.path(), &[&args[..], &["--storm", storm, "--seed", "5"]].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let open = 4 * convs.parse::<u64>().unwrap();
        assert_eq!(
            u(&v, "connections.established"),
            open + closed,
            "{storm} over {open} open: {}",
            v["shape"]["outages"]
        );
        assert_eq!(v["shape"]["outages"][0]["connections_lost"].as_u64(), Some(closed), "{storm} over {open} open");
        assert_eq!(u(&v, "shape.rejoined"), closed);
    }
}

#[test]
fn a_storm_closes_its_fraction_and_times_the_way_back() {
    let srv = ServeProc::start(&["--threads", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let (out, v) = run_herd(
        dir.path(),
        &[
            "--url",
            &srv.url(),
            "-c",
            "20",
            "-k",
            "5",
            "--rate",
            "10",
            "-d",
            "4s",
            "--storm",
            "1s:0.5:1s",
            "--seed",
            "3",
        ],
    );
    let lost = u(&v, "shape.left");
    assert_eq!(lost, 50, "round(0.5 x 100 open connections)");
    assert_eq!(u(&v, "shape.rejoined"), lost);
    assert_eq!(u(&v, "connections.established"), 100 + lost);
    let outages = v["shape"]["outages"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "{outages:?}");
    let o = &outages[0];
    assert_eq!(o["connections_lost"].as_u64(), Some(lost));
    assert_eq!(o["unfinished"], false);
    let (start, recovery) = (o["start_s"].as_f64().unwrap(), o["recovery_s"].as_f64().unwrap());
    assert!((1.0..1.5).contains(&start), "the storm starts at 1 s: {start}");
    // Returns are spread evenly over 1 s: the last of ~50 comes back in its second half.
    assert!((0.5..3.0).contains(&recovery), "recovery {recovery}");
    assert!(u(&v, "shape.outage_deliveries") > 0);
    // Nothing owed went missing: members leave once their deliveries arrived, and are not
    // owed what is sent while they are away (counted apart).
    assert_eq!(u(&v, "messages.missed"), 0);
    assert_eq!(u(&v, "messages.expected"), u(&v, "messages.delivered"));
    assert!(u(&v, "messages.missed_while_away") > 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("outage"));
}

#[test]
fn churn_leaves_and_joins_again_with_exact_accounting() {
    let srv = ServeProc::start(&["--threads", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = run_herd(
        dir.path(),
        &["--url", &srv.url(), "-c", "10", "-k", "4", "--rate", "10", "-d", "3s", "--churn", "10"],
    );
    let left = u(&v, "shape.left");
    assert!(left >= 10, "10/s for 3 s: {left}");
    assert_eq!(u(&v, "shape.rejoined"), left, "every member that left came back");
    assert_eq!(u(&v, "connections.established"), 40 + left);
    assert_eq!(u(&v, "messages.missed"), 0);
    assert_eq!(u(&v, "messages.duplicated"), 0);
    assert_eq!(u(&v, "messages.expected"), u(&v, "messages.delivered"));
    // Senders stay: every message went out.
    assert_eq!(u(&v, "messages.sent"), 10 * 10 * 3);
}

#[test]
fn a_server_restart_is_an_outage_that_reconnect_brings_back() {
    let srv = ServeProc::start(&["--threads", "1"]);
    let addr = srv.addr.clone();
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    let mut run = RunProc::start(
        dir.path(),
        &["--url", &url, "-c", "10", "-k", "4", "--rate", "5", "-d", "5s", "--reconnect", "--drain", "3s"],
    );
    assert!(run.wait_sent(Duration::from_secs(30)), "no sending: {:?}", run.seen);
    drop(srv); // SIGTERM: the server closes every connection and exits
    let _again = ServeProc::start_on(&addr, &["--threads", "1"]);
    let (status, _, _, v) = run.finish(Duration::from_secs(60));
    let v = v.expect("results");
    assert!(status.code().is_some(), "{status:?}");
    assert_eq!(u(&v, "connections.closed_by_peer"), 40);
    assert_eq!(u(&v, "connections.reconnected"), 40);
    let outages = v["shape"]["outages"].as_array().expect("outages");
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0]["connections_lost"], 40);
    assert_eq!(outages[0]["unfinished"], false);
    assert!(outages[0]["recovery_s"].as_f64().unwrap() > 0.0);
    assert_eq!(status.code(), Some(0), "a restart the run recovered from is not a failure");
    // Senders came back and caught up: all 10 x 5/s x 5 s went out, each owed to the 3
    // receivers of its conversation unless one was away, and at most the one message per sender
    // in flight when the server stopped is missed.
    let sent = u(&v, "messages.sent");
    assert_eq!(sent, 250, "{}", v["messages"]);
    assert_eq!(u(&v, "messages.expected") + u(&v, "messages.missed_while_away"), 3 * sent, "{}", v["messages"]);
    assert!(u(&v, "messages.missed") <= 3 * 10, "{}", v["messages"]);
    assert_eq!(u(&v, "messages.duplicated"), 0);
}

#[test]
fn the_knee_is_found_against_one_server_executor() {
    let srv = ServeProc::start(&["--threads", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let knee_out = dir.path().join("knee.json");
    let o = Command::new(herd_bin())
        .args(["knee", "--url", &srv.url(), "-c", "20", "-k", "10", "--p99", "20ms"])
        .args(["--from", "8", "--factor", "4", "--steps", "6", "--step-duration", "2s", "-q"])
        .args(["--knee-out", knee_out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = output_within(o, Duration::from_secs(120));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let k: Value = serde_json::from_str(&std::fs::read_to_string(&knee_out).unwrap()).unwrap();
    let curve = k["curve"].as_array().unwrap();
    assert!(curve.len() >= 2, "{curve:?}");
    // 8 messages/s per sender (1,440 deliveries/s) is well within 20 ms on loopback: a knee
    // exists. 8192/s per sender times 20 senders times 9 receivers is far past what one executor
    // delivers within 20 ms: the curve ends past the bound, two steps in a row (or the last).
    let within: Vec<bool> = curve.iter().map(|s| s["within"].as_bool().unwrap()).collect();
    assert!(within[0], "the first step is within the bound: {curve:?}");
    let crossing = (0..within.len())
        .find(|&i| !within[i] && within.get(i + 1).is_none_or(|&next| !next))
        .expect("a confirmed crossing");
    // The confirming step is judged once the step after it has run 2 s: at most two steps more
    // have started.
    assert!(curve.len() <= crossing + 4, "the run stops after a confirmed crossing: {curve:?}");
    let knee_at = (0..crossing).rev().find(|&i| within[i]).unwrap();
    assert_eq!(k["knee_rate_per_sender"], curve[knee_at]["rate_per_sender"], "{curve:?}");
    let outliers: Vec<&Value> = (0..crossing).filter(|&i| !within[i]).map(|i| &curve[i]["rate_per_sender"]).collect();
    assert_eq!(k["outlier_rates_per_sender"].as_array().unwrap().iter().collect::<Vec<_>>(), outliers);
    // Every step that ran to its end sent exactly its rate for 2 s from each of 20 senders.
    for s in &curve[..curve.len() - 1] {
        let rate = s["rate_per_sender"].as_f64().unwrap();
        assert_eq!(s["sent"].as_u64().unwrap(), (rate * 2.0 * 20.0) as u64, "{s}");
        let within = s["p99_ms"].as_f64().unwrap() <= 20.0 && s["missed"] == 0;
        assert_eq!(s["within"], within, "{s}");
    }
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("knee curve"), "{text}");
}

#[test]
fn stages_and_churn_through_nchan_stay_exact() {
    use common::peers::*;
    let nchan = Peer::nchan(&[]);
    let url = nchan.url("/conv/{conv}");
    let dir = tempfile::tempdir().unwrap();
    let v = herd_ok(
        dir.path(),
        &[
            "--target", "nchan", "--url", &url, "-k", "4", "--stage", "1s:40:2", "--stage", "1s:40:2", "--stage",
            "2s:40:5", "--stage", "1s:20:5", "--churn", "5", "--drain", "3s",
        ],
    );
    assert_eq!(u(&v, "scenario.conversations"), 10);
    assert_eq!(u(&v, "messages.missed"), 0, "{}", v["messages"]);
    assert_eq!(u(&v, "messages.duplicated"), 0);
    assert_eq!(u(&v, "messages.expected"), u(&v, "messages.delivered"));
    assert!(u(&v, "shape.left") >= 20, "the last stage closes 5 conversations, and churn: {}", v["shape"]);
    assert_eq!(u(&v, "connections.closed_by_peer"), 0);
    for i in 0..4 {
        assert_eq!(sn(&v, i, "delivered"), sn(&v, i, "expected"), "stage {i}");
    }
    // The third stage holds 10 conversations and ramps 2 -> 5/s over 2 s: 7 per sender.
    assert_eq!(sn(&v, 2, "sent"), 70);
    nchan.stop();
}

#[test]
fn shape_flags_refuse_bad_input_naming_the_flag() {
    let bad = |args: &[&str], needle: &str| {
        let o = Command::new(herd_bin()).arg("run").args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    bad(&["--stage", "10s:100"], "--stage");
    bad(&["--stage", "10s::5", "-d", "5s"], "--stage");
    bad(&["--stage", "1s:100:1", "-c", "10", "-k", "4"], "more than --conversations");
    bad(&["--storm", "30s:0.5", "-d", "5s"], "--storm");
    bad(&["--storm", "1s:2"], "--storm");
    bad(&["--churn", "lots"], "--churn");
    let o = Command::new(herd_bin()).args(["knee", "--p99", "10ms", "--rate", "5"]).output().unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--rate"));
}

#[test]
fn a_storm_through_nchan_stays_exact() {
    use common::peers::*;
    let nchan = Peer::nchan(&[]);
    let url = nchan.url("/conv/{conv}");
    let dir = tempfile::tempdir().unwrap();
    let v = herd_ok(
        dir.path(),
        &[
            "--target",
            "nchan",
            "--url",
            &url,
            "-c",
            "10",
            "-k",
            "4",
            "--rate",
            "5",
            "-d",
            "3s",
            "--storm",
            "1s:0.5:500ms",
            "--drain",
            "3s",
        ],
    );
    let left = u(&v, "shape.left");
    assert!(left > 0 && left < 40, "{}", v["shape"]);
    assert_eq!(u(&v, "shape.rejoined"), left);
    let outages = v["shape"]["outages"].as_array().unwrap();
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0]["connections_lost"].as_u64(), Some(left));
    assert_eq!(outages[0]["unfinished"], false);
    assert_eq!(u(&v, "messages.missed"), 0, "{}", v["messages"]);
    assert_eq!(u(&v, "messages.duplicated"), 0);
    assert_eq!(u(&v, "messages.expected"), u(&v, "messages.delivered"));
    assert_eq!(u(&v, "connections.closed_by_peer"), 0);
    nchan.stop();
}

#[test]
fn shards_of_a_staged_run_merge_per_stage_exactly() {
    let srv = ServeProc::start(&["--threads", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let url = srv.url();
    let mut files = vec![];
    let mut shards = vec![];
    for i in 0..2 {
        let sub = dir.path().join(format!("s{i}"));
        std::fs::create_dir(&sub).unwrap();
        let shard = format!("{i}/2");
        let (_, v) = run_herd(
            &sub,
            &[
                "--url", &url, "-k", "3", "--stage", "1s:30:5", "--stage", "1s:30:5", "--stage", "2s:30:5", "--shard",
                &shard, "--seed", "5",
            ],
        );
        files.push(sub.join("results.json"));
        shards.push(v);
    }
    let merged = dir.path().join("merged.json");
    let o = Command::new(herd_bin()).arg("merge").args(&files).args(["-o", merged.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_eq!(m["scenario"]["shape"].as_array().map(|a| a.len()), Some(3), "{}", m["scenario"]);
    for i in 0..3 {
        for key in ["sent", "expected", "delivered", "missed"] {
            let sum: u64 = shards.iter().map(|v| sn(v, i, key)).sum();
            assert_eq!(sn(&m, i, key), sum, "stage {i} {key}");
        }
        // The merged percentiles come from the added histograms: every delivery is in them,
        // and the merged p99 lies between the shards'.
        let count = stage(&m, i)["latency"]["corrected"]["count"].as_u64().unwrap();
        assert_eq!(count, sn(&m, i, "delivered"));
        let p99 = |v: &Value| stage(v, i)["latency"]["corrected"]["p99_ms"].as_f64().unwrap();
        let (lo, hi) = (p99(&shards[0]).min(p99(&shards[1])), p99(&shards[0]).max(p99(&shards[1])));
        assert!(p99(&m) >= lo && p99(&m) <= hi, "merged p99 {} outside [{lo}, {hi}]", p99(&m));
    }
    // Hold stage: 10 conversations at 5/s for 2 s, split over the shards.
    assert_eq!(sn(&m, 2, "sent"), 100);
    assert_eq!(u(&m, "shape.left"), 0);
}

#[test]
fn shapes_stay_exact_with_executors_past_the_core_count() {
    let dir = tempfile::tempdir().unwrap();
    // 16 generator executors on this host's cores: stages open and close conversations on every
    // executor.
    let (_, v) = run_herd(
        dir.path(),
        &[
            "--threads",
            "16",
            "--server-threads",
            "2",
            "-k",
            "3",
            "--stage",
            "1s:60:5",
            "--stage",
            "1s:60:5",
            "--stage",
            "1s:60:5",
        ],
    );
    assert_eq!(u(&v, "connections.established"), 60);
    assert_eq!(sn(&v, 2, "sent"), 100, "20 conversations at 5/s for 1 s");
    // The first stage ramps the connections up; the next two hold them.
    assert_stages_exact(&v, 3, 1);
    // The embedded server's own count: every frame it relayed reached a member, which counted it
    // as delivered, or as unexpected when it was sent before that member's upgrade completed.
    assert_eq!(
        u(&v, "server.messages_delivered"),
        u(&v, "messages.delivered") + u(&v, "messages.unexpected"),
        "{} {}",
        v["server"],
        v["messages"]
    );
    // 70 executors, each with a tiny share of the churn and of the storm: the shares still add
    // up and every owed delivery arrives.
    let (_, v) = run_herd(
        dir.path(),
        &[
            "--threads",
            "70",
            "--server-threads",
            "4",
            "-c",
            "140",
            "-k",
            "3",
            "--rate",
            "2",
            "-d",
            "3s",
            "--storm",
            "1s:0.5:500ms",
            "--churn",
            "20",
            "--seed",
            "11",
        ],
    );
    assert_eq!(u(&v, "messages.missed"), 0, "{}", v["messages"]);
    assert_eq!(u(&v, "messages.expected"), u(&v, "messages.delivered"));
    let storm_lost = v["shape"]["outages"][0]["connections_lost"].as_u64().unwrap();
    assert!((140..=280).contains(&storm_lost), "about half of 420: {storm_lost}");
    let churned = u(&v, "shape.left") - storm_lost;
    assert!(churned >= 20, "20/s for 3 s over 70 executors: {churned}");
    assert_eq!(u(&v, "shape.rejoined"), u(&v, "shape.left"));
}
