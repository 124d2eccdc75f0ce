//! Checking that results files are shards of one scenario, and merging them exactly: counters
//! add, histograms add bucket by bucket, and every figure of the merged result comes from those
//! sums by the same code as `herd run`'s own results.

use super::input::Input;
use crate::config::args::{self, RunArgs};
use crate::config::Scenario;
use crate::measure::stats::{Counters, ErrorKind, Histos, Merged};
use crate::outcome::results::{self, Phases, ProcessCost, RunResult};
use std::time::Duration;

/// Scenario keys that belong to one process, not to the workload: they may differ between the
/// workers of one scenario.
const PER_PROCESS_KEYS: [&str; 15] = [
    "shard",
    "executors",
    "start_at",
    "start_when",
    "start_when_timeout",
    "out",
    "hdr_log",
    "quiet",
    "seed",
    "cores",
    "server_threads",
    "source_ips",
    "sndbuf",
    "rcvbuf",
    "connect_rate",
];

fn workload(scenario: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    let mut m = scenario.as_object().cloned().unwrap_or_default();
    for k in PER_PROCESS_KEYS {
        m.remove(k);
    }
    m
}

/// Checks that the inputs are shards of one scenario, each shard once and (unless `partial`)
/// every shard present. Returns the missing shard indexes (empty unless `partial`).
pub fn check(inputs: &[Input], partial: bool) -> Result<Vec<u32>, String> {
    let first = inputs.first().ok_or("no results files given")?;
    let base = workload(&first.scenario);
    // A population is generated from the seed: shards of one population share it.
    let has_population = first.scenario.get("population").is_some_and(|p| !p.is_null());
    if let Some(i) = inputs.iter().find(|i| has_population && i.scenario.get("seed") != first.scenario.get("seed")) {
        return Err(format!(
            "{} and {} are shards of populations from different seeds ({} and {}): give every shard the same --seed",
            first.name,
            i.name,
            first.scenario.get("seed").map_or("absent".into(), |v| v.to_string()),
            i.scenario.get("seed").map_or("absent".into(), |v| v.to_string())
        ));
    }
    for i in &inputs[1..] {
        let w = workload(&i.scenario);
        if w != base {
            let key = base.keys().chain(w.keys()).find(|k| base.get(*k) != w.get(*k)).cloned().unwrap_or_default();
            let show = |v: Option<&serde_json::Value>| v.map_or("absent".to_string(), |v| v.to_string());
            return Err(format!(
                "{} and {} are results of different scenarios: scenario.{key} is {} and {}",
                first.name,
                i.name,
                show(base.get(&key)),
                show(w.get(&key))
            ));
        }
        if i.shard.count != first.shard.count {
            return Err(format!(
                "{} is shard {} but {} is shard {}: different shard counts",
                first.name, first.shard, i.name, i.shard
            ));
        }
    }
    let n = first.shard.count;
    let mut seen: Vec<Option<&str>> = vec![None; n as usize];
    for i in inputs {
        let slot = &mut seen[i.shard.index as usize];
        if let Some(other) = slot {
            return Err(format!("{other} and {} are both shard {}: shards overlap", i.name, i.shard));
        }
        *slot = Some(&i.name);
    }
    let missing: Vec<u32> = (0..n).filter(|&k| seen[k as usize].is_none()).collect();
    if !missing.is_empty() && !partial {
        let list: Vec<String> = missing.iter().map(|k| format!("{k}/{n}")).collect();
        return Err(format!(
            "shard(s) {} missing (given {} of {n}); --partial merges the shards that are there",
            list.join(", "),
            inputs.len()
        ));
    }
    Ok(missing)
}

/// The counters of one input, as its run had them at the end.
fn counters(i: &Input) -> Result<Counters, String> {
    let (c, m, d) = (&i.doc.connections, &i.doc.messages, &i.doc);
    let mut out = Counters {
        conns_attempted: c.attempted,
        conns_established: c.established,
        conns_failed: c.failed,
        conns_reconnected: c.reconnected,
        conns_closed_by_peer: c.closed_by_peer,
        conns_closed: c.closed,
        msgs_sent: m.sent,
        msgs_expected: m.expected,
        msgs_delivered: m.delivered,
        msgs_duplicated: m.duplicated,
        msgs_reordered: m.reordered,
        msgs_unexpected: m.unexpected,
        msgs_echoed: m.echoed,
        msgs_unsent: m.unsent,
        msgs_missed_away: m.missed_while_away,
        msgs_holes_evicted: m.holes_evicted,
        wire: d.websocket.clone(),
        ..Default::default()
    };
    for (name, &n) in &d.errors {
        // `ErrorKind::ALL` is in index order, so the position is the counter's index.
        let idx = ErrorKind::ALL
            .iter()
            .position(|k| k.name() == name)
            .ok_or_else(|| format!("{}: unknown error category {name:?} in errors", i.name))?;
        out.errors[idx] += n;
    }
    Ok(out)
}

