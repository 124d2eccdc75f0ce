//! The Pushgateway export against a real Pushgateway and Prometheus (Debian's
//! `prometheus-pushgateway` and `prometheus` packages): pushes land in the right groups, every
//! PromQL query of `dashboards/herd.json` returns data, and an unreachable Pushgateway never
//! holds a run up.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::promstack::PromStack;
use herd::measure::stats::{CoreStats, ErrorKind, Merged};
use herd::metrics::{encode, Phase, PushConfig, PushReport, Pusher, RunInfo};

const CORES: usize = 2;

/// Totals after `rounds` rounds of synthetic traffic on two cores. Per round and core: 2
/// connections attempted and established, 10 messages sent, 30 deliveries owed, 29 delivered
/// (each recorded in the latency histograms), one duplicate, one reordering, one reset and one
/// refused connect. `salt` shifts the latencies so that instances differ.
fn synthetic(rounds: u64, salt: u64) -> Merged {
    let mut cores: Vec<CoreStats> = (0..CORES).map(|_| CoreStats::default()).collect();
    let mut merged = Merged::new(CORES);
    for round in 0..rounds {
        for (i, core) in cores.iter_mut().enumerate() {
            let c = &mut core.counters;
            c.conns_attempted += 3;
            c.conns_established += 2;
            c.conns_failed += 1;
            c.msgs_sent += 10;
            c.msgs_expected += 30;
            c.msgs_delivered += 29;
            c.msgs_duplicated += 1;
            c.msgs_reordered += 1;
            c.error(ErrorKind::Reset);
            c.error(ErrorKind::ConnectRefused);
            if round % 2 == 1 {
                c.conns_closed_by_peer += 1;
            }
            for k in 0..29u64 {
                // 80 µs to ~30 ms, corrected latency a little above the uncorrected one.
                let us = 80 + (k * k * 37 + round * 101 + salt * 13 + i as u64 * 7) % 30_000;
                core.record_delivery((us + us / 10) * 1_000, us * 1_000);
            }
            core.record_connect((400 + round * 50 + i as u64 * 10) * 1_000);
            core.record_connect((900 + round * 70 + salt) * 1_000);
            merged.fold(&core.snapshot(i, 0, false));
        }
    }
    merged
}

fn run_info(run_id: &str) -> RunInfo {
    RunInfo {
        run_id: run_id.to_string(),
        target: "ws://127.0.0.1:9000/chat".to_string(),
        conversations: 100,
        members: 3,
        senders: 1,
        rate: 2.5,
        size: 128,
        threads: CORES as u64,
        extra: vec![("scenario".to_string(), "test/synthetic".to_string())],
        room_classes: vec![],
    }
}

