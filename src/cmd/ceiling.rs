//! `herd ceiling`: finds how many connections a target (and this host) holds. It opens idle (or
//! lightly chatting) connections in steps, holds each step, and stops at the first step whose
//! connect errors or handshake p99 cross a threshold, or at a limit. The highest stable count is
//! the open connections after the last step that passed.

use crate::client::Phase;
use crate::config::args::RunArgs;
use crate::config::units;
use crate::drive::load::{self, wait_until, Hooks};
use crate::error::{Error, Result};
use crate::measure::stats::{new_histogram, ConnectPhase, Counters, ErrorKind};
use crate::runtime::process;
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct CeilingArgs {
    /// Connections added per step
    #[arg(long, default_value = "1000", value_parser = units::parse_count)]
    pub step: u64,
    /// Stop at this many connections [default: what the fd limit allows]
    #[arg(long, value_parser = units::parse_count)]
    pub max: Option<u64>,
    /// How long each step is held before it is judged
    #[arg(long, default_value = "2s", value_parser = units::parse_duration)]
    pub hold: Duration,
    /// A step fails when more than this percentage of its connections fail or are dropped
    #[arg(long, default_value = "1", value_parser = parse_percent)]
    pub until_errors: f64,
    /// A step fails when its connect (TCP + handshake) p99 is above this
    #[arg(long, default_value = "1s", value_parser = units::parse_duration)]
    pub handshake_p99: Duration,
    /// The run options (`herd run --help`): target, protocol, TLS, sockets, executors, and
    /// `--out` for the ceiling's JSON. Three defaults differ, see [`run_option_defaults`].
    #[command(flatten)]
    pub run: RunArgs,
}

/// The ceiling's own defaults for shared run options, each a deliberate override: rooms of two
/// (`--members`, so every connection is someone's peer and a step adds whole rooms), idle
/// connections (`--rate 0`: a ceiling counts connections), and a shorter `--connect-timeout`
/// (a step's connects are judged within its hold).
pub const DEFAULT_MEMBERS: &str = "2";
pub const DEFAULT_RATE: &str = "0";
pub const DEFAULT_CONNECT_TIMEOUT: &str = "5s";

/// Applies [`DEFAULT_MEMBERS`], [`DEFAULT_RATE`] and [`DEFAULT_CONNECT_TIMEOUT`] to the
/// ceiling's command (its `--help` shows them).
pub fn run_option_defaults(c: clap::Command) -> clap::Command {
    c.mut_arg("members", |a| a.default_value(DEFAULT_MEMBERS).help("Members per conversation (herd ceiling's default)"))
        .mut_arg("rate", |a| {
            a.default_value(DEFAULT_RATE).help("Messages per second per sender while holding (0: idle connections)")
        })
        .mut_arg("connect_timeout", |a| {
            a.default_value(DEFAULT_CONNECT_TIMEOUT)
                .help("Limit on TCP connect plus WebSocket handshake per connection")
        })
}

/// Run options a ceiling sets itself or has no use for: giving one is an error, not ignored.
fn refuse_unused(r: &RunArgs) -> Result<()> {
    let unused = [
        ("conversations", r.conversations.is_some()),
        ("duration", r.duration.is_some()),
        ("drain", r.drain.is_some()),
        ("stage", !r.shape.stages.is_empty()),
        ("churn", r.shape.churn.is_some()),
        ("storm", r.shape.storm.is_some()),
        ("hdr-log", r.hdr_log.is_some()),
        ("report", r.report.is_some()),
        ("threshold", !r.thresholds.thresholds.is_empty()),
        ("shard", r.shard.shard.is_some() || r.shard.shards.is_some()),
        ("start-at", r.shard.start_at.is_some() || r.shard.start_when.is_some()),
    ];
    match unused.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(Error::Usage(format!(
            "--{flag}: herd ceiling sizes and holds its own steps (--step, --max, --hold); it takes no --{flag}"
        ))),
        None => Ok(()),
    }
}

fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.trim().trim_end_matches('%').parse().map_err(|_| format!("'{s}' is not a percentage"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("'{s}' is not between 0 and 100"));
    }
    Ok(v)
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Step {
    pub target: u64,
    pub open: u64,
    pub attempted: u64,
    pub failed: u64,
    pub dropped: u64,
    pub connect_p99_ms: f64,
    /// The two parts of a connect, timed apart: TCP connect() and the WebSocket upgrade.
    pub tcp_connect_p99_ms: f64,
    pub ws_upgrade_p99_ms: f64,
    pub rss_bytes: u64,
    pub passed: bool,
    /// Share of the step herd's executor threads spent ready but waiting for a CPU (absent where
    /// the kernel does not say).
    pub herd_cpu_wait_percent: Option<f64>,
}

#[derive(Serialize, Debug, Clone)]
pub struct CeilingResult {
    pub target: String,
    pub embedded_server: bool,
    /// Open connections after the last step that passed.
    pub highest_stable: u64,
    /// What ended the search: `errors`, `handshake_p99`, `local_ports` (slow connects from
    /// this host's port search, not the server), `max`, `fd_limit`, `memory`, `interrupted`.
    pub stopped_by: String,
    /// The same in words, with the dominating error category when errors stopped it.
    pub reason: String,
    pub steps: Vec<Step>,
    pub errors: std::collections::BTreeMap<String, u64>,
    /// (RSS with the stable connections − RSS before connecting) / highest stable.
    pub user_bytes_per_connection: Option<f64>,
    /// Growth of the kernel's slab memory per connection (on loopback both ends' sockets).
    pub kernel_slab_bytes_per_connection: Option<f64>,
    /// /proc/net/sockstat at the highest stable count.
    pub sockstat: String,
}

/// Whom a step's slow connects are on (pure): `(stopped_by, reason)`. When TCP connect() is
/// the slow part, from one source address, with at least about half of the local port range in
/// use, it is this host's port search (Linux takes ports of one parity first and searches the
/// rest slowly), not the server.
pub fn slow_connects(step: &Step, limit: Duration, sources: usize, port_range: Option<(u64, u64)>) -> (String, String) {
    let parts = format!(
        "connect p99 {:.1} ms over {limit:?} (TCP connect p99 {:.1} ms, WebSocket upgrade p99 {:.1} ms)",
        step.connect_p99_ms, step.tcp_connect_p99_ms, step.ws_upgrade_p99_ms
    );
    let tcp_slow = step.tcp_connect_p99_ms >= step.ws_upgrade_p99_ms;
    let ports = port_range.map(|(lo, hi)| hi.saturating_sub(lo) + 1);
    match ports {
        Some(n) if tcp_slow && sources == 1 && step.open.max(step.target) * 10 >= n * 4 => (
            "local_ports".into(),
            format!(
                "{parts}: connect() on this host, searching for a free local port with {} connections from one \
                 source address ({n} ports in net.ipv4.ip_local_port_range); not the server. Use more source \
                 addresses (--source-ip, e.g. 127.0.0.1-127.0.0.8 on loopback) or a wider port range \
                 (herd doctor)",
                step.open.max(step.target)
            ),
        ),
        _ if tcp_slow => (
            "handshake_p99".into(),
            format!("{parts}: TCP connects are slow (the server's accept queue, or the network)"),
        ),
        _ => ("handshake_p99".into(), format!("{parts}: WebSocket upgrades are slow (the server)")),
    }
}

/// This host's `net.ipv4.ip_local_port_range`.
fn local_port_range() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    crate::doctor::parse::parse_port_range(&text).ok()
}

/// What stopped a failing step (pure): the error category that dominates it, in words.
pub fn reason_for(errors: &Counters) -> String {
    let top = ErrorKind::ALL.iter().copied().max_by_key(|k| errors.errors_of(*k)).filter(|k| errors.errors_of(*k) > 0);
    match top {
        Some(ErrorKind::AddrNotAvailable) => "no free local port (ephemeral range used up; add --source-ip)".into(),
        Some(ErrorKind::ConnectRefused) => "the server refused connections".into(),
        Some(ErrorKind::HandshakeRejected) => "the server refused upgrades (HTTP error status)".into(),
        Some(ErrorKind::ConnectTimeout) => "connects or handshakes timed out".into(),
        Some(ErrorKind::ConnectOther) => "local resources ran out (fd limit or memory)".into(),
        Some(k) => format!("connections failed ({})", k.name()),
        None => "connections were dropped by the server".into(),
    }
}

