//! Starting and stopping a load: the fd-limit check, the embedded server when no URL is given,
//! the target, the reporter (with the metrics pusher), and the generator's cores. `run` and
//! `ceiling` each drive the phases of a started [`Load`] their own way.

use crate::client::{self, Control, CorePlan, Phase, Target};
use crate::config::scenario::Scenario;
use crate::config::template::UrlTemplate;
use crate::drive::reporter::{self, Observer, Report, ReporterConfig};
use crate::error::{Error, Result};
use crate::measure::clock::now_ns;
pub use crate::measure::clock::wait_until;
use crate::metrics;
use crate::runtime::limits;
use crate::runtime::process;
use crate::server::{metrics::ServerTotals, Server, ServerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Snapshot and progress interval.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// tungstenite's read chunk per connection: each connection keeps it resident, so it is sized to
/// hold one of the run's messages and its frame header in one read, and no more.
pub fn read_buffer(s: &Scenario) -> usize {
    if s.rate == 0.0 {
        // Idle connections read only control frames (pings, close); the buffer grows for more.
        return 64;
    }
    (s.size + 16).next_multiple_of(16).clamp(128, 4096)
}

/// Hooks a caller may add to a load.
#[derive(Default)]
pub struct Hooks {
    /// Called by the reporter once per interval and at the end.
    pub observers: Vec<Observer>,
    /// Push metrics to a Pushgateway during the run and once more at the end.
    pub push: Option<Push>,
    /// Ask the cores to wait for [`Control::allow`] before each connection (ceiling ramps).
    pub gated: bool,
    /// Thresholds `herd run` judges (the load itself ignores them).
    pub judge: crate::outcome::thresholds::Judge,
    /// Set by an observer to end the send phase early (`herd knee` past its bound).
    pub halt: Option<Arc<std::sync::atomic::AtomicBool>>,
}

pub struct Push {
    pub config: metrics::PushConfig,
    /// Metric name prefix (`herd`).
    pub prefix: String,
}

/// A started load.
pub struct Load {
    pub url: String,
    pub embedded: bool,
    pub run_id: u32,
    pub control: Arc<Control>,
    /// RSS just before the cores started connecting.
    pub rss_start: u64,
    server: Option<Server>,
    handles: Vec<crate::runtime::executor::Executor<()>>,
    reporter: std::thread::JoinHandle<Report>,
    info: metrics::RunInfo,
    pusher: Option<(Arc<metrics::Pusher>, String)>,
    /// wss://: the run's TLS client (its rejected certificates go to the notes).
    pub tls: Option<Arc<crate::tls::Client>>,
    guard: Guard,
}

/// Stops what a load started (its cores, through the shared control, and the watchdog) when the
/// load goes away without [`Load::finish`]: an error after a partial start, or a caller's early
/// return. The embedded server and the pusher have guards of their own; the reporter ends when
/// the cores do.
struct Guard {
    control: Arc<Control>,
    armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            self.control.set_abort();
            self.control.set_phase(Phase::Closing);
            self.control.heartbeats.stop();
        }
    }
}

/// What a finished load hands back.
pub struct Finished {
    pub report: Report,
    /// Cores that did not stop within [`CLOSE_GRACE`] of closing; their figures are those of
    /// their last snapshot.
    pub stuck: Vec<usize>,
    pub server: Option<ServerTotals>,
    pub push: Option<metrics::PushReport>,
}

/// Checks the fd limit against the scenario: its connections, twice over with the embedded
/// server in the same process.
pub fn check_fds(s: &Scenario) -> Result<()> {
    let nofile = limits::raise_nofile();
    let conns = s.connections();
    let (needed, what) = if s.url.is_none() {
        let needed = conns.saturating_mul(2).saturating_add(limits::SPARE_FDS);
        (needed, format!("{conns} client + {conns} embedded-server connections + spare"))
    } else {
        (conns.saturating_add(limits::SPARE_FDS), format!("{conns} connections + spare"))
    };
    limits::check_nofile(nofile, needed, &what)
}