/// The Pushgateway's groups, as (job, instance).
fn listed_groups(stack: &PromStack) -> Vec<(String, String)> {
    let api = stack.pushgateway_groups();
    assert_eq!(api["status"], "success", "{api}");
    api["data"]
        .as_array()
        .expect("data is an array")
        .iter()
        .map(|g| {
            (
                g["labels"]["job"].as_str().unwrap_or("").to_string(),
                g["labels"]["instance"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn push_config(stack: &PromStack, job: &str, instance: &str) -> PushConfig {
    let mut cfg = PushConfig::new(&stack.pushgateway, job, instance);
    cfg.interval = Duration::from_millis(300);
    cfg
}

/// One sample of a text exposition: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text exposition format (enough of it for the Pushgateway's `/metrics`).
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a sample line has a name");
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if rest.starts_with('{') {
            let mut chars = rest[1..].char_indices();
            let mut key = String::new();
            let mut val = String::new();
            let mut in_val = false;
            let mut end = 0;
            while let Some((i, ch)) = chars.next() {
                if in_val {
                    match ch {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => val.push('\n'),
                            Some(c) => val.push(c),
                            None => {}
                        },
                        '"' => {
                            labels.insert(std::mem::take(&mut key), std::mem::take(&mut val));
                            in_val = false;
                        }
                        c => val.push(c),
                    }
                } else {
                    match ch {
                        '}' => {
                            end = i + 2;
                            break;
                        }
                        '"' => in_val = true,
                        '=' | ',' | ' ' => {}
                        c => key.push(c),
                    }
                }
            }
            rest = &rest[end..];
        }
        let value = rest.split_whitespace().next().expect("a sample has a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        out.push((name, labels, value));
    }
    out
}

fn samples_of<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .collect()
}

fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples_of(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].2
}

fn assert_clean(report: &PushReport) {
    assert!(report.final_push_ok, "{report:?}");
    assert_eq!(report.pushes_failed, 0, "{report:?}");
    assert_eq!(report.last_error, None, "{report:?}");
}

#[test]
fn pushes_two_instances_to_a_real_pushgateway() {
    let stack = PromStack::start();
    let job = "herd_push_test";
    // The second instance has a '/' and so goes through the `@base64` form of the URL.
    let groups = [("inst-a", 4u64, 1u64), ("rack/7", 7, 2)];

    for (instance, rounds, salt) in groups {
        let pusher = Pusher::start(push_config(&stack, job, instance));
        let info = run_info(&format!("run-{salt}"));
        pusher.update(encode("herd", &info, Phase::Connecting, &synthetic(1, salt)));
        // The first state is pushed at once; it must land before the next state replaces it.
        common::wait_for(&format!("group {job}/{instance} on the Pushgateway"), Duration::from_secs(30), || {
            listed_groups(&stack).contains(&(job.to_string(), instance.to_string()))
        });
        pusher.update(encode("herd", &info, Phase::Sending, &synthetic(rounds - 1, salt)));
        let report = pusher.finish(encode("herd", &info, Phase::Done, &synthetic(rounds, salt)));
        assert_clean(&report);
        assert!(report.pushes_ok >= 2, "{report:?}");
        assert_eq!(report.deleted, None);
    }

    // Both groups exist.
    let listed = listed_groups(&stack);
    for (instance, _, _) in groups {
        assert!(
            listed.contains(&(job.to_string(), instance.to_string())),
            "group {job}/{instance} missing from {listed:?}"
        );
    }

    // The values are those of the final push.
    let samples = parse_exposition(&stack.pushgateway_metrics());
    for (instance, rounds, salt) in groups {
        let merged = synthetic(rounds, salt);
        let c = &merged.counters;
        let g = [("job", job), ("instance", instance)];
        let delivered = rounds * CORES as u64 * 29;
        assert_eq!(c.msgs_delivered, delivered);
        assert_eq!(merged.total.corrected.len(), delivered);
        assert_eq!(value_of(&samples, "herd_delivery_latency_seconds_count", &g), delivered as f64);
        assert_eq!(value_of(&samples, "herd_delivery_latency_uncorrected_seconds_count", &g), delivered as f64);
        let inf = [("job", job), ("instance", instance), ("le", "+Inf")];
        assert_eq!(value_of(&samples, "herd_delivery_latency_seconds_bucket", &inf), delivered as f64);
        assert_eq!(value_of(&samples, "herd_messages_delivered_total", &g), delivered as f64);
        assert_eq!(value_of(&samples, "herd_messages_sent_total", &g), c.msgs_sent as f64);
        assert_eq!(value_of(&samples, "herd_messages_missed_total", &g), (c.msgs_expected - c.msgs_delivered) as f64);
        assert_eq!(value_of(&samples, "herd_connections", &g), c.open() as f64);
        assert_eq!(value_of(&samples, "herd_connect_duration_seconds_count", &g), (rounds * CORES as u64 * 2) as f64);
        assert_eq!(
            samples_of(&samples, "herd_errors_total", &g).len(),
            ErrorKind::COUNT,
            "every error category, zeros included"
        );
        assert_eq!(
            value_of(&samples, "herd_errors_total", &[("job", job), ("instance", instance), ("category", "reset")]),
            (rounds * CORES as u64) as f64
        );
        assert_eq!(
            value_of(&samples, "herd_run_phase", &[("job", job), ("instance", instance), ("phase", "done")]),
            5.0
        );
        let info = [("job", job), ("instance", instance), ("scenario", "test/synthetic")];
        assert_eq!(value_of(&samples, "herd_run_info", &info), 1.0);
        let p99 = value_of(
            &samples,
            "herd_delivery_latency_quantile_seconds",
            &[("job", job), ("instance", instance), ("kind", "corrected"), ("quantile", "0.99")],
        );
        let exact = merged.total.corrected.value_at_quantile(0.99) as f64 / 1e6;
        assert!((p99 - exact).abs() < 1e-9, "p99 {p99} vs {exact}");
        assert_eq!(samples_of(&samples, "push_time_seconds", &g).len(), 1, "the Pushgateway recorded the push");
    }

    // A group pushed with --pushgateway-delete is gone after finish.
    let mut cfg = push_config(&stack, job, "short-lived");
    cfg.delete_on_finish = true;
    let pusher = Pusher::start(cfg);
    let report = pusher.finish(encode("herd", &run_info("gone"), Phase::Done, &synthetic(1, 3)));
    assert_clean(&report);
    assert_eq!(report.deleted, Some(true), "{report:?}");
    let samples = parse_exposition(&stack.pushgateway_metrics());
    assert!(samples_of(&samples, "herd_connections", &[("instance", "short-lived")]).is_empty());
    assert_eq!(samples_of(&samples, "herd_connections", &[("job", job)]).len(), 2);
}

/// A loopback port with nothing listening.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn an_unreachable_pushgateway_never_blocks_the_run() {
    let mut cfg = PushConfig::new(&format!("http://127.0.0.1:{}", closed_port()), "herd", "down");
    cfg.interval = Duration::from_millis(100);
    cfg.delete_on_finish = true;
    // Everything the final push and delete may take: every try timing out, every pause.
    let budget = cfg.timeout * (2 * cfg.final_backoff.len() as u32 + 2) + cfg.final_backoff.iter().sum::<Duration>();
    let merged = synthetic(2, 1);

    let started = Instant::now();
    let pusher = Pusher::start(cfg);
    for _ in 0..5 {
        let t = Instant::now();
        pusher.update(encode("herd", &run_info("down"), Phase::Sending, &merged));
        assert!(t.elapsed() < Duration::from_secs(1), "update waited {:?}", t.elapsed());
        // Updates spaced out so several periodic pushes fall due (part of the scenario).
        std::thread::sleep(Duration::from_millis(60));
    }
    let report = pusher.finish(encode("herd", &run_info("down"), Phase::Done, &merged));
    let took = started.elapsed();

    assert!(!report.final_push_ok, "{report:?}");
    assert_eq!(report.pushes_ok, 0, "{report:?}");
    assert!(report.pushes_failed >= 5, "periodic and every final try: {report:?}");
    assert!(report.last_error.is_some(), "{report:?}");
    assert_eq!(report.deleted, Some(false), "{report:?}");
    assert!(took < budget, "took {took:?}, retry budget {budget:?}");
}