/// A scenario for the summary table: the workload's figures from the first file.
fn summary_scenario(i: &Input) -> Result<Scenario, String> {
    let s = &i.scenario;
    let u32_of = |k: &str| {
        s[k].as_u64().and_then(|v| u32::try_from(v).ok()).ok_or_else(|| format!("{}: scenario.{k} missing", i.name))
    };
    let f64_of = |k: &str| s[k].as_f64().ok_or_else(|| format!("{}: scenario.{k} missing", i.name));
    let args = RunArgs {
        conversations: Some(u32_of("conversations")?),
        members: Some(u32_of("members")?),
        senders: Some(u32_of("senders")?),
        rate: Some(f64_of("rate")?),
        size: Some(u64::from(u32_of("size")?)),
        duration: Some(Duration::from_secs_f64(f64_of("duration")?.max(0.0))),
        drain: Some(Duration::from_secs_f64(f64_of("drain")?.max(0.0))),
        seed: Some(0),
        ..Default::default()
    };
    let mut out = args::resolve(&args, &[0]).map_err(|e| format!("{}: scenario: {e}", i.name))?;
    (out.shape, out.storm, out.churn) = super::shapes::scenario_parts(i)?;
    if let Some(p) = s.get("population").filter(|v| !v.is_null()) {
        out.population =
            Some(serde_json::from_value(p.clone()).map_err(|e| format!("{}: scenario.population: {e}", i.name))?);
    }
    Ok(out)
}

