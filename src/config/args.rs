//! The `herd run` flags ([`RunArgs`], flattened by every subcommand that takes run options) and
//! [`resolve`]: flags, the optional TOML scenario file, presets and defaults into one
//! [`Scenario`].
//!
//! Precedence: a flag given on the command line wins over the same key in `--scenario FILE`,
//! which wins over a `--target` preset's value, which wins over the default (the rule and the
//! file's keys: `crate::config::file`).

use crate::config::file::{pick, pick_raw, pick_switch};
use crate::config::protocol::{self, ProtocolArgs};
use crate::config::units;
use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::config::file::{load_file, ScenarioFile, Value};

use crate::config::scenario::{Scenario, MAX_CONNECTIONS};
use crate::runtime::executor::MAX_THREADS;
/// Core numbers in `--cores` are below this (the kernel's default CPU set size).
pub const MAX_CORE: usize = 1024;

/// Defaults: 1000 conversations x 4 members (4,000 connections), one sender per conversation at
/// 1 message/s, 20 s of sending.
pub mod defaults {
    pub const CONVERSATIONS: u32 = 1000;
    pub const MEMBERS: u32 = 4;
    pub const SENDERS: u32 = 1;
    pub const RATE: f64 = 1.0;
    pub const SIZE: usize = 128;
    pub const CONNECT_RATE: f64 = 10_000.0;
    pub const DURATION_S: u64 = 20;
    pub const DRAIN_S: u64 = 5;
    /// `--send-window`, in microseconds.
    pub const SEND_WINDOW_US: u64 = 1000;
    /// Largest accepted `--send-window`, in milliseconds.
    pub const MAX_SEND_WINDOW_MS: u64 = 100;
    pub const CONNECT_TIMEOUT_S: u64 = 10;
    /// Largest accepted `--size`.
    pub const MAX_SIZE: usize = 1 << 20;
    /// Largest frame accepted from the target.
    pub const MAX_FRAME: usize = 1 << 20;
}

#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Target URL template, e.g. ws://127.0.0.1:8080/conv/{conv}?user={user}. Without it herd
    /// starts its reference server in-process on a loopback port and targets that.
    #[arg(long, value_name = "TEMPLATE")]
    pub url: Option<String>,
    /// TOML file with scenario keys (flag names without dashes); flags override it.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Number of conversations (rooms) [default: 1000]
    #[arg(long, short = 'c', value_parser = units::parse_count_u32)]
    pub conversations: Option<u32>,
    /// Members (connections) per conversation, at least 2 [default: 4]
    #[arg(long, short = 'k', value_parser = units::parse_count_u32)]
    pub members: Option<u32>,
    /// Sending members per conversation [default: 1]
    #[arg(long, value_parser = units::parse_count_u32)]
    pub senders: Option<u32>,
    /// Messages per second per sender, decimal; 0 holds connections idle [default: 1]
    #[arg(long, value_parser = units::parse_rate)]
    pub rate: Option<f64>,
    /// Message size in bytes (never smaller than the ~40-70 byte marker); 1KiB = 1024,
    /// 1k = 1000 [default: 128]
    #[arg(long, value_parser = units::parse_bytes)]
    pub size: Option<u64>,
    /// Largest frame accepted from the target, in bytes; a larger one closes the connection
    /// with 1009 and counts as frame_too_large [default: 1MiB]
    #[arg(long, value_parser = units::parse_bytes)]
    pub max_frame: Option<u64>,
    /// New connections per second across all cores [default: 10k]
    #[arg(long, value_parser = units::parse_rate)]
    pub connect_rate: Option<f64>,
    /// Length of the sending phase, e.g. 20s, 2m [default: 20s]
    #[arg(long, short = 'd', value_parser = units::parse_duration)]
    pub duration: Option<Duration>,
    /// After sending stops, how long to wait for in-flight deliveries (ends early once nothing
    /// is pending) [default: 5s]
    #[arg(long, value_parser = units::parse_duration)]
    pub drain: Option<Duration>,
    /// Limit on TCP connect plus WebSocket handshake per connection [default: 10s]
    #[arg(long, value_parser = units::parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// A core that wakes to send also sends the messages due within this much after, so one
    /// wake serves several; such a message goes out early and its latency counts from when it
    /// was sent. 0s: every message is sent at its own time [default: 1ms]
    #[arg(long, value_parser = units::parse_duration)]
    pub send_window: Option<Duration>,
    /// Source addresses to spread connections over (round-robin), e.g. 127.0.0.2-127.0.0.50,
    /// 127.0.1.0/24 or a comma list; each gets its own ephemeral port range per destination
    #[arg(long, value_name = "LIST|RANGE|CIDR")]
    pub source_ip: Option<String>,
    /// SO_SNDBUF per connection in bytes, e.g. 64KiB (the kernel doubles it) [default: kernel
    /// autotuning]
    #[arg(long, value_parser = units::parse_bytes)]
    pub sndbuf: Option<u64>,
    /// SO_RCVBUF per connection in bytes, e.g. 64KiB (the kernel doubles it) [default: kernel
    /// autotuning]
    #[arg(long, value_parser = units::parse_bytes)]
    pub rcvbuf: Option<u64>,
    /// After an established connection is lost, open it again with jittered exponential backoff
    /// (100 ms doubling to 5 s) until the run closes
    #[arg(long)]
    pub reconnect: bool,
    /// Executors (pinned threads) to run [default: one per online core]
    #[arg(long, short = 't', value_parser = units::parse_count_u32, conflicts_with = "cores")]
    pub threads: Option<u32>,
    /// CPU cores to pin executors to, e.g. 0,2-3
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Executors of the embedded reference server (only without --url) [default: --threads]
    #[arg(long, value_parser = units::parse_count_u32)]
    pub server_threads: Option<u32>,
    /// Write JSON results to this file (`-`: as the last line of stdout, after the summary)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write HdrHistogram interval logs of delivery latency to this file
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<PathBuf>,
    /// Seed for send phases and handshake keys [default: random]
    #[arg(long)]
    pub seed: Option<u64>,
    /// No progress lines on stderr
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    #[command(flatten)]
    pub shard: crate::config::shard::ShardArgs,
    #[command(flatten)]
    pub thresholds: crate::outcome::thresholds::ThresholdArgs,
    /// Write a self-contained HTML report of the run to this file
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    #[command(flatten)]
    pub shape: crate::shape::ShapeArgs,
}

