//! `herd run`: drives a started load through its phases (connect, send, drain, close) and builds
//! the results. Ctrl-C stops sending and drains; a second one stops at once. Results are
//! written in every case. [`main`] is the subcommand: flags (with the scenario file's keys) to scenario, run, summary.

use crate::client::Phase;
use crate::config::args::RunArgs;
use crate::config::Scenario;
use crate::drive::load::{self, wait_until};
pub use crate::drive::load::{Hooks, Push, INTERVAL};
use crate::error::{Error, Result};
use crate::measure::clock::now_ns;
use crate::outcome::results::{self, Phases, ProcessCost, RunResult};
use crate::runtime::process::{self, Cpu};
use crate::runtime::signal::Signals;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How far ahead of the phase change the send schedules start.
const START_MARGIN: Duration = Duration::from_millis(20);
/// How long the driver waits for every core to acknowledge a phase change.
const PHASE_ACK_LIMIT: Duration = Duration::from_secs(5);

pub fn run(s: Scenario, signals: Signals, mut hooks: Hooks) -> Result<RunResult> {
    let started = Instant::now();
    let started_ns = now_ns();
    let started_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    load::check_fds(&s)?;
    // Open outputs first, so a bad path fails before any load is made.
    let out_file = match &s.out {
        // `--out -`: the caller prints the results as stdout's last line (Kubernetes pods' logs).
        Some(p) if p.as_os_str() == "-" => None,
        Some(p) => Some(crate::outcome::outfile::OutFile::create("--out", p)?),
        None => None,
    };
    let hdr_file = match &s.hdr_log {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| Error::Io(format!("--hdr-log {}: {e}", p.display())))?),
        None => None,
    };

    let meeting = hooks.push.as_ref().map(|p| crate::drive::shard::Meeting {
        pushgateway: p.config.url.clone(),
        job: p.config.job.clone(),
        run: p.config.grouping.iter().find(|(k, _)| k == "run").map(|(_, v)| v.clone()),
        group_url: p.config.group_url(),
    });
    let judge = std::mem::take(&mut hooks.judge);
    let halt = hooks.halt.take();
    let halted = || halt.as_ref().is_some_and(|h| h.load(Ordering::SeqCst));
    let watch = crate::drive::judging::Watch::add(&mut hooks, &judge);
    let load = load::start(&s, hooks, hdr_file)?;
    let control = load.control.clone();
    let cores = s.cores.len();
    let say = |m: String| {
        if !s.quiet {
            crate::errln!("herd: {m}");
        }
    };

    // A core that stopped beating (watchdog.rs) ends the run: waiting on it would be for ever.
    let stalled = || control.heartbeats.any_stalled();
    // Connect phase: until every core has attempted all its connections, or a signal. Bounded:
    // the ramp at the connect rate, plus one connect timeout, plus a margin; a core still
    // connecting then is noted and the run goes on.
    let t_connect = Instant::now();
    let ramp_limit = Duration::from_secs_f64(s.connections() as f64 / s.connect_rate.max(1.0))
        + s.connect_timeout
        + Duration::from_secs(30);
    let ramped = wait_until(ramp_limit, || {
        control.ramped.load(Ordering::SeqCst) >= cores || signals.count() > 0 || watch.crossed() || stalled()
    });
    let mut ramp_note = None;
    if !ramped {
        ramp_note = Some(format!(
            "{} of {cores} core(s) had not finished connecting after {ramp_limit:?} (the ramp at --connect-rate plus \
             --connect-timeout and 30 s); sending started without them",
            cores - control.ramped.load(Ordering::SeqCst).min(cores)
        ));
    }
    process::trim_heap();
    let rss_connected = process::rss_bytes();
    let connect_s = t_connect.elapsed().as_secs_f64();

    // A sharded run's workers start sending together.
    let start = if signals.count() == 0 {
        match crate::drive::shard::wait_to_send(&s, meeting.as_ref(), || control.open_total(), &signals, say) {
            Ok(r) => r,
            Err(e) => {
                // The load stops as it is dropped; the ready group goes now.
                let left = crate::drive::shard::leave(&s, meeting.as_ref());
                return Err(Error::Unavailable(left.map_or(e.clone(), |l| format!("{e}; {l}"))));
            }
        }
    } else {
        None
    };

    // Send phase. The schedules start a little ahead, so that every core has them before the
    // first message is due; a core that acknowledges later sends late, and that shows as latency.
    let cpu_send0 = Cpu::now();
    let t_send = Instant::now();
    let herd_cpu0 = crate::measure::cpu::threads(&control.heartbeats.tids());
    let mut late_cores = vec![];
    if signals.count() == 0 && !watch.crossed() && !stalled() {
        let start = now_ns() + START_MARGIN.as_nanos() as u64;
        control.send_start_ns.store(start, Ordering::SeqCst);
        late_cores = control.change_phase(Phase::Sending, PHASE_ACK_LIMIT, || signals.count() > 0);
        if s.rate > 0.0 {
            say(format!("sending for {:?} ({} open)", s.duration, control.open_total()));
        } else {
            say(format!("holding {} connections idle for {:?}", control.open_total(), s.duration));
        }
        let end = start + s.duration.as_nanos() as u64;
        wait_until(Duration::from_nanos(end.saturating_sub(now_ns())), || {
            signals.count() > 0 || watch.crossed() || stalled() || halted()
        });
    }
    let send_s = t_send.elapsed().as_secs_f64();
    let send_end_ns = now_ns();
    // The executor threads' CPU while sending: whether herd itself was short of it.
    let herd_cpu = match (herd_cpu0, crate::measure::cpu::threads(&control.heartbeats.tids())) {
        (Some((a, _)), Some((b, n))) => Some(crate::measure::cpu::CpuShare::between(a, b, n, (send_s * 1e9) as u64)),
        _ => None,
    };

    // Drain phase: until nothing is owed, the drain time is up, or a second signal.
    let t_drain = Instant::now();
    // Every core has stopped its schedules and published what it still owes before the drain
    // reads the pending counts.
    late_cores.extend(control.change_phase(Phase::Draining, PHASE_ACK_LIMIT, || signals.count() >= 2));
    if signals.count() > 0 {
        say("interrupted: stopped sending, draining (Ctrl-C again to stop at once)".into());
    } else if s.rate > 0.0 {
        say(format!("draining (up to {:?})", s.drain));
    }
    // With no connection open (and none coming back), nothing more can arrive.
    let nothing_can_arrive = || !s.reconnect && control.open_total() == 0;
    wait_until(s.drain.saturating_sub(t_drain.elapsed()), || {
        control.pending_total() == 0 || signals.count() >= 2 || nothing_can_arrive() || stalled()
    });
    let pending_at_drain_end = control.pending_total();
    let drain_s = t_drain.elapsed().as_secs_f64();
    let cpu_send = Cpu::now().since(cpu_send0);
    // What connections hold once messages went through them: measured once nothing is being
    // sent, as once connected (freed heap given back first; after the drain's time and CPU are
    // taken, so the trim counts in neither).
    process::trim_heap();
    let rss_drained = process::rss_bytes();

    // Close phase.
    let t_close = Instant::now();
    if signals.count() == 1 {
        say(format!("closing {} connection(s) (Ctrl-C again to stop at once)", control.open_total()));
    }
    let (url, embedded, run_id, rss_start) = (load.url.clone(), load.embedded, load.run_id, load.rss_start);
    let tls = load.tls.clone();
    // The cores still running stop at once after a second Ctrl-C, or when one core stalled.
    let finished = load.finish(&|| signals.count() >= 2 || control.heartbeats.any_stalled())?;
    // A second Ctrl-C during the closing handshakes also stops at once, and counts as one.
    let aborted = control.abort.load(Ordering::SeqCst);
    let close_s = t_close.elapsed().as_secs_f64();
    let (report, server_totals, push) = (finished.report, finished.server, finished.push);
    let stuck = finished.stuck;
    let left = crate::drive::shard::leave(&s, meeting.as_ref());

    let stalled_cores: Vec<results::StalledCore> = control
        .heartbeats
        .stalled()
        .into_iter()
        .map(|(core, ns)| results::StalledCore { core, last_seen_s: (ns.saturating_sub(started_ns)) as f64 / 1e9 })
        .collect();
    let outcome = if !stalled_cores.is_empty() {
        "stalled"
    } else if aborted {
        "aborted"
    } else if signals.count() > 0 {
        "interrupted"
    } else if watch.crossed() {
        "stopped_by_threshold"
    } else {
        "completed"
    };
    let m = &report.merged;
    let established = m.counters.conns_established;
    let delivered = m.counters.msgs_delivered;
    let cpu = Cpu::now();
    let mut notes = vec![];
    if !stuck.is_empty() {
        notes.push(format!(
            "core(s) {stuck:?} did not stop within {:?} of closing; their figures are from their last snapshot",
            load::CLOSE_GRACE
        ));
    }
    notes.extend(ramp_note);
    notes.extend(crate::cpu::note(&s));
    for c in &stalled_cores {
        notes.push(format!(
            "core {} stopped running {:.1}s into the run (no heartbeat for {:?}); the run was ended, and its \
             figures are from its last snapshot",
            c.core,
            c.last_seen_s,
            crate::runtime::watchdog::STALLED
        ));
    }
    let kicks = control.heartbeats.kicks();
    if kicks > 0 {
        notes.push(format!(
            "the watchdog woke an executor whose heartbeat was over {:?} late {kicks} time(s) (an overloaded \
             host, or an executor asleep through its wake-up)",
            crate::runtime::watchdog::LATE
        ));
    }
    late_cores.sort_unstable();
    late_cores.dedup();
    if !late_cores.is_empty() {
        notes.push(format!(
            "core(s) {late_cores:?} did not acknowledge a phase change within {PHASE_ACK_LIMIT:?} (an overloaded \
             host): their sends started or stopped late"
        ));
    }
    if let Some(late) = start.as_ref().filter(|st| st.late_s > 0.0) {
        notes.push(format!("connected {:.3}s after --start-at; started sending late", late.late_s));
    }
    notes.extend(left);
    if let Some(e) = &report.hdr_log_error {
        notes.push(format!("--hdr-log could not be written completely: {e}"));
    }
    if let Some(p) = push.as_ref().filter(|p| !p.final_push_ok) {
        notes.push(format!(
            "the final push to {} failed ({} of {} pushes failed): {}",
            p.url,
            p.pushes_failed,
            p.pushes_ok + p.pushes_failed,
            p.last_error.as_deref().unwrap_or("unknown error")
        ));
    }
    if let Some(t) = &tls {
        notes.extend(t.rejections.notes());
        if s.tls.insecure {
            notes.push("--insecure: server certificates were NOT verified (any certificate was accepted)".into());
        }
    }
    let mut r = RunResult {
        herd_version: env!("CARGO_PKG_VERSION"),
        run_id: format!("{run_id:08x}"),
        started_at_unix_s: started_unix,
        scenario: s.clone(),
        target: url,
        embedded_server: embedded,
        outcome: outcome.into(),
        stalled_cores,
        connections: Default::default(),
        messages: Default::default(),
        latency: Default::default(),
        connect: Default::default(),
        connect_phases: Default::default(),
        tls: tls.as_ref().map(|_| results::TlsSummary {
            insecure: s.tls.insecure,
            resumption: s.tls.resume,
            ..Default::default()
        }),
        errors: Default::default(),
        websocket: Default::default(),
        duration_s: started.elapsed().as_secs_f64(),
        phases: Phases { connect_s, send_s, drain_s, close_s },
        process: ProcessCost {
            cpu_user_s: cpu.user_s,
            cpu_sys_s: cpu.sys_s,
            cpu_send_drain_s: cpu_send.total_s(),
            rss_start_bytes: rss_start,
            rss_connected_bytes: rss_connected,
            rss_drained_bytes: rss_drained,
            rss_end_bytes: process::rss_bytes(),
            rss_peak_bytes: process::peak_rss_bytes(),
            rss_per_connection_bytes: (!embedded && established > 0)
                .then(|| rss_connected.saturating_sub(rss_start) as f64 / established as f64),
            cpu_per_delivery_us: (!embedded && delivered > 0).then(|| cpu_send.total_s() * 1e6 / delivered as f64),
        },
        server: server_totals,
        generator: Default::default(),
        push,
        notes,
        start,
        histograms: Default::default(),
        judged: Default::default(),
        shape: None,
        population: None,
    };
    r.generator.cpu = herd_cpu.map(|c| crate::outcome::generator::cpu(&c, crate::measure::cpu::quota_cores()));
    results::fill_stats(&mut r, m, report.peak_open);
    r.population = s.generated.as_ref().map(|p| crate::population::results::build(p, m));
    r.shape = crate::shape::results::build(
        s.shape.as_ref(),
        s.storm,
        s.churn,
        m,
        control.send_start_ns.load(Ordering::SeqCst),
        send_end_ns,
        now_ns(),
    );
    crate::drive::judging::conclude(&mut r, &judge, &watch, m, pending_at_drain_end);
    if let Some(f) = out_file {
        f.write_json(&r)?;
    }
    Ok(r)
}