pub fn start(s: &Scenario, hooks: Hooks, hdr_log: Option<std::fs::File>) -> Result<Load> {
    crate::measure::clock::origin();
    let embedded = s.url.is_none();
    // --embedded-tls: the embedded server's certificate, trusted by this run only.
    let embedded_cert = match embedded && s.tls.embedded_tls {
        true => Some(crate::tls::certs::self_signed().map_err(Error::Software)?),
        false => None,
    };
    let server = if embedded {
        let mut cfg = ServerConfig::embedded(s.server_threads as usize);
        // The embedded server accepts compression when the run offers it.
        cfg.deflate = s.deflate != crate::ws::deflate::Mode::Off;
        if let Some(c) = &embedded_cert {
            cfg.tls =
                Some(crate::tls::server::config(vec![c.cert.clone()], c.key.clone_key()).map_err(Error::Software)?);
        }
        Some(Server::start(cfg)?)
    } else {
        None
    };
    let url = match (&s.url, &server) {
        (Some(u), _) => u.clone(),
        (None, Some(sv)) => {
            let scheme = if embedded_cert.is_some() { "wss" } else { "ws" };
            match s.generated {
                // A population's connection is in no room at the upgrade: it joins each.
                Some(_) => format!("{scheme}://{}/user/{{user}}", sv.addr),
                None => format!("{scheme}://{}/conv/{{conv}}?user={{user}}", sv.addr),
            }
        }
        (None, None) => unreachable!("embedded server exists when no URL is given"),
    };
    let template = UrlTemplate::parse(&url).map_err(|e| Error::Usage(format!("--url: {e}")))?;
    let tls = match template.tls {
        true => {
            let trusted: Vec<_> = embedded_cert.iter().map(|c| c.cert.clone()).collect();
            Some(Arc::new(crate::tls::Client::new(&s.tls, &template.host, &trusted).map_err(Error::Usage)?))
        }
        false => None,
    };
    let mut target = Target::new(template, s.max_frame, read_buffer(s))
        .map_err(|e| Error::Unavailable(format!("--url {url}: cannot resolve the host: {e}")))?;
    target.protocol = s.protocol.clone();
    target.deflate = s.deflate;
    target.sndbuf = s.sndbuf;
    target.rcvbuf = s.rcvbuf;
    target.tls = tls.clone();
    if let Some(p) = &s.protocol.tokens {
        target.tokens =
            crate::config::protocol::tokens::Tokens::load(p).map_err(
                |e| match crate::runtime::signal::stop_requested() {
                    true => Error::Interrupted(e),
                    false => Error::Usage(e),
                },
            )?;
    }
    let run_id = crate::measure::pacing::splitmix64(s.seed ^ now_ns()) as u32;
    let cores = s.cores.len();
    let control = Arc::new(Control::new(cores));
    let guard = Guard { control: control.clone(), armed: true };
    control.set_all_conns(s.connections());
    if !hooks.gated {
        control.allow(u64::MAX);
    }
    let info = metrics::RunInfo {
        run_id: format!("{run_id:08x}"),
        target: url.clone(),
        conversations: s.conversations as u64,
        members: s.members as u64,
        senders: s.senders as u64,
        rate: s.rate,
        size: s.size as u64,
        threads: cores as u64,
        extra: s.shard.map(|x| vec![("shards".to_string(), x.count.to_string())]).unwrap_or_default(),
        room_classes: s
            .population
            .as_ref()
            .map(|p| p.classes.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default(),
    };
    let mut observers = hooks.observers;
    let pusher = hooks.push.map(|p| {
        let pusher = Arc::new(metrics::Pusher::start(p.config));
        let (push, info, prefix) = (pusher.clone(), info.clone(), p.prefix.clone());
        observers.push(Box::new(move |m, phase| push.update(metrics::encode(&prefix, &info, phase, m))));
        (pusher, p.prefix)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let reporter = reporter::spawn(
        ReporterConfig {
            cores,
            interval: INTERVAL,
            quiet: s.quiet,
            hdr_log,
            prefix: s.shard.map(|x| format!("shard {x} ")).unwrap_or_default(),
        },
        rx,
        control.clone(),
        observers,
    );

    let sources: Arc<[std::net::IpAddr]> = s.source_ips.clone().into();
    process::trim_heap();
    let rss_start = process::rss_bytes();
    // One copy for all cores: each plan holds the scenario behind an `Arc`.
    let scenario = Arc::new(s.clone());
    // `--churn` is across the whole scenario: each core takes its connections' share.
    let churn_per_conn = s.churn.unwrap_or(0.0) / (s.conversations as f64 * s.members as f64);
    // A population's communities go whole to cores; a grid's conversations round-robin.
    let mut communities = match &s.generated {
        Some(p) => crate::population::place::assign_cores(p, &s.communities(), cores),
        None => vec![vec![]; cores],
    };
    let convs = match &s.generated {
        Some(_) => vec![vec![]; cores],
        None => client::assign(crate::config::shard::conversations(s.conversations, s.shard), cores),
    };
    let plans: Vec<CorePlan> = convs
        .into_iter()
        .enumerate()
        .map(|(idx, convs)| (idx, convs.len(), convs))
        .map(|(idx, convs_len, convs)| CorePlan {
            idx,
            cpu: s.cores[idx],
            scenario: scenario.clone(),
            convs,
            communities: std::mem::take(&mut communities[idx]),
            connect_rate: s.connect_rate / cores as f64,
            churn: churn_per_conn * convs_len as f64 * s.members as f64,
            sources: sources.clone(),
            run_id,
            interval: INTERVAL,
        })
        .collect();
    if !s.quiet {
        crate::errln!(
            "herd: run {run_id:08x}: {} connections to {url} on {cores} core(s){}{}",
            s.connections(),
            if embedded { " (embedded server)" } else { "" },
            s.shard.map(|x| format!(", shard {x}")).unwrap_or_default()
        );
    }
    crate::runtime::watchdog::spawn(control.heartbeats.clone());
    // On an error (a core that cannot start), the guard stops the cores started before it.
    let handles = client::start(plans, Arc::new(target), control.clone(), tx)?;
    Ok(Load { url, embedded, run_id, control, rss_start, server, handles, reporter, info, pusher, tls, guard })
}

impl Load {
    /// Closes every connection, stops the cores, the reporter and the embedded server, and makes
    /// the final push. Once `abort` says so (a second Ctrl-C, before or during the closing
    /// handshakes), the cores stop at once without waiting for them.
    pub fn finish(mut self, abort: &dyn Fn() -> bool) -> Result<Finished> {
        self.guard.armed = false;
        let control = self.control.clone();
        let abort_now = move || {
            let a = abort();
            if a {
                control.set_abort();
            }
            a
        };
        abort_now();
        self.control.set_phase(Phase::Closing);
        let stuck = join_cores(self.handles, CLOSE_GRACE, &abort_now);
        self.control.heartbeats.stop();
        if !stuck.is_empty() {
            self.control.abandoned.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let report = self.reporter.join().map_err(|_| Error::Software("the reporter thread failed".into()))?;
        let server = self.server.map(|sv| sv.stop());
        // The final push, after the drain (or the interruption), with a few retries.
        let info = self.info;
        let push = self.pusher.map(|(p, prefix)| {
            let body = metrics::encode(&prefix, &info, Phase::Done, &report.merged);
            match Arc::try_unwrap(p) {
                Ok(p) => p.finish(body),
                Err(p) => {
                    p.update(body);
                    metrics::PushReport { url: p.url().to_string(), ..Default::default() }
                }
            }
        });
        Ok(Finished { report, server, push, stuck })
    }
}

/// How long cores get to close their connections and stop. They bound their own closing to a
/// few seconds; this guards against a core that never returns.
pub const CLOSE_GRACE: Duration = Duration::from_secs(15);

/// How often the close phase looks for an abort.
const ABORT_POLL: Duration = Duration::from_millis(50);

/// Joins every core, waiting at most `grace` in all (and calling `abort`, which tells the cores
/// to stop at once, every [`ABORT_POLL`]); returns the cores that had not stopped (or had
/// failed).
fn join_cores(
    handles: Vec<crate::runtime::executor::Executor<()>>,
    grace: Duration,
    abort: &dyn Fn() -> bool,
) -> Vec<usize> {
    let (tx, rx) = std::sync::mpsc::channel();
    let n = handles.len();
    for (i, h) in handles.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((i, h.join().is_ok()));
        });
    }
    let deadline = Instant::now() + grace;
    let mut stopped = vec![false; n];
    let mut joined = 0;
    while joined < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        abort();
        match rx.recv_timeout(left.min(ABORT_POLL)) {
            Ok((i, ok)) => {
                joined += 1;
                stopped[i] = ok;
                if !ok {
                    crate::errln!("herd: core {i} failed; its last statistics may be missing");
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let stuck: Vec<usize> = (0..n).filter(|&i| !stopped[i]).collect();
    for i in &stuck {
        crate::errln!("herd: core {i} did not stop within {grace:?}; using its last snapshot");
    }
    stuck
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_dropped_unfinished_stops_its_cores() {
        let control = Arc::new(Control::new(2));
        drop(Guard { control: control.clone(), armed: true });
        assert!(control.abort.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(control.phase(), Phase::Closing);
        let calm = Arc::new(Control::new(2));
        drop(Guard { control: calm.clone(), armed: false });
        assert!(!calm.abort.load(std::sync::atomic::Ordering::SeqCst));
        assert_ne!(calm.phase(), Phase::Closing);
    }
}