/// The merged result of the inputs (already [`check`]ed); `missing` shards are named in its
/// notes.
pub fn combine(inputs: &[Input], missing: &[u32]) -> Result<RunResult, String> {
    let first = &inputs[0];
    let mut sum = Counters::default();
    let mut histos = Histos::default();
    let mut peak_open = 0;
    let mut notes = vec![];
    for i in inputs {
        sum.add(&counters(i)?);
        let h = crate::outcome::histcodec::decode(&i.doc.histograms).map_err(|e| format!("{}: {e}", i.name))?;
        histos.add(&h);
        // Shards peak at about the same time when they start together; the sum is an upper bound.
        peak_open += i.doc.connections.peak_open;
        for n in &i.doc.notes {
            notes.push(format!("shard {}: {n}", i.shard));
        }
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|k| format!("{k}/{}", first.shard.count)).collect();
        notes.push(format!("partial merge: shard(s) {} missing; figures cover the shards present", list.join(", ")));
    }
    let mut merged = Merged::new(1);
    merged.counters = sum;
    merged.total = histos;

    let worst = ["stalled", "aborted", "interrupted"]
        .into_iter()
        .find(|o| inputs.iter().any(|i| i.doc.outcome == *o))
        .unwrap_or("completed");
    let max = |f: fn(&Input) -> f64| inputs.iter().map(f).fold(0.0, f64::max);
    let total = |f: fn(&Input) -> f64| inputs.iter().map(f).sum::<f64>();
    let totalb = |f: fn(&Input) -> u64| inputs.iter().map(f).sum::<u64>();
    let mut targets: Vec<&str> = inputs.iter().map(|i| i.doc.target.as_str()).collect();
    targets.dedup();
    let target = match targets.len() {
        1 => targets[0].to_string(),
        n => format!("{} (+{} other targets)", targets[0], n - 1),
    };
    let delivered = merged.counters.msgs_delivered;
    let cpu_send = total(|i| i.doc.process.cpu_send_drain_s);
    let mut r = RunResult {
        herd_version: env!("CARGO_PKG_VERSION"),
        run_id: inputs.iter().map(|i| i.doc.run_id.as_str()).collect::<Vec<_>>().join("+"),
        started_at_unix_s: inputs.iter().map(|i| i.doc.started_at_unix_s).fold(f64::INFINITY, f64::min),
        scenario: summary_scenario(first)?,
        target,
        embedded_server: inputs.iter().any(|i| i.doc.embedded_server),
        outcome: worst.to_string(),
        stalled_cores: vec![],
        connections: Default::default(),
        messages: Default::default(),
        latency: Default::default(),
        connect: Default::default(),
        errors: Default::default(),
        websocket: Default::default(),
        judged: Default::default(),
        shape: super::shapes::merge(inputs, first, max(|i| i.doc.phases.send_s))?,
        population: {
            let pops: Vec<(&str, &crate::population::results::PopulationResults)> =
                inputs.iter().filter_map(|i| i.doc.population.as_ref().map(|p| (i.name.as_str(), p))).collect();
            if !pops.is_empty() && pops.len() < inputs.len() {
                return Err("some files are results of a population and some are not".into());
            }
            crate::population::results::merge(&pops)?
        },
        connect_phases: Default::default(),
        tls: None,
        duration_s: max(|i| i.doc.duration_s),
        phases: Phases {
            connect_s: max(|i| i.doc.phases.connect_s),
            send_s: max(|i| i.doc.phases.send_s),
            drain_s: max(|i| i.doc.phases.drain_s),
            close_s: max(|i| i.doc.phases.close_s),
        },
        // Every worker's process, added: the cost of the whole generator.
        process: ProcessCost {
            cpu_user_s: total(|i| i.doc.process.cpu_user_s),
            cpu_sys_s: total(|i| i.doc.process.cpu_sys_s),
            cpu_send_drain_s: cpu_send,
            rss_start_bytes: totalb(|i| i.doc.process.rss_start_bytes),
            rss_connected_bytes: totalb(|i| i.doc.process.rss_connected_bytes),
            rss_drained_bytes: totalb(|i| i.doc.process.rss_drained_bytes),
            rss_end_bytes: totalb(|i| i.doc.process.rss_end_bytes),
            rss_peak_bytes: totalb(|i| i.doc.process.rss_peak_bytes),
            rss_per_connection_bytes: None,
            cpu_per_delivery_us: (!first.doc.embedded_server && delivered > 0)
                .then(|| cpu_send * 1e6 / delivered as f64),
        },
        server: None,
        generator: Default::default(),
        push: None,
        notes,
        start: None,
        histograms: Default::default(),
    };
    r.generator.cpu = generator_cpu(inputs);
    results::fill_stats(&mut r, &merged, peak_open);
    // A node short of CPU taints the merged figures even when the others were not: its own note
    // (above, by shard) says which.
    r.generator.starved |= inputs.iter().any(|i| i.doc.generator.starved);
    Ok(r)
}

/// The executor threads' CPU of every node while sending, added (threads and times add; the
/// span is the longest); absent when no node measured it. Nodes' quotas differ, so the merge has
/// none: each shard's line shows its own.
fn generator_cpu(inputs: &[Input]) -> Option<crate::outcome::generator::GeneratorCpu> {
    let cpus: Vec<_> = inputs.iter().filter_map(|i| i.doc.generator.cpu.as_ref()).collect();
    if cpus.is_empty() {
        return None;
    }
    let mut c = crate::outcome::generator::GeneratorCpu::default();
    for x in cpus {
        c.threads += x.threads;
        c.span_ms = c.span_ms.max(x.span_ms);
        c.thread_ms += x.thread_ms;
        c.busy_ms += x.busy_ms;
        c.run_queue_wait_ms += x.run_queue_wait_ms;
    }
    if c.thread_ms > 0.0 {
        c.busy_percent = 100.0 * c.busy_ms / c.thread_ms;
        c.run_queue_wait_percent = 100.0 * c.run_queue_wait_ms / c.thread_ms;
    }
    Some(c)
}

/// A shard's own delay for its summary line: send lag p99 and run-queue wait, and STARVED when
/// that node noted it was short of CPU or sent late.
fn generator_part(g: &crate::outcome::generator::Generator) -> String {
    let wait = g.cpu.as_ref().map(|c| format!("  cpu wait {:.1} %", c.run_queue_wait_percent)).unwrap_or_default();
    let starved = if g.starved { "  STARVED (herd's own delay)" } else { "" };
    format!("  send lag p99 {:.3} ms{wait}{starved}", g.send_lag.p99_ms)
}

