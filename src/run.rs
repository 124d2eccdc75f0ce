//! `herd run`: the orchestrator. It checks limits, starts the embedded server when no URL is
//! given, starts the cores and the reporter, moves the run through its phases (connect, send,
//! drain, close), and builds the results. Ctrl-C stops sending and drains; a second one stops at
//! once. Results are written in every case.

use crate::client::{self, connect::Target, Control, CorePlan, Phase};
use crate::clock::now_ns;
use crate::error::{Error, Result};
use crate::limits;
use crate::process::{self, Cpu};
use crate::reporter::{self, Observer, ReporterConfig};
use crate::results::{self, Phases, ProcessCost, RunResult};
use crate::scenario::Scenario;
use crate::server::{Server, ServerConfig};
use crate::signal::Signals;
use crate::template::UrlTemplate;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Snapshot and progress interval.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// tungstenite's read chunk per connection.
pub const READ_BUFFER: usize = 1024;

/// Hooks a caller may add to a run.
#[derive(Default)]
pub struct Hooks {
    /// Called by the reporter once per interval and at the end.
    pub observers: Vec<Observer>,
}

pub fn run(s: Scenario, signals: Signals, hooks: Hooks) -> Result<RunResult> {
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    crate::clock::origin();
    let embedded = s.url.is_none();
    let nofile = limits::raise_nofile();
    let conns = s.connections();
    let (needed, what) = if embedded {
        (2 * conns + limits::SPARE_FDS, format!("{conns} client + {conns} embedded-server connections + spare"))
    } else {
        (conns + limits::SPARE_FDS, format!("{conns} connections + spare"))
    };
    limits::check_nofile(nofile, needed, &what)?;

    // Open outputs first, so a bad path fails before any load is made.
    let out_file = match &s.out {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| Error::Io(format!("--out {}: {e}", p.display())))?),
        None => None,
    };
    let hdr_file = match &s.hdr_log {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| Error::Io(format!("--hdr-log {}: {e}", p.display())))?),
        None => None,
    };

    let server = if embedded {
        Some(Server::start(ServerConfig::embedded(s.server_threads as usize))?)
    } else {
        None
    };
    let url = match (&s.url, &server) {
        (Some(u), _) => u.clone(),
        (None, Some(sv)) => format!("ws://{}/conv/{{conv}}?user={{user}}", sv.addr),
        (None, None) => unreachable!("embedded server exists when no URL is given"),
    };
    let template = UrlTemplate::parse(&url).map_err(|e| Error::Usage(format!("--url: {e}")))?;
    let mut target = Target::new(template, s.max_frame, READ_BUFFER)
        .map_err(|e| Error::Unavailable(format!("--url {url}: cannot resolve the host: {e}")))?;
    target.protocol = s.protocol.clone();
    if let Some(p) = &s.protocol.tokens {
        target.tokens = crate::protocol::tokens::Tokens::load(p).map_err(Error::Usage)?;
    }
    let run_id = crate::pacing::splitmix64(s.seed ^ now_ns()) as u32;
    let cores = s.cores.len();
    let control = Arc::new(Control::new(cores));
    let (tx, rx) = std::sync::mpsc::channel();
    let reporter = reporter::spawn(
        ReporterConfig { cores, interval: INTERVAL, quiet: s.quiet, hdr_log: hdr_file },
        rx,
        control.clone(),
        hooks.observers,
    );
    let say = |m: String| {
        if !s.quiet {
            eprintln!("herd: {m}");
        }
    };

    let rss_start = process::rss_bytes();
    let plans: Vec<CorePlan> = client::assign(s.conversations, cores)
        .into_iter()
        .enumerate()
        .map(|(idx, convs)| CorePlan {
            idx,
            cpu: s.cores[idx],
            convs,
            members: s.members,
            senders: s.senders,
            rate: s.rate,
            size: s.size,
            duration: s.duration,
            connect_rate: s.connect_rate / cores as f64,
            connect_timeout: s.connect_timeout,
            run_id,
            seed: s.seed,
            interval: INTERVAL,
        })
        .collect();
    say(format!(
        "run {run_id:08x}: connecting {conns} connections to {url} on {cores} core(s){}",
        if embedded { " (embedded server)" } else { "" }
    ));
    let handles = match client::start(plans, Arc::new(target), control.clone(), tx) {
        Ok(h) => h,
        Err(e) => {
            if let Some(sv) = server {
                sv.stop();
            }
            return Err(e);
        }
    };

    // Connect phase: until every core has attempted all its connections, or a signal.
    let t_connect = Instant::now();
    while control.ramped.load(Ordering::SeqCst) < cores && signals.count() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let rss_connected = process::rss_bytes();
    let connect_s = t_connect.elapsed().as_secs_f64();

    // Send phase.
    let cpu_send0 = Cpu::now();
    let t_send = Instant::now();
    if signals.count() == 0 {
        let start = now_ns() + 20_000_000;
        control.send_start_ns.store(start, Ordering::SeqCst);
        control.set_phase(Phase::Sending);
        if s.rate > 0.0 {
            say(format!("sending for {:?} ({} open)", s.duration, control.open_total()));
        } else {
            say(format!("holding {} connections idle for {:?}", control.open_total(), s.duration));
        }
        let end = Instant::now() + Duration::from_millis(20) + s.duration;
        while Instant::now() < end && signals.count() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let send_s = t_send.elapsed().as_secs_f64();

    // Drain phase: until nothing is owed, the drain time is up, or a second signal.
    let t_drain = Instant::now();
    control.set_phase(Phase::Draining);
    if signals.count() > 0 {
        say("interrupted: stopped sending, draining (Ctrl-C again to stop at once)".into());
    } else if s.rate > 0.0 {
        say(format!("draining (up to {:?})", s.drain));
    }
    // Give every core a tick to publish its pending count after sending stopped.
    std::thread::sleep(Duration::from_millis(20));
    while t_drain.elapsed() < s.drain && control.pending_total() > 0 && signals.count() < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let drain_s = t_drain.elapsed().as_secs_f64();
    let cpu_send = Cpu::now().since(cpu_send0);

    // Close phase.
    let t_close = Instant::now();
    let aborted = signals.count() >= 2;
    if aborted {
        control.abort.store(true, Ordering::SeqCst);
    }
    control.set_phase(Phase::Closing);
    for h in handles {
        if h.join().is_err() {
            eprintln!("herd: an executor failed; its last statistics may be missing");
        }
    }
    let report = reporter.join().map_err(|_| Error::Software("the reporter thread failed".into()))?;
    let close_s = t_close.elapsed().as_secs_f64();
    let server_totals = server.map(|sv| sv.stop());

    let outcome = if aborted {
        "aborted"
    } else if signals.count() > 0 {
        "interrupted"
    } else {
        "completed"
    };
    let m = &report.merged;
    let established = m.counters.conns_established;
    let delivered = m.counters.msgs_delivered;
    let cpu = Cpu::now();
    let mut notes = vec![];
    if let Some(e) = &report.hdr_log_error {
        notes.push(format!("--hdr-log could not be written completely: {e}"));
    }
    let mut r = RunResult {
        herd_version: env!("CARGO_PKG_VERSION"),
        run_id: format!("{run_id:08x}"),
        started_at_unix_s: started_unix,
        scenario: s.clone(),
        target: url,
        embedded_server: embedded,
        outcome: outcome.into(),
        connections: Default::default(),
        messages: Default::default(),
        latency: Default::default(),
        connect: Default::default(),
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
            rss_end_bytes: process::rss_bytes(),
            rss_peak_bytes: process::peak_rss_bytes(),
            rss_per_connection_bytes: (!embedded && established > 0)
                .then(|| rss_connected.saturating_sub(rss_start) as f64 / established as f64),
            cpu_per_delivery_us: (!embedded && delivered > 0).then(|| cpu_send.total_s() * 1e6 / delivered as f64),
        },
        server: server_totals,
        notes,
    };
    results::fill_stats(&mut r, m, report.peak_open);
    if let Some(f) = out_file {
        write_json(f, &r).map_err(|e| Error::Io(format!("--out: {e}")))?;
    }
    Ok(r)
}

fn write_json(f: std::fs::File, r: &RunResult) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(f);
    serde_json::to_writer_pretty(&mut w, r)?;
    w.write_all(b"\n")?;
    w.flush()
}