/// Combines flags, file and defaults (pure). `online_cores` is the machine's core list.
pub fn resolve(a: &RunArgs, f: &ScenarioFile, online_cores: &[usize]) -> Result<Scenario> {
    let members = pick(a.members, &f.members, "members", units::parse_count_u32)?.unwrap_or(defaults::MEMBERS);
    let shapes = crate::shape::args::resolve(&a.shape, f).map_err(Error::Usage)?;
    let given_conversations = pick(a.conversations, &f.conversations, "conversations", units::parse_count_u32)?;
    // Stages that set the connection count size the scenario unless -c does.
    let staged_conversations = shapes
        .shape
        .as_ref()
        .and_then(|s| s.max_connections())
        .map(|n| u32::try_from(n.div_ceil(members.max(1) as u64).max(1)).unwrap_or(u32::MAX));
    let conversations = given_conversations.or(staged_conversations).unwrap_or(defaults::CONVERSATIONS);
    let senders = pick(a.senders, &f.senders, "senders", units::parse_count_u32)?.unwrap_or(defaults::SENDERS);
    let mut rate = pick(a.rate, &f.rate, "rate", units::parse_rate)?.unwrap_or(defaults::RATE);
    let size = pick(a.size, &f.size, "size", units::parse_bytes)?.unwrap_or(defaults::SIZE as u64);
    let max_frame =
        pick(a.max_frame, &f.max_frame, "max-frame", units::parse_bytes)?.unwrap_or(defaults::MAX_FRAME as u64);
    let connect_rate =
        pick(a.connect_rate, &f.connect_rate, "connect-rate", units::parse_rate)?.unwrap_or(defaults::CONNECT_RATE);
    let mut duration = pick(a.duration, &f.duration, "duration", units::parse_duration)?
        .unwrap_or(Duration::from_secs(defaults::DURATION_S));
    let drain =
        pick(a.drain, &f.drain, "drain", units::parse_duration)?.unwrap_or(Duration::from_secs(defaults::DRAIN_S));
    let connect_timeout = pick(a.connect_timeout, &f.connect_timeout, "connect-timeout", units::parse_duration)?
        .unwrap_or(Duration::from_secs(defaults::CONNECT_TIMEOUT_S));
    let send_window = pick(a.send_window, &f.send_window, "send-window", units::parse_duration)?
        .unwrap_or(Duration::from_micros(defaults::SEND_WINDOW_US));
    let threads = pick(a.threads, &f.threads, "threads", units::parse_count_u32)?;
    let cores_text = if a.threads.is_some() { a.cores.clone() } else { pick_raw(&a.cores, &f.cores) };

    let bad = |flag: &str, msg: String| Error::Usage(format!("--{flag}: {msg}"));
    if conversations == 0 {
        return Err(bad("conversations", "must be at least 1".into()));
    }
    if members < 2 {
        return Err(bad("members", format!("must be at least 2 (a sender and a receiver), got {members}")));
    }
    // Checked before anything is sized from it (fd estimates, per-conversation tables): no
    // kernel gives one process more file descriptors than this.
    if (conversations as u64) * (members as u64) > MAX_CONNECTIONS {
        return Err(bad(
            "members",
            format!(
                "--conversations x --members is {} connections, more than one process can open (at most {MAX_CONNECTIONS}); use --shard across processes",
                conversations as u64 * members as u64
            ),
        ));
    }
    if senders == 0 || senders > members {
        return Err(bad("senders", format!("must be between 1 and --members ({members}), got {senders}")));
    }
    if size as usize > defaults::MAX_SIZE {
        return Err(bad("size", format!("at most {} bytes, got {size}", defaults::MAX_SIZE)));
    }
    if rate > 1e6 {
        return Err(bad("rate", format!("at most 1000000 messages/s per sender, got {rate}")));
    }
    if connect_rate <= 0.0 {
        return Err(bad("connect-rate", "must be positive".into()));
    }
    if connect_timeout.is_zero() {
        return Err(bad("connect-timeout", "must be positive".into()));
    }
    if send_window > Duration::from_millis(defaults::MAX_SEND_WINDOW_MS) {
        return Err(bad("send-window", format!("at most {}ms, got {send_window:?}", defaults::MAX_SEND_WINDOW_MS)));
    }
    let min_frame = size.max(crate::measure::marker::MAX_LEN as u64);
    if max_frame < min_frame || max_frame > 1 << 30 {
        return Err(bad(
            "max-frame",
            format!("must be between {min_frame} (a whole message) and 1GiB (1073741824) bytes, got {max_frame}"),
        ));
    }
    if let Some(shape) = &shapes.shape {
        let flag_given = |flag: bool, file: bool| flag || (file && a.shape.stages.is_empty());
        if flag_given(a.duration.is_some(), f.duration.is_some()) || flag_given(a.rate.is_some(), f.rate.is_some()) {
            return Err(bad(
                "stage",
                "replaces --duration and --rate (the stages set both); give one or the other".into(),
            ));
        }
        if let (Some(max), Some(c)) = (shape.max_connections(), given_conversations) {
            if max > c as u64 * members as u64 {
                return Err(bad(
                    "stage",
                    format!(
                        "a stage asks for {max} connections, more than --conversations x --members ({})",
                        c as u64 * members as u64
                    ),
                ));
            }
        }
        duration = shape.total();
        rate = shape.stages().iter().map(|s| s.rate).fold(0.0, f64::max);
    }
    if let Some(storm) = &shapes.storm {
        if storm.at >= duration {
            return Err(bad("storm", format!("AT ({:?}) must fall within the send phase ({duration:?})", storm.at)));
        }
    }
    let cores = match (cores_text, threads) {
        (Some(list), _) => {
            let cores = parse_core_list(&list).map_err(|e| bad("cores", e))?;
            if let Some(c) = cores.iter().find(|c| !online_cores.contains(c)) {
                return Err(bad("cores", format!("core {c} is not online (online: {online_cores:?})")));
            }
            cores
        }
        (None, Some(0)) => return Err(bad("threads", "must be at least 1".into())),
        (None, Some(t)) if t > MAX_THREADS => {
            return Err(bad("threads", format!("at most {MAX_THREADS}, got {t}")));
        }
        (None, Some(t)) => (0..t as usize).map(|i| online_cores[i % online_cores.len()]).collect(),
        (None, None) => online_cores.to_vec(),
    };
    let server_threads = pick(a.server_threads, &f.server_threads, "server-threads", units::parse_count_u32)?
        .unwrap_or(cores.len() as u32);
    if server_threads == 0 || server_threads > MAX_THREADS {
        return Err(bad("server-threads", format!("must be between 1 and {MAX_THREADS}, got {server_threads}")));
    }
    let sockbuf = |flag: Option<u64>, file: &Option<Value>, key: &str| -> Result<Option<usize>> {
        match pick(flag, file, key, units::parse_bytes)? {
            Some(n) if !(1024..=1 << 30).contains(&n) => {
                Err(bad(key, format!("must be between 1KiB (1024) and 1GiB bytes, got {n}")))
            }
            n => Ok(n.map(|n| n as usize)),
        }
    };
    let sndbuf = sockbuf(a.sndbuf, &f.sndbuf, "sndbuf")?;
    let rcvbuf = sockbuf(a.rcvbuf, &f.rcvbuf, "rcvbuf")?;
    let source_ips = match &pick_raw(&a.source_ip, &f.source_ip) {
        Some(spec) => crate::config::addrs::parse_sources(spec).map_err(|e| bad("source-ip", e))?,
        None => vec![],
    };
    let url = pick_raw(&a.url, &f.url);
    let url_template = match &url {
        Some(u) => Some(crate::config::template::UrlTemplate::parse(u).map_err(|e| bad("url", e))?),
        None => None,
    };
    let protocol = protocol::resolve(&a.protocol, f, url_template.as_ref())?;
    let shard = crate::config::shard::resolve(&a.shard, conversations).map_err(Error::Usage)?;
    let start_when = (a.shard.start_when)
        .map(|w| crate::drive::start_when::check(w, shard.map(|s| s.count), a.metrics.pushgateway.is_some()))
        .transpose()
        .map_err(Error::Usage)?;
    let tls = crate::tls::args::resolve(&a.tls, f)?;
    if tls.embedded_tls && url.is_some() {
        return Err(bad("embedded-tls", "only without --url (it makes the embedded server speak TLS)".into()));
    }
    Ok(Scenario {
        url,
        conversations,
        members,
        senders,
        rate,
        size: size as usize,
        max_frame: max_frame as usize,
        connect_rate,
        duration,
        drain,
        connect_timeout,
        send_window,
        source_ips,
        sndbuf,
        rcvbuf,
        reconnect: pick_switch(a.reconnect, f.reconnect),
        cores,
        server_threads,
        out: pick_raw(&a.out, &f.out),
        hdr_log: pick_raw(&a.hdr_log, &f.hdr_log),
        seed: pick_raw(&a.seed, &f.seed).unwrap_or_else(random_seed),
        quiet: pick_switch(a.quiet, f.quiet),
        protocol,
        shard,
        start_at: a.shard.start_at,
        start_when,
        tls,
        shape: shapes.shape,
        churn: shapes.churn,
        storm: shapes.storm,
    })
}