/// [`main`], and with `--collect`, the error it ends with reported to the collector (its results,
/// when there are any, were posted inside [`main`]).
pub fn main_reporting(args: &RunArgs) -> Result<RunResult> {
    let r = main(args);
    if let Err(e) = &r {
        let shard = crate::config::shard::resolve(&args.shard, u32::MAX).ok().flatten();
        if let Some(w) = crate::collect::post::Worker::new(&args.collect, args.metrics.run_id.as_deref(), shard) {
            w.failed(e);
        }
    }
    r
}

/// `herd run` from parsed flags: resolves the scenario, runs, prints the summary (and the
/// results line for `--out -`).
pub fn main(args: &RunArgs) -> Result<RunResult> {
    let s = crate::cpu::resolve(args, &crate::cpu::Budget::detect())?;
    if let Some(n) = crate::cpu::note(&s).filter(|_| !s.quiet) {
        crate::errln!("herd: {n}");
    }
    let judge = crate::outcome::thresholds::resolve(&args.thresholds)?;
    // Created before the run, so a bad path fails before any load is made.
    let report = match args.report.as_ref() {
        Some(p) => Some((p.clone(), crate::report::create(p, "--report")?)),
        None => None,
    };
    let signals = Signals::install()?;
    let shard = s.shard;
    let collect = crate::collect::post::Worker::new(&args.collect, args.metrics.run_id.as_deref(), shard);
    if let Some(w) = &collect {
        w.started();
    }
    let push = args.metrics.push_config(shard.map(|x| x.index as usize)).map(|mut config| {
        // Workers of one job push to the same Pushgateway: the shard keeps their groups apart.
        config.grouping.extend(shard.map(|x| ("shard".to_string(), x.index.to_string())));
        Push { config, prefix: args.metrics.metrics_prefix.clone() }
    });
    let r = match run(s, signals, Hooks { push, judge, ..Default::default() }) {
        Ok(r) => r,
        Err(e) => {
            // No run, no report: do not leave an empty file behind.
            if let Some((path, _)) = &report {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    crate::out!("{}", results::summary(&r));
    let posted = collect.as_ref().map(|w| w.results(&r, &|m| crate::errln!("herd: {m}")));
    if let Some((path, f)) = report {
        let doc = serde_json::to_value(&r).map_err(|e| Error::Software(format!("results: {e}")))?;
        crate::report::write(f, &doc, None).map_err(|e| Error::Io(format!("--report {}: {e}", path.display())))?;
    }
    if r.scenario.out.as_deref().is_some_and(|p| p.as_os_str() == "-") {
        let line = serde_json::to_string(&r).map_err(|e| Error::Software(format!("--out -: {e}")))?;
        crate::out!("{line}\n");
    }
    if let Some(Err(e)) = posted {
        // The results are not lost: stdout's last line holds them (`herd merge` reads it).
        if r.scenario.out.as_deref().is_none_or(|p| p.as_os_str() != "-") {
            crate::out!("{}\n", serde_json::to_string(&r).unwrap_or_default());
        }
        return Err(e);
    }
    if r.connections.established == 0 && r.connections.attempted > 0 {
        let errs: Vec<String> = r.errors.iter().filter(|(_, &n)| n > 0).map(|(k, n)| format!("{k} {n}")).collect();
        return Err(Error::Unavailable(format!(
            "no connection to {} could be established ({}); results were written",
            r.target,
            errs.join(", ")
        )));
    }
    if r.scenario.rate > 0.0 && r.messages.sent == 0 && r.outcome == "completed" {
        return Err(Error::Unavailable("nothing was sent (see the notes); results were written".into()));
    }
    let crossed: Vec<&str> = r.judged.thresholds.iter().filter(|v| !v.passed).map(|v| v.threshold.as_str()).collect();
    if !crossed.is_empty() {
        return Err(Error::Crossed(format!("threshold crossed: {}", crossed.join(", "))));
    }
    Ok(r)
}