#[test]
fn a_pushgateway_that_never_answers_costs_only_timeouts() {
    // Connections to a listener that never accepts complete in the kernel, then nothing answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let mut cfg = PushConfig::new(&url, "herd", "silent");
    cfg.interval = Duration::from_millis(100);
    cfg.timeout = Duration::from_millis(300);
    // Twice what an in-flight push plus every final try and pause can take: a loose bound.
    let budget = 2 * (cfg.timeout * (cfg.final_backoff.len() as u32 + 2) + cfg.final_backoff.iter().sum::<Duration>());
    let merged = synthetic(1, 1);

    let pusher = Pusher::start(cfg);
    // While the pusher's thread waits on the silent gateway, updates still return at once.
    for _ in 0..8 {
        let t = Instant::now();
        pusher.update(encode("herd", &run_info("silent"), Phase::Sending, &merged));
        assert!(t.elapsed() < Duration::from_secs(1), "update waited {:?}", t.elapsed());
        // Updates spaced out while pushes hang (part of the scenario).
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    let report = pusher.finish(encode("herd", &run_info("silent"), Phase::Done, &merged));
    let took = t.elapsed();
    assert!(!report.final_push_ok, "{report:?}");
    assert_eq!(report.pushes_ok, 0, "{report:?}");
    assert!(report.pushes_failed >= 4, "{report:?}");
    assert!(report.last_error.is_some(), "{report:?}");
    assert!(took < budget, "took {took:?}, budget {budget:?}");
    drop(silent);
}
