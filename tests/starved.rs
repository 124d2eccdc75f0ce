//! herd short of CPU on purpose: busy loops pinned to the one core herd's executor runs on, for
//! the few seconds of a run. The run must say so (a note naming the figure, verdict
//! `attention`, `generator.starved`), and the same run without the loops must not.
//!
//! The loops are threads of this test process, pinned with `sched_setaffinity`, each bounded by
//! a deadline and stopped and joined when the run is over.

mod common;
use common::peers::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Busy loops per core: with four runnable loops beside it, herd's thread waits for a CPU most of
/// the time it is ready to run.
const LOOPS: usize = 4;
/// No loop outlives this, whatever happens to the test.
const LOOP_LIMIT: Duration = Duration::from_secs(30);
/// A run without loops may meet a neighbour's load on a shared host: it gets this many tries to
/// come out clean.
const CLEAN_TRIES: usize = 3;

/// Busy loops pinned to `cpu`, stopped (and joined) on drop.
struct Hogs {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hogs {
    fn pinned_to(cpu: usize) -> Hogs {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..LOOPS)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity
                    // on this thread (pid 0) with its size.
                    unsafe {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(cpu, &mut set);
                        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set), 0, "pin a loop");
                    }
                    let until = Instant::now() + LOOP_LIMIT;
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                        }
                    }
                })
            })
            .collect();
        Hogs { stop, threads }
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The first CPU this process may run on: herd's one executor and the loops go there.
fn first_cpu() -> usize {
    // SAFETY: sched_getaffinity fills the set it is given, of the size given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set), 0);
        (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set)).expect("some CPU")
    }
}

fn f(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr).and_then(Value::as_f64).unwrap_or_else(|| panic!("{ptr} is not a number in {}", v["generator"]))
}

fn notes(v: &Value) -> Vec<String> {
    v["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect()
}

/// What every run shows, starved or not: one send lag per message sent, read lags, and the one
/// executor thread's CPU over the send phase.
fn assert_figures(v: &Value) {
    assert_eq!(n(v, "generator.send_lag.count"), n(v, "messages.sent"), "{}", v["generator"]);
    assert!(n(v, "generator.read_lag.count") > 0, "{}", v["generator"]);
    assert_eq!(n(v, "generator.cpu.threads"), 1, "{}", v["generator"]);
    assert!(f(v, "/generator/cpu/busy_ms") > 0.0, "{}", v["generator"]);
    assert!(f(v, "/generator/cpu/span_ms") >= 1000.0, "the send phase was measured: {}", v["generator"]);
}

/// The two tests pin loops to the same CPU: one at a time, or one's loops starve the other's
/// clean run.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn starved_and_clean(url: Option<&str>) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cpu = first_cpu().to_string();
    // `--cores` with one CPU: one executor (`--threads 1`), on the CPU the loops go to.
    let mut args = vec!["-c", "50", "-k", "4", "--rate", "20", "-d", "2s", "--cores", &cpu];
    if let Some(u) = url {
        args.extend(["--target", "nchan", "--url", u]);
    }
    let d = tempfile::tempdir().unwrap();

    let starved = {
        let _hogs = Hogs::pinned_to(first_cpu());
        herd_ok(d.path(), &args)
    };
    assert_figures(&starved);
    assert_eq!(starved["verdict"], "attention", "{:?}", notes(&starved));
    assert_eq!(starved["generator"]["starved"], true);
    let wait = f(&starved, "/generator/cpu/run_queue_wait_percent");
    assert!(wait > 20.0, "herd's thread waited for a CPU only {wait} % of the send phase");
    let note = notes(&starved).into_iter().find(|n| n.starts_with("herd was short of CPU")).unwrap_or_else(|| {
        panic!("no note says herd was short of CPU: {:?}", notes(&starved));
    });
    assert!(note.contains(&format!("for {wait:.0} % of the send phase")), "the note names the figure: {note}");

    let mut tried = vec![];
    let clean = (0..CLEAN_TRIES).find_map(|_| {
        let v = herd_ok(d.path(), &args);
        assert_figures(&v);
        let clean = v["verdict"] == "clean";
        tried.push((f(&v, "/generator/cpu/run_queue_wait_percent"), f(&v, "/generator/send_lag/p99_ms"), notes(&v)));
        clean.then_some(v)
    });
    let clean = clean.unwrap_or_else(|| panic!("no run without the loops came out clean: {tried:?}"));
    assert_eq!(clean["generator"]["starved"], false);
    assert!(notes(&clean).is_empty(), "{:?}", notes(&clean));
}

#[test]
fn herd_says_when_it_was_short_of_cpu_embedded() {
    starved_and_clean(None);
}

#[test]
fn herd_says_when_it_was_short_of_cpu_against_nchan() {
    let nchan = Peer::nchan(&[]);
    let url = nchan.url("/conv/{conv}");
    starved_and_clean(Some(&url));
    nchan.stop();
}