/// One line per shard for the summary.
pub fn shard_lines(inputs: &[Input]) -> String {
    let mut sorted: Vec<&Input> = inputs.iter().collect();
    sorted.sort_by_key(|i| i.shard.index);
    let mut s = String::new();
    for i in sorted {
        let (c, m) = (&i.doc.connections, &i.doc.messages);
        let p99 = crate::outcome::histcodec::decode(&i.doc.histograms)
            .map(|h| results::latency(&h.corrected).p99_ms)
            .unwrap_or(f64::NAN);
        let late = i.doc.start.as_ref().filter(|s| s.late_s > 0.0).map(|s| format!("  late {:.3}s", s.late_s));
        s.push_str(&format!(
            "shard {:<7} {}  run {}  established {}  sent {}  expected {}  delivered {}  missed {}  p99 {:.3} ms  {}{}{}\n",
            i.shard.to_string(),
            i.name,
            i.doc.run_id,
            c.established,
            m.sent,
            m.expected,
            m.delivered,
            m.expected.saturating_sub(m.delivered),
            p99,
            i.doc.outcome,
            late.unwrap_or_default(),
            generator_part(&i.doc.generator)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::{encode_histograms, parse};
    use serde_json::json;

    /// A results document of shard `shard` with `sent` messages delivered to 2 members each.
    fn doc(shard: &str, sent: u64, lat_us: &[u64]) -> String {
        let mut h = Histos::default();
        for &us in lat_us {
            h.corrected.record(us).unwrap();
            h.uncorrected.record(us).unwrap();
        }
        h.connect.record(500).unwrap();
        json!({
            "herd_version": "0.1.0", "run_id": format!("r{shard}"), "started_at_unix_s": 100.0,
            "scenario": {"conversations": 9, "members": 3, "senders": 1, "rate": 1.0, "size": 128,
                         "duration": 2.0, "drain": 1.0, "url": null, "seed": 7, "shard": shard},
            "target": "ws://x", "embedded_server": false, "outcome": "completed",
            "connections": {"attempted": 9, "established": 9, "failed": 0, "closed": 9, "peak_open": 9},
            "messages": {"sent": sent, "expected": 2 * sent, "delivered": 2 * sent - 1},
            "errors": {"reset": 1},
            "duration_s": 5.0, "phases": {}, "process": {}, "notes": ["a note"],
            "histograms": encode_histograms(&h),
        })
        .to_string()
    }

    fn inputs(shards: &[(&str, u64)]) -> Vec<Input> {
        shards
            .iter()
            .enumerate()
            .map(|(k, (s, sent))| parse(&format!("f{k}.json"), &doc(s, *sent, &[1000 * (k as u64 + 1)])).unwrap())
            .collect()
    }

    #[test]
    fn counters_add_and_percentiles_come_from_added_histograms() {
        let i = inputs(&[("0/3", 3), ("1/3", 3), ("2/3", 4)]);
        assert_eq!(check(&i, false).unwrap(), Vec::<u32>::new());
        let r = combine(&i, &[]).unwrap();
        assert_eq!((r.messages.sent, r.messages.expected, r.messages.delivered, r.messages.missed), (10, 20, 17, 3));
        assert_eq!(r.connections.established, 27);
        assert_eq!(r.errors["reset"], 3);
        // Latencies of 1, 2 and 3 ms: the merged p50 is 2 ms, which no averaging of the
        // shards' figures would be bound to give.
        assert_eq!(r.latency.corrected.count, 3);
        assert!((r.latency.corrected.p50_ms - 2.0).abs() < 0.01, "{:?}", r.latency.corrected);
        assert!((r.latency.corrected.max_ms - 3.0).abs() < 0.01);
        assert_eq!(r.connect.count, 3);
        assert_eq!(r.notes.len(), 3);
        assert!(r.notes[0].starts_with("shard 0/3: "));
        assert_eq!(r.run_id, "r0/3+r1/3+r2/3");
        assert_eq!(r.scenario.conversations, 9);
        let lines = shard_lines(&i);
        assert_eq!(lines.lines().count(), 3);
        assert!(lines.contains("shard 2/3") && lines.contains("f2.json"), "{lines}");
    }

    #[test]
    fn send_lag_merges_exactly_and_the_starved_node_is_named() {
        let shard = |s: &str, lag_us: u64, wait_ms: f64, starved: bool| {
            let mut h = Histos::default();
            h.corrected.record(1000).unwrap();
            h.send_lag.record_n(lag_us, 10).unwrap();
            let mut d: serde_json::Value = serde_json::from_str(&doc(s, 1, &[1000])).unwrap();
            d["histograms"] = serde_json::to_value(encode_histograms(&h)).unwrap();
            d["generator"] = json!({
                "send_lag": {"count": 10, "p99_ms": lag_us as f64 / 1e3},
                "cpu": {"threads": 2, "span_ms": 2000.0, "thread_ms": 4000.0, "busy_ms": 400.0,
                        "run_queue_wait_ms": wait_ms, "run_queue_wait_percent": wait_ms / 40.0},
                "starved": starved
            });
            parse(&format!("{s}.json"), &d.to_string()).unwrap()
        };
        let i = vec![shard("0/2", 200, 40.0, false), shard("1/2", 30_000, 2000.0, true)];
        let r = combine(&i, &[]).unwrap();
        assert_eq!(r.generator.send_lag.count, 20, "from the added histograms");
        assert!((r.generator.send_lag.p50_ms - 0.2).abs() < 0.01, "{:?}", r.generator.send_lag);
        assert!((r.generator.send_lag.max_ms - 30.0).abs() < 0.1, "{:?}", r.generator.send_lag);
        let cpu = r.generator.cpu.as_ref().unwrap();
        assert_eq!((cpu.threads, cpu.thread_ms, cpu.run_queue_wait_ms), (4, 8000.0, 2040.0));
        assert!((cpu.run_queue_wait_percent - 25.5).abs() < 1e-9);
        assert!(r.generator.starved);
        let lines = shard_lines(&i);
        let starved: Vec<&str> = lines.lines().filter(|l| l.contains("STARVED")).collect();
        assert_eq!(starved.len(), 1, "{lines}");
        assert!(starved[0].starts_with("shard 1/2") && starved[0].contains("cpu wait 50.0 %"), "{lines}");
    }

    #[test]
    fn refusals_name_the_files() {
        let e = check(&inputs(&[("0/3", 1), ("2/3", 1)]), false).unwrap_err();
        assert!(e.contains("1/3 missing") && e.contains("--partial"), "{e}");
        assert_eq!(check(&inputs(&[("0/3", 1), ("2/3", 1)]), true).unwrap(), vec![1]);
        let e = check(&inputs(&[("0/2", 1), ("0/2", 1)]), false).unwrap_err();
        assert!(e.contains("f0.json and f1.json are both shard 0/2"), "{e}");
        let e = check(&inputs(&[("0/2", 1), ("1/3", 1)]), false).unwrap_err();
        assert!(e.contains("f0.json") && e.contains("f1.json") && e.contains("different shard counts"), "{e}");
        let mut i = inputs(&[("0/2", 1), ("1/2", 1)]);
        i[1].scenario["rate"] = json!(2.0);
        let e = check(&i, false).unwrap_err();
        assert!(e.contains("different scenarios: scenario.rate is 1.0 and 2.0"), "{e}");
        // Per-process keys may differ.
        let mut i = inputs(&[("0/2", 1), ("1/2", 1)]);
        i[1].scenario["seed"] = json!(8);
        assert!(check(&i, false).is_ok());
    }

    #[test]
    fn files_that_are_not_herd_results_are_refused() {
        assert!(parse("a", "[1,2]").unwrap_err().contains("not herd's results"));
        assert!(parse("a", "{").unwrap_err().contains("not JSON"));
        let mut v: serde_json::Value = serde_json::from_str(&doc("0/1", 1, &[5])).unwrap();
        v.as_object_mut().unwrap().remove("histograms");
        assert!(parse("a", &v.to_string()).unwrap_err().contains("without histograms"));
        let mut v: serde_json::Value = serde_json::from_str(&doc("0/1", 1, &[5])).unwrap();
        v["scenario"]["shard"] = json!("5/2");
        assert!(parse("a", &v.to_string()).unwrap_err().contains("scenario.shard"));
        let mut v: serde_json::Value = serde_json::from_str(&doc("0/1", 1, &[5])).unwrap();
        v["errors"] = json!({"gremlins": 1});
        let i = parse("a", &v.to_string()).unwrap();
        assert!(combine(&[i], &[]).unwrap_err().contains("unknown error category \"gremlins\""));
    }
}
