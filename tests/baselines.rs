//! Benchmark baselines: thresholds and their exit codes, --abort-on-fail, honest endings, and
//! `herd compare` on real results files (copied and edited to stand for another run).

mod common;
use common::hostile::Hostile;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn herd(args: &[&str]) -> Output {
    Command::new(herd_bin()).args(args).output().expect("run herd")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SMALL: &[&str] = &["-c", "4", "-k", "3", "--rate", "5", "-d", "1s", "--drain", "3s"];

#[test]
fn thresholds_are_judged_shown_and_set_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let passing = ["--threshold", "missed==0", "--threshold", "p99<1h", "--threshold", "connect_failed<1%"];
    let (o, v) = herd_run(dir.path(), "pass.json", &[SMALL, &passing].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(v["verdict"], "clean");
    let th = v["thresholds"].as_array().unwrap();
    assert_eq!(th.len(), 3);
    assert!(th.iter().all(|t| t["passed"] == true), "{th:?}");
    assert_eq!(th[0]["value"], 0.0);
    assert_eq!(th[1]["value"].as_f64(), v.pointer("/latency/corrected/p99_ms").and_then(Value::as_f64));
    assert!(stdout(&o).contains("threshold    pass  missed==0"), "{}", stdout(&o));

    // `sent==0` cannot hold for a run that sent: it is crossed, and the run exits 99 with its
    // results and summary still written.
    let failing = ["--threshold", "missed==0", "--threshold", "sent==0"];
    let (o, v) = herd_run(dir.path(), "fail.json", &[SMALL, &failing].concat());
    assert_eq!(o.status.code(), Some(99), "{}", stderr(&o));
    assert!(stderr(&o).contains("threshold crossed: sent==0"), "{}", stderr(&o));
    assert_eq!(v["verdict"], "failed");
    assert_eq!(v["thresholds"][1]["passed"], false);
    assert_eq!(v["thresholds"][1]["value"].as_f64(), Some(u(&v, "messages.sent") as f64));
    assert!(stdout(&o).contains("FAIL  sent==0") && stdout(&o).contains("FAILED: threshold crossed"), "{}", stdout(&o));
}

#[test]
fn bad_thresholds_exit_64_before_any_run() {
    for (args, needle) in [
        (vec!["run", "--threshold", "p98<5ms"], "unknown figure 'p98'"),
        (vec!["run", "--threshold", "p99<5%"], "no percentage"),
        (vec!["run", "--threshold", "missed"], "no operator"),
        (vec!["run", "--abort-on-fail"], "--abort-on-fail"),
    ] {
        let o = herd(&args);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn an_unwritable_report_exits_74_before_any_run() {
    let o = herd(&["run", "-c", "1", "-k", "2", "--report", "/nonexistent-dir/r.html"]);
    assert_eq!(o.status.code(), Some(74), "{}", stderr(&o));
    assert!(stderr(&o).contains("--report /nonexistent-dir/r.html"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("herd: run"), "a load was started: {}", stderr(&o));
}

#[test]
fn scenario_file_thresholds_apply_and_flags_replace_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "conversations = 3\nmembers = 2\nrate = 5\nduration = \"1s\"\nthreshold = [\"missed==0\", \"delivered==0\"]\n",
    )
    .unwrap();
    let (o, v) = herd_run(dir.path(), "a.json", &["--scenario", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(99), "{}", stderr(&o));
    assert_eq!(v["thresholds"].as_array().unwrap().len(), 2);
    assert_eq!(v["thresholds"][1]["threshold"], "delivered==0");
    let (o, v) = herd_run(dir.path(), "b.json", &["--scenario", file.to_str().unwrap(), "--threshold", "delivered>0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(v["thresholds"].as_array().unwrap().len(), 1, "the flag replaces the file's list");
}

#[test]
fn abort_on_fail_stops_sending_at_the_first_crossing() {
    // Every 3rd delivery duplicated by the server: `duplicated==0` is crossed in the first second
    // of a run that would otherwise send for 60 s.
    let srv = ServeProc::start(&["--duplicate-every", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let args = ["--url", &srv.url(), "-c", "4", "-k", "3", "--rate", "20", "-d", "60s", "--drain", "2s"];
    let (o, v) =
        herd_run(dir.path(), "r.json", &[&args[..], &["--threshold", "duplicated==0", "--abort-on-fail"]].concat());
    assert_eq!(o.status.code(), Some(99), "{}", stderr(&o));
    assert_eq!(v["outcome"], "stopped_by_threshold");
    assert!(f(&v, "phases.send_s") < 30.0, "sending was not stopped: {}", v["phases"]);
    assert!(u(&v, "messages.duplicated") > 0);
    let notes: Vec<&str> = v["notes"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(notes.iter().any(|n| n.contains("stopped early (--abort-on-fail): duplicated==0")), "{notes:?}");
}

#[test]
fn a_drain_that_ends_with_deliveries_pending_says_so() {
    // Messages sent in the first half arrive while sending; the rest are still on their way
    // when the short drain ends.
    let srv = ServeProc::start(&["--delay", "1500ms"]);
    let dir = tempfile::tempdir().unwrap();
    let args = ["--url", &srv.url(), "-c", "2", "-k", "2", "--rate", "5", "-d", "3s", "--drain", "100ms"];
    let (o, v) = herd_run(dir.path(), "r.json", &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(v["verdict"], "attention");
    assert!(u(&v, "messages.missed") > 0 && u(&v, "messages.delivered") > 0, "{}", v["messages"]);
    let note = v["notes"].as_array().unwrap().iter().filter_map(Value::as_str).find(|n| n.contains("still pending"));
    let note = note.unwrap_or_else(|| panic!("no pending note in {}", v["notes"]));
    assert!(note.contains("in flight") && note.contains("--drain"), "{note}");
    assert!(stdout(&o).contains("attention: see the notes"), "{}", stdout(&o));
}

#[test]
fn most_connections_closed_by_the_peer_is_reported_with_close_codes() {
    let srv = Hostile::start();
    let dir = tempfile::tempdir().unwrap();
    let (o, v) = herd_run(
        dir.path(),
        "r.json",
        &["--url", &srv.url("storm"), "-c", "3", "-k", "4", "-d", "1s", "--drain", "1s"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(v["verdict"], "attention");
    let note =
        v["notes"].as_array().unwrap().iter().filter_map(Value::as_str).find(|n| n.contains("closed by the peer"));
    let note = note.unwrap_or_else(|| panic!("no close note in {}", v["notes"]));
    assert!(note.contains("9 of 12 established") && note.contains("1000 (normal closure) x9"), "{note}");
}

#[test]
fn a_run_that_sends_nothing_is_not_a_success() {
    // One sender at one message per 1000 s, for 1 s: with this seed its first send falls after
    // the sending phase (pacing phases come from the seed).
    let dir = tempfile::tempdir().unwrap();
    let (o, v) = herd_run(dir.path(), "r.json", &["-c", "1", "-k", "2", "--rate", "0.001", "-d", "1s", "--seed", "1"]);
    assert_eq!(u(&v, "messages.sent"), 0, "the seed's first send moved; pick another seed");
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing was sent"), "{}", stderr(&o));
    let notes = v["notes"].to_string();
    assert!(notes.contains("nothing was sent: the sending phase"), "{notes}");
}

// ---- herd compare ----

/// One real results file, and edited copies of it.
struct Runs {
    dir: tempfile::TempDir,
    base: Value,
}

impl Runs {
    fn new() -> Runs {
        let dir = tempfile::tempdir().unwrap();
        let (o, base) = herd_run(dir.path(), "base.json", SMALL);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        Runs { dir, base }
    }

    /// A copy with `edits` (pointer, value) applied.
    fn variant(&self, name: &str, edits: &[(&str, Value)]) -> PathBuf {
        let mut v = self.base.clone();
        for (ptr, val) in edits {
            *v.pointer_mut(ptr).unwrap_or_else(|| panic!("{ptr}")) = val.clone();
        }
        let p = self.dir.path().join(name);
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        p
    }

    fn p99(&self) -> f64 {
        self.base.pointer("/latency/corrected/p99_ms").and_then(Value::as_f64).unwrap()
    }
}

fn compare(args: &[&Path], extra: &[&str]) -> Output {
    let mut c = Command::new(herd_bin());
    c.arg("compare").args(extra);
    for a in args {
        c.arg(a);
    }
    c.output().expect("run herd compare")
}

#[test]
fn compare_gates_regressions_and_refuses_other_scenarios() {
    let r = Runs::new();
    let p99 = r.p99();
    let base = r.variant("a.json", &[]);
    let same = r.variant("b.json", &[("/scenario/seed", json!(12345))]);
    let slower = r.variant("c.json", &[("/latency/corrected/p99_ms", json!(p99 * 2.0 + 1.0))]);
    let lossy = r.variant("d.json", &[("/messages/missed", json!(3))]);
    let other = r.variant("e.json", &[("/scenario/members", json!(5))]);
    let gate = ["--max-regression", "p99=10%,missed=0"];

    let o = compare(&[&base, &same], &gate);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("verdict: no regression"), "{out}");
    for fig in ["p99", "missed", "connect_p99", "deliveries_per_s", "delivered"] {
        assert!(out.lines().any(|l| l.starts_with(&format!("{fig} "))), "no {fig} row:\n{out}");
    }

    let o = compare(&[&base, &slower], &gate);
    assert_eq!(o.status.code(), Some(99), "{}", stdout(&o));
    let row = stdout(&o).lines().find(|l| l.starts_with("p99 ")).unwrap().to_string();
    assert!(row.contains("REGRESSION (limit 10%)"), "{row}");
    assert!(stderr(&o).contains("regression beyond --max-regression: p99"), "{}", stderr(&o));
    // Without a limit on p99, the same change is shown but does not fail.
    let o = compare(&[&base, &slower], &["--max-regression", "missed=0"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).lines().any(|l| l.starts_with("p99 ") && l.ends_with("worse")), "{}", stdout(&o));

    let o = compare(&[&base, &lossy], &gate);
    assert_eq!(o.status.code(), Some(99));
    assert!(stdout(&o).lines().any(|l| l.starts_with("missed ") && l.contains("REGRESSION")), "{}", stdout(&o));

    let o = compare(&[&base, &other], &gate);
    assert_eq!(o.status.code(), Some(65), "{}", stdout(&o));
    assert!(stderr(&o).contains("members: 3 → 5") && stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = compare(&[&base, &other], &["--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("warning:") && stdout(&o).contains("members: 3 → 5"), "{}", stdout(&o));

    let o = compare(&[&base, &slower], &["--format", "markdown", "--max-regression", "p99=10%"]);
    assert_eq!(o.status.code(), Some(99));
    assert!(stdout(&o).contains("| figure | base | new | change | note |"), "{}", stdout(&o));
    assert!(stdout(&o).contains("**REGRESSION (limit 10%)**"), "{}", stdout(&o));
}

#[test]
fn compare_with_several_runs_judges_on_the_spread() {
    let r = Runs::new();
    let p = r.p99();
    // Base runs spread over 1x..3x the measured p99; the new runs' median (2.5x) moves by less
    // than that spread, so it is noise even though it is +25% on the median.
    let b1 = r.variant("b1.json", &[("/latency/corrected/p99_ms", json!(p))]);
    let b2 = r.variant("b2.json", &[("/latency/corrected/p99_ms", json!(p * 3.0))]);
    let n1 = r.variant("n1.json", &[("/latency/corrected/p99_ms", json!(p * 2.5))]);
    let n2 = r.variant("n2.json", &[("/latency/corrected/p99_ms", json!(p * 2.5))]);
    let gate = ["--max-regression", "p99=10%"];
    let dash = Path::new("--");
    let o = compare(&[&b1, &b2, dash, &n1, &n2], &gate);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let row = stdout(&o).lines().find(|l| l.starts_with("p99 ")).unwrap().to_string();
    assert!(row.contains("within noise"), "{row}");
    assert!(stdout(&o).contains("2 base run(s), 2 new run(s)"), "{}", stdout(&o));
    // Beyond the spread: 5x.
    let n3 = r.variant("n3.json", &[("/latency/corrected/p99_ms", json!(p * 5.0 + 1.0))]);
    let o = compare(&[&b1, &b2, dash, &n3, &n3], &gate);
    assert_eq!(o.status.code(), Some(99), "{}", stdout(&o));
}

#[test]
fn compare_usage_and_file_errors() {
    let r = Runs::new();
    let a = r.variant("a.json", &[]);
    let o = compare(&[&a], &[]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("BASE.json NEW.json"), "{}", stderr(&o));
    let o = compare(&[&a, &a], &["--max-regression", "p98=1%"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("--max-regression") && stderr(&o).contains("p98"), "{}", stderr(&o));
    let o = compare(&[&a, &a], &["--max-regression", "rss_per_conn=5%"]);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("rss_per_conn was not measured"), "{}", stderr(&o));
    let missing = r.dir.path().join("missing.json");
    assert_eq!(compare(&[&a, &missing], &[]).status.code(), Some(74));
    let junk = r.dir.path().join("junk.json");
    std::fs::write(&junk, "{\"hello\": 1}").unwrap();
    let o = compare(&[&a, &junk], &[]);
    assert_eq!(o.status.code(), Some(65));
    assert!(stderr(&o).contains("not a herd results file"), "{}", stderr(&o));
}