pub fn main(a: &CeilingArgs) -> Result<CeilingResult> {
    if a.step == 0 {
        return Err(Error::Usage("--step: must be at least 1".into()));
    }
    refuse_unused(&a.run)?;
    let nofile = crate::runtime::limits::raise_nofile();
    let per_conn_fds = if a.run.url.is_none() { 2 } else { 1 };
    let fd_cap = nofile.soft.saturating_sub(crate::runtime::limits::SPARE_FDS) / per_conn_fds;
    let max = a.max.unwrap_or(fd_cap).min(fd_cap);
    let capped_by_fds = a.max.is_none_or(|m| m > fd_cap);
    // clap gives the ceiling's default (`run_option_defaults`) when --members is not.
    let members = a.run.members.unwrap_or(2).max(2);
    let run_args = RunArgs {
        conversations: Some(
            u32::try_from(max.div_ceil(members as u64)).map_err(|_| Error::Usage("--max: too large".into()))?,
        ),
        members: Some(members),
        duration: Some(Duration::from_secs(365 * 24 * 3600)),
        drain: Some(Duration::ZERO),
        ..a.run.clone()
    };
    let s = crate::cpu::resolve(&run_args, &crate::cpu::Budget::detect())?;
    let out_file = match &s.out {
        Some(p) => Some(crate::outcome::outfile::OutFile::create("--out", p)?),
        None => None,
    };
    let signals = crate::runtime::signal::Signals::install()?;

    // The reporter's latest merged counters and connect histograms (whole, TCP, upgrade), for
    // judging each step.
    type Latest = (Counters, [Histogram<u64>; 3]);
    let latest: Arc<Mutex<Latest>> =
        Arc::new(Mutex::new((Counters::default(), std::array::from_fn(|_| new_histogram()))));
    let l = latest.clone();
    let observer = Box::new(move |m: &crate::measure::stats::Merged, _| {
        if let Ok(mut g) = l.lock() {
            let ph = &m.total.phases;
            *g = (
                m.counters.clone(),
                [
                    m.total.connect.clone(),
                    ph[ConnectPhase::Tcp as usize].clone(),
                    ph[ConnectPhase::Upgrade as usize].clone(),
                ],
            );
        }
    });
    let slab0 = slab_bytes();
    let load = load::start(&s, Hooks { observers: vec![observer], gated: true, ..Default::default() }, None)?;
    let control = load.control.clone();
    let rss0 = load.rss_start;
    control.send_start_ns.store(crate::measure::clock::now_ns() + 20_000_000, std::sync::atomic::Ordering::SeqCst);
    control.set_phase(Phase::Sending);

    let mut steps: Vec<Step> = vec![];
    let mut prev: Latest = (Counters::default(), std::array::from_fn(|_| new_histogram()));
    let mut stable = 0u64;
    let mut stable_rss = rss0;
    let mut stable_slab = slab0;
    let mut stable_sockstat = String::new();
    let (stopped_by, reason) = loop {
        if signals.count() > 0 {
            break ("interrupted".to_string(), "interrupted by a signal".to_string());
        }
        let target = (steps.last().map_or(0, |st: &Step| st.target) + a.step).min(max);
        let cpu0 = (crate::measure::cpu::threads(&control.heartbeats.tids()), std::time::Instant::now());
        control.allow(target);
        // Every connection of the step has connected or failed (the cores publish this), and
        // the reporter has folded it.
        let budget =
            s.connect_timeout + Duration::from_secs_f64(a.step as f64 / s.connect_rate) + Duration::from_secs(5);
        wait_until(budget, || {
            let attempted = control.attempted_total();
            attempted >= target.saturating_sub(s.cores.len() as u64) && control.settled_total() >= attempted
        });
        wait_until(a.hold, || signals.count() > 0);
        let attempted_now = control.attempted_total();
        wait_until(Duration::from_secs(3), || {
            latest.lock().map(|g| g.0.conns_attempted >= attempted_now).unwrap_or(true)
        });
        let (cur, hist) = latest.lock().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone());
        // This step's part of each histogram, and its p99 in µs.
        let p99s: Vec<u64> = hist
            .iter()
            .zip(prev.1.iter())
            .map(|(h, p)| {
                let mut d = h.clone();
                let _ = d.subtract(p);
                if d.is_empty() {
                    0
                } else {
                    d.value_at_quantile(0.99)
                }
            })
            .collect();
        let (p99_us, tcp_p99_us, upgrade_p99_us) = (p99s[0], p99s[1], p99s[2]);
        let attempted = cur.conns_attempted - prev.0.conns_attempted;
        let failed = cur.conns_failed - prev.0.conns_failed;
        let dropped = cur.conns_closed_by_peer - prev.0.conns_closed_by_peer;
        let mut step_errors = cur.clone();
        for (e, p) in step_errors.errors.iter_mut().zip(prev.0.errors.iter()) {
            *e -= p;
        }
        let bad_pct = if attempted == 0 { 0.0 } else { (failed + dropped) as f64 * 100.0 / attempted as f64 };
        let open = control.open_total();
        let herd_cpu_wait_percent = match (cpu0.0, crate::measure::cpu::threads(&control.heartbeats.tids())) {
            (Some((a, _)), Some((b, n))) => {
                let wall = cpu0.1.elapsed().as_nanos() as u64;
                Some(crate::measure::cpu::CpuShare::between(a, b, n, wall).wait_share() * 100.0)
            }
            _ => None,
        };
        let mut step = Step {
            target,
            open,
            attempted,
            failed,
            dropped,
            connect_p99_ms: p99_us as f64 / 1000.0,
            tcp_connect_p99_ms: tcp_p99_us as f64 / 1000.0,
            ws_upgrade_p99_ms: upgrade_p99_us as f64 / 1000.0,
            rss_bytes: process::rss_bytes(),
            passed: false,
            herd_cpu_wait_percent,
        };
        if !s.quiet {
            crate::errln!(
                "herd ceiling: step to {target}: {open} open, {failed} of {attempted} failed, {dropped} dropped, connect p99 {:.2} ms",
                step.connect_p99_ms
            );
        }
        let verdict = if bad_pct > a.until_errors {
            Some(("errors".to_string(), format!("{bad_pct:.1}% of the step failed: {}", reason_for(&step_errors))))
        } else if Duration::from_micros(p99_us) > a.handshake_p99 {
            Some(slow_connects(&step, a.handshake_p99, s.source_ips.len().max(1), local_port_range()))
        } else if mem_available_fraction().is_some_and(|f| f < 0.05) {
            Some(("memory".into(), "less than 5% of memory is available".into()))
        } else {
            None
        };
        let verdict = verdict.map(|(by, why)| (by, why + &herd_short_of_cpu(step.herd_cpu_wait_percent)));
        prev = (cur, hist);
        step.passed = verdict.is_none();
        steps.push(step);
        if let Some(v) = verdict {
            break v;
        }
        stable = open;
        process::trim_heap();
        stable_rss = process::rss_bytes();
        stable_slab = slab_bytes();
        stable_sockstat = sockstat();
        if target >= max {
            break if capped_by_fds {
                ("fd_limit".into(), format!("RLIMIT_NOFILE {} allows {max} connections in this process", nofile.soft))
            } else {
                ("max".into(), format!("--max {max} reached"))
            };
        }
    };
    let (target, embedded) = (load.url.clone(), load.embedded);
    let finished = load.finish(&|| signals.count() >= 2)?;
    let per = |bytes: Option<u64>| (stable > 0).then_some(()).and(bytes).map(|b| b as f64 / stable as f64);
    let r = CeilingResult {
        target,
        embedded_server: embedded,
        highest_stable: stable,
        stopped_by,
        reason,
        steps,
        errors: crate::outcome::results::errors(&finished.report.merged.counters),
        user_bytes_per_connection: per(Some(stable_rss.saturating_sub(rss0))),
        kernel_slab_bytes_per_connection: per(stable_slab.zip(slab0).map(|(b, a)| b.saturating_sub(a))),
        sockstat: stable_sockstat,
    };
    if let Some(f) = out_file {
        f.write_json(&r)?;
    }
    Ok(r)
}