/// `0,2-3` -> [0, 2, 3].
pub fn parse_core_list(s: &str) -> std::result::Result<Vec<usize>, String> {
    let mut out = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a.trim().parse().map_err(|_| format!("'{part}' is not a core number or range"))?;
        let b: usize = b.trim().parse().map_err(|_| format!("'{part}' is not a core number or range"))?;
        if a > b {
            return Err(format!("'{part}' is a backwards range"));
        }
        if b >= MAX_CORE {
            return Err(format!("'{part}': core numbers go up to {}", MAX_CORE - 1));
        }
        for c in a..=b {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if out.is_empty() {
        return Err("empty core list".into());
    }
    Ok(out)
}

fn random_seed() -> u64 {
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    crate::measure::pacing::splitmix64(t ^ ((std::process::id() as u64) << 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(t: &str) -> ScenarioFile {
        toml::from_str(t).unwrap()
    }

    #[test]
    fn defaults_give_the_documented_scenario() {
        let s = resolve(&RunArgs::default(), &ScenarioFile::default(), &[0, 1]).unwrap();
        assert_eq!(s.connections(), 4000);
        assert_eq!((s.senders, s.rate, s.duration), (1, 1.0, Duration::from_secs(20)));
        assert_eq!(s.cores, vec![0, 1]);
        assert_eq!(s.url, None);
    }

    #[test]
    fn flags_win_over_file_which_wins_over_defaults() {
        let f = file("conversations = 10\nmembers = \"5\"\nduration = \"3s\"\nrate = 0.5\nconnect-rate = \"2k\"");
        let a = RunArgs { members: Some(3), ..Default::default() };
        let s = resolve(&a, &f, &[0]).unwrap();
        assert_eq!((s.conversations, s.members), (10, 3));
        assert_eq!(s.duration, Duration::from_secs(3));
        assert_eq!((s.rate, s.connect_rate), (0.5, 2000.0));
    }

    #[test]
    fn errors_name_the_flag_or_key() {
        let e = |a: RunArgs, f: &str| resolve(&a, &file(f), &[0, 1]).unwrap_err().to_string();
        assert!(e(RunArgs { members: Some(1), ..Default::default() }, "").contains("--members"));
        assert!(e(RunArgs { senders: Some(5), ..Default::default() }, "").contains("--senders"));
        assert!(e(RunArgs::default(), "duration = \"soon\"").contains("scenario key 'duration'"));
        assert!(e(RunArgs { cores: Some("7".into()), ..Default::default() }, "").contains("not online"));
        assert!(e(RunArgs { url: Some("http://x".into()), ..Default::default() }, "").contains("--url"));
        assert!(e(RunArgs { threads: Some(0), ..Default::default() }, "").contains("--threads"));
        assert!(e(RunArgs { threads: Some(4_000_000_000), ..Default::default() }, "").contains("--threads"));
        assert!(e(RunArgs::default(), "server-threads = \"4g\"").contains("server-threads"));
        assert!(e(RunArgs { max_frame: Some(10), ..Default::default() }, "").contains("--max-frame"));
        let wide = RunArgs { send_window: Some(Duration::from_millis(101)), ..Default::default() };
        assert!(e(wide, "").contains("--send-window"));
        assert!(e(RunArgs::default(), "send-window = \"1x\"").contains("send-window"));
        let huge = RunArgs { conversations: Some(2_147_549_185), members: Some(4_294_836_226), ..Default::default() };
        assert!(e(huge, "").contains("more than one process can open"));
        let unknown = toml::from_str::<ScenarioFile>("conversatons = 3").unwrap_err().to_string();
        assert!(unknown.contains("conversatons"), "{unknown}");
    }

    #[test]
    fn reconnect_and_max_frame_from_flags_or_file() {
        let s = resolve(&RunArgs::default(), &ScenarioFile::default(), &[0]).unwrap();
        assert_eq!((s.reconnect, s.max_frame), (false, defaults::MAX_FRAME));
        let s = resolve(&RunArgs::default(), &file("reconnect = true\nmax-frame = \"64k\""), &[0]).unwrap();
        assert_eq!((s.reconnect, s.max_frame), (true, 64_000));
        let a = RunArgs { max_frame: Some(4096), reconnect: true, ..Default::default() };
        let s = resolve(&a, &file("max-frame = \"64k\""), &[0]).unwrap();
        assert_eq!((s.reconnect, s.max_frame), (true, 4096));
    }

    #[test]
    fn socket_buffers_are_bounded() {
        let s =
            resolve(&RunArgs { sndbuf: Some(65536), ..Default::default() }, &file("rcvbuf = \"8k\""), &[0]).unwrap();
        assert_eq!((s.sndbuf, s.rcvbuf), (Some(65536), Some(8000)));
        let e =
            resolve(&RunArgs { rcvbuf: Some(10), ..Default::default() }, &ScenarioFile::default(), &[0]).unwrap_err();
        assert!(e.to_string().contains("--rcvbuf"), "{e}");
    }

    #[test]
    fn core_lists() {
        assert_eq!(parse_core_list("0,2-3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_core_list("1,1").unwrap(), vec![1]);
        assert!(parse_core_list("3-1").is_err());
        assert!(parse_core_list("a").is_err());
        assert!(parse_core_list("").is_err());
        assert!(parse_core_list("0-99999999999").is_err(), "a huge range is refused, not expanded");
    }

    #[test]
    fn max_frame_defaults_to_one_mib_and_bounds_size() {
        let s = resolve(&RunArgs::default(), &ScenarioFile::default(), &[0]).unwrap();
        assert_eq!(s.max_frame, 1 << 20);
        let s = resolve(&RunArgs::default(), &file("max-frame = \"64k\""), &[0]).unwrap();
        assert_eq!(s.max_frame, 64_000);
        let e = |a: RunArgs| resolve(&a, &ScenarioFile::default(), &[0]).unwrap_err().to_string();
        assert!(e(RunArgs { max_frame: Some(100), ..Default::default() }).contains("--max-frame"));
        assert!(
            e(RunArgs { max_frame: Some(1000), size: Some(2000), ..Default::default() }).contains("a whole message")
        );
    }

    #[test]
    fn protocol_keys_come_through() {
        let f = file("url = \"ws://h/conv/{conv}\"\ntarget = \"nchan\"\nbinary = true");
        let s = resolve(&RunArgs::default(), &f, &[0]).unwrap();
        assert_eq!((s.protocol.target, s.protocol.binary), ("nchan", true));
    }

    #[test]
    fn threads_beyond_cores_wrap_around() {
        let a = RunArgs { threads: Some(3), ..Default::default() };
        assert_eq!(resolve(&a, &ScenarioFile::default(), &[0, 1]).unwrap().cores, vec![0, 1, 0]);
    }
}