/// What a failed step's reason adds when herd's own threads were short of CPU during it (pure):
/// the failure may be herd's, not the target's.
pub fn herd_short_of_cpu(wait_percent: Option<f64>) -> String {
    match wait_percent {
        Some(w) if w > crate::outcome::generator::RUN_QUEUE_WAIT_BOUND_PERCENT => format!(
            "; herd itself was short of CPU during this step (its threads waited for a CPU {w:.0} % of it), so \
             the failure may be herd's, not the target's: use more cores or fewer connections per node"
        ),
        _ => String::new(),
    }
}

/// `Slab:` of /proc/meminfo, in bytes.
fn slab_bytes() -> Option<u64> {
    meminfo("Slab:")
}

fn mem_available_fraction() -> Option<f64> {
    Some(meminfo("MemAvailable")? as f64 / meminfo("MemTotal")? as f64)
}

fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    crate::doctor::parse::parse_meminfo(&text, key).ok()
}

fn sockstat() -> String {
    std::fs::read_to_string("/proc/net/sockstat")
        .map(|t| t.lines().filter(|l| l.starts_with("TCP") || l.starts_with("sockets")).collect::<Vec<_>>().join("; "))
        .unwrap_or_default()
}

/// The summary printed on stdout.
pub fn summary(r: &CeilingResult) -> String {
    let mut s = format!(
        "herd ceiling — {}\nhighest stable: {} connections\nstopped by:     {} ({})\n",
        r.target, r.highest_stable, r.stopped_by, r.reason
    );
    if let Some(b) = r.user_bytes_per_connection {
        s.push_str(&format!("generator user-space memory: {b:.0} bytes/connection\n"));
    }
    if let Some(b) = r.kernel_slab_bytes_per_connection {
        s.push_str(&format!("kernel slab growth: {b:.0} bytes/connection (both ends on loopback)\n"));
    }
    if !r.sockstat.is_empty() {
        s.push_str(&format!("sockstat: {}\n", r.sockstat));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_dominant_error() {
        let mut c = Counters::default();
        assert!(reason_for(&c).contains("dropped"));
        c.error(ErrorKind::HandshakeRejected);
        c.error(ErrorKind::HandshakeRejected);
        c.error(ErrorKind::ConnectTimeout);
        assert!(reason_for(&c).contains("refused upgrades"));
        let mut p = Counters::default();
        p.error(ErrorKind::AddrNotAvailable);
        assert!(reason_for(&p).contains("--source-ip"));
    }

    #[test]
    fn slow_connects_from_one_address_near_half_the_ports_are_blamed_on_this_host() {
        let step = |open: u64, tcp: f64, upgrade: f64| Step {
            target: open,
            open,
            attempted: 4000,
            failed: 0,
            dropped: 0,
            connect_p99_ms: tcp + upgrade,
            tcp_connect_p99_ms: tcp,
            ws_upgrade_p99_ms: upgrade,
            rss_bytes: 0,
            passed: false,
            herd_cpu_wait_percent: None,
        };
        let limit = Duration::from_secs(1);
        let range = Some((32768, 60999)); // 28,232 ports; half is 14,116
                                          // The case seen: ~14,100 connections from one address, connect() 5 s.
        let (by, why) = slow_connects(&step(14_100, 5050.0, 1.0), limit, 1, range);
        assert_eq!(by, "local_ports");
        assert!(why.contains("not the server") && why.contains("--source-ip") && why.contains("28232 ports"), "{why}");
        // More source addresses, few connections, or a slow upgrade: the server side.
        assert_eq!(slow_connects(&step(14_100, 5050.0, 1.0), limit, 8, range).0, "handshake_p99");
        assert_eq!(slow_connects(&step(2_000, 5050.0, 1.0), limit, 1, range).0, "handshake_p99");
        let (by, why) = slow_connects(&step(14_100, 1.0, 5050.0), limit, 1, range);
        assert_eq!(by, "handshake_p99");
        assert!(why.contains("upgrades are slow"), "{why}");
        assert_eq!(slow_connects(&step(14_100, 5050.0, 1.0), limit, 1, None).0, "handshake_p99");
    }

    #[test]
    fn a_failed_step_says_when_herd_was_short_of_cpu() {
        assert!(herd_short_of_cpu(Some(45.0))
            .starts_with("; herd itself was short of CPU during this step (its threads waited for a CPU 45 % of it)"));
        assert_eq!(herd_short_of_cpu(Some(3.0)), "", "a herd with its CPU does not blame itself");
        assert_eq!(herd_short_of_cpu(None), "");
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("1.5%"), Ok(1.5));
        assert_eq!(parse_percent("0"), Ok(0.0));
        assert!(parse_percent("120").is_err());
        assert!(parse_percent("lots").is_err());
    }
}
