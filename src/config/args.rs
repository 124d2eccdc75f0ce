//! The `herd run` flags ([`RunArgs`], flattened by every subcommand that takes run options) and
//! [`resolve`]: flags, the optional TOML scenario file, presets and defaults into one
//! [`Scenario`].
//!
//! Precedence: a flag given on the command line wins over the same key in `--scenario FILE`,
//! which wins over a `--target` preset's value, which wins over the default (the rule and the
//! file's keys: `crate::config::file`).

use crate::config::protocol::{self, ProtocolArgs};
use crate::config::units;
use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::scenario::{Scenario, MAX_CONNECTIONS};
use crate::runtime::executor::MAX_THREADS;
/// Core numbers in `--cores` are below this (the kernel's default CPU set size).
pub const MAX_CORE: usize = 1024;

/// Defaults, written as a user would give them: each is parsed by its flag's own parser, and
/// `--help` shows it as written. 1000 conversations x 4 members (4,000 connections), one sender
/// per conversation at 1 message/s, 20 s of sending.
pub mod defaults {
    pub const CONVERSATIONS: &str = "1000";
    pub const MEMBERS: &str = "4";
    pub const SENDERS: &str = "1";
    pub const RATE: &str = "1";
    pub const SIZE: &str = "128";
    pub const MAX_FRAME: &str = "1MiB";
    pub const CONNECT_RATE: &str = "10k";
    pub const DURATION: &str = "20s";
    pub const DRAIN: &str = "5s";
    pub const CONNECT_TIMEOUT: &str = "10s";
    pub const SEND_WINDOW: &str = "1ms";
    pub const DEFLATE: &str = "off";
    /// Largest accepted `--send-window`, in milliseconds.
    pub const MAX_SEND_WINDOW_MS: u64 = 100;
    /// Largest accepted `--size`.
    pub const MAX_SIZE: usize = crate::measure::marker::MAX_MESSAGE_SIZE;
}

/// A flag's help with its default: the help text and the value the code uses come from one
/// constant.
fn d(help: &str, default: &str) -> String {
    format!("{help} [default: {default}]")
}

/// The default `text` (a constant of [`defaults`]) through the flag's parser.
fn default_of<T>(text: &str, parse: fn(&str) -> std::result::Result<T, String>) -> T {
    match parse(text) {
        Ok(v) => v,
        // Unreachable: `defaults_parse_with_their_flags_parsers` parses every default.
        Err(e) => unreachable!("default {text:?} does not parse: {e}"),
    }
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
    #[arg(long, short = 'c', value_parser = units::parse_count_u32, help = d("Number of conversations (rooms)", defaults::CONVERSATIONS))]
    pub conversations: Option<u32>,
    #[arg(long, short = 'k', value_parser = units::parse_count_u32, help = d("Members (connections) per conversation, at least 2", defaults::MEMBERS))]
    pub members: Option<u32>,
    #[arg(long, value_parser = units::parse_count_u32, help = d("Sending members per conversation", defaults::SENDERS))]
    pub senders: Option<u32>,
    #[arg(long, value_parser = units::parse_rate, help = d("Messages per second per sender, decimal; 0 holds connections idle", defaults::RATE))]
    pub rate: Option<f64>,
    #[arg(long, value_parser = units::parse_bytes, help = d("Message size in bytes (never smaller than the ~40-70 byte marker); 1KiB = 1024, 1k = 1000", defaults::SIZE))]
    pub size: Option<u64>,
    #[arg(long, value_parser = units::parse_bytes, help = d("Largest frame accepted from the target, in bytes; a larger one closes the connection with 1009 and counts as frame_too_large", defaults::MAX_FRAME))]
    pub max_frame: Option<u64>,
    #[arg(long, value_name = "off|browser|lean", value_parser = crate::ws::deflate::Mode::parse, help = d("permessage-deflate: browser offers what Chrome and Firefox offer (the server's context kept as its answer says), lean asks for no context takeover both ways and 1 KiB windows (nothing held per idle connection); the server's answer is in the results", defaults::DEFLATE))]
    pub deflate: Option<crate::ws::deflate::Mode>,
    #[arg(long, value_parser = units::parse_rate, help = d("New connections per second across all cores", defaults::CONNECT_RATE))]
    pub connect_rate: Option<f64>,
    #[arg(long, short = 'd', value_parser = units::parse_duration, help = d("Length of the sending phase, e.g. 20s, 2m", defaults::DURATION))]
    pub duration: Option<Duration>,
    #[arg(long, value_parser = units::parse_duration, help = d("After sending stops, how long to wait for in-flight deliveries (ends early once nothing is pending)", defaults::DRAIN))]
    pub drain: Option<Duration>,
    #[arg(long, value_parser = units::parse_duration, help = d("Limit on TCP connect plus WebSocket handshake per connection", defaults::CONNECT_TIMEOUT))]
    pub connect_timeout: Option<Duration>,
    #[arg(long, value_parser = units::parse_duration, help = d("A core that wakes to send also sends the messages due within this much after, so one wake serves several; such a message goes out early and its latency counts from when it was sent. 0s: every message is sent at its own time", defaults::SEND_WINDOW))]
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
    /// Executors (pinned threads) to run [default: one per CPU this process may use: the affinity
    /// mask or the cgroup CPU quota, whichever is smaller]
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
    /// The scenario file's tables (`[population]`): settings that are not flags, for whoever
    /// reads them (filled by `cli::parse_from`).
    #[arg(skip)]
    pub file_tables: toml::Table,
    #[command(flatten)]
    pub collect: crate::config::collect::PostArgs,
    #[command(flatten)]
    pub population: crate::population::PopulationArgs,
}

/// Combines the flags (a scenario file's keys are flags by now: `crate::cli`), presets and
/// defaults (pure). `online_cores` is the machine's core list.
pub fn resolve(a: &RunArgs, online_cores: &[usize]) -> Result<Scenario> {
    if let Some(table) = a.file_tables.keys().find(|k| *k != "population") {
        return Err(Error::Usage(format!("scenario table [{table}]: herd has no such table (keys are flag names)")));
    }
    let members = a.members.unwrap_or_else(|| default_of(defaults::MEMBERS, units::parse_count_u32));
    let shapes = crate::shape::args::resolve(&a.shape).map_err(Error::Usage)?;
    let given_conversations = a.conversations;
    // Stages that set the connection count size the scenario unless -c does.
    let staged_conversations = shapes
        .shape
        .as_ref()
        .and_then(|s| s.max_connections())
        .map(|n| u32::try_from(n.div_ceil(members.max(1) as u64).max(1)).unwrap_or(u32::MAX));
    let conversations = given_conversations
        .or(staged_conversations)
        .unwrap_or_else(|| default_of(defaults::CONVERSATIONS, units::parse_count_u32));
    let senders = a.senders.unwrap_or_else(|| default_of(defaults::SENDERS, units::parse_count_u32));
    let mut rate = a.rate.unwrap_or_else(|| default_of(defaults::RATE, units::parse_rate));
    let mut size = a.size.unwrap_or_else(|| default_of(defaults::SIZE, units::parse_bytes));
    let max_frame = a.max_frame.unwrap_or_else(|| default_of(defaults::MAX_FRAME, units::parse_bytes));
    let deflate = a.deflate.unwrap_or_else(|| default_of(defaults::DEFLATE, crate::ws::deflate::Mode::parse));
    let connect_rate = a.connect_rate.unwrap_or_else(|| default_of(defaults::CONNECT_RATE, units::parse_rate));
    let mut duration = a.duration.unwrap_or_else(|| default_of(defaults::DURATION, units::parse_duration));
    let drain = a.drain.unwrap_or_else(|| default_of(defaults::DRAIN, units::parse_duration));
    let connect_timeout =
        a.connect_timeout.unwrap_or_else(|| default_of(defaults::CONNECT_TIMEOUT, units::parse_duration));
    let send_window = a.send_window.unwrap_or_else(|| default_of(defaults::SEND_WINDOW, units::parse_duration));
    let threads = a.threads;
    let cores_text = a.cores.clone();

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
        if a.duration.is_some() || a.rate.is_some() {
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
    let server_threads = a.server_threads.unwrap_or(cores.len() as u32);
    if server_threads == 0 || server_threads > MAX_THREADS {
        return Err(bad("server-threads", format!("must be between 1 and {MAX_THREADS}, got {server_threads}")));
    }
    let sockbuf = |flag: Option<u64>, key: &str| -> Result<Option<usize>> {
        match flag {
            Some(n) if !(1024..=1 << 30).contains(&n) => {
                Err(bad(key, format!("must be between 1KiB (1024) and 1GiB bytes, got {n}")))
            }
            n => Ok(n.map(|n| n as usize)),
        }
    };
    let sndbuf = sockbuf(a.sndbuf, "sndbuf")?;
    let rcvbuf = sockbuf(a.rcvbuf, "rcvbuf")?;
    let source_ips = match &a.source_ip.clone() {
        Some(spec) => crate::config::addrs::parse_sources(spec).map_err(|e| bad("source-ip", e))?,
        None => vec![],
    };
    let url = a.url.clone();
    let url_template = match &url {
        Some(u) => Some(crate::config::template::UrlTemplate::parse(u).map_err(|e| bad("url", e))?),
        None => None,
    };
    let population = crate::population::config::resolve(
        &a.population,
        a.file_tables.get("population"),
        crate::population::config::ClassDefaults { rate, size: size as usize },
    )?;
    if let Some(p) = &population {
        population_fits(a, &shapes, p)?;
        // The run's rate and size are its classes' highest: what an idle run, the read buffer
        // and the notes go by.
        rate = p.classes.iter().map(|c| c.rate).fold(0.0, f64::max);
        size = p.classes.iter().map(|c| c.message_size as u64).max().unwrap_or(size);
        if size > max_frame {
            return Err(Error::Usage(format!(
                "a room class's message-size ({size}) is above --max-frame ({max_frame}): receivers would refuse it"
            )));
        }
    }
    let protocol = protocol::resolve_for(&a.protocol, url_template.as_ref(), population.is_some())?;
    let shard_units = population.as_ref().map_or(conversations, |p| p.users.div_ceil(p.community));
    let shard = crate::config::shard::resolve(&a.shard, shard_units).map_err(Error::Usage)?;
    let seed = a.seed.unwrap_or_else(random_seed);
    let generated = match &population {
        Some(p) => Some(crate::population::Shared(std::sync::Arc::new(crate::population::generate(p, seed)?))),
        None => None,
    };
    let start_when = (a.shard.start_when)
        .map(|w| crate::drive::start_when::check(w, shard.map(|s| s.count), a.metrics.pushgateway.is_some()))
        .transpose()
        .map_err(Error::Usage)?;
    let tls = crate::tls::args::resolve(&a.tls)?;
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
        deflate,
        connect_rate,
        duration,
        drain,
        connect_timeout,
        send_window,
        source_ips,
        sndbuf,
        rcvbuf,
        reconnect: a.reconnect,
        cores,
        executors: String::new(),
        server_threads,
        out: a.out.clone(),
        hdr_log: a.hdr_log.clone(),
        seed,
        quiet: a.quiet,
        protocol,
        shard,
        start_at: a.shard.start_at,
        start_when,
        start_when_timeout: a.shard.start_when_timeout,
        tls,
        shape: shapes.shape,
        churn: shapes.churn,
        storm: shapes.storm,
        population,
        generated,
    })
}

/// What a population cannot be combined with (yet), each refused by name.
fn population_fits(
    a: &RunArgs,
    shapes: &crate::shape::args::Resolved,
    p: &crate::population::PopulationSpec,
) -> Result<()> {
    let grid = [
        ("conversations", a.conversations.is_some()),
        ("members", a.members.is_some()),
        ("senders", a.senders.is_some()),
    ];
    if let Some((key, _)) = grid.iter().find(|g| g.1) {
        return Err(Error::Usage(format!(
            "--{key}: a population ({} users) replaces the grid of conversations; give its room classes instead",
            p.users
        )));
    }
    let unsupported = [
        ("stage", shapes.shape.is_some()),
        ("churn", shapes.churn.is_some()),
        ("storm", shapes.storm.is_some()),
        ("reconnect", a.reconnect),
    ];
    if let Some((key, _)) = unsupported.iter().find(|g| g.1) {
        return Err(Error::Usage(format!("--{key}: not available with a population (only with -c/-k)")));
    }
    Ok(())
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

    fn resolve1(a: RunArgs) -> Result<Scenario> {
        resolve(&a, &[0, 1])
    }

    #[test]
    fn defaults_give_the_documented_scenario() {
        let s = resolve(&RunArgs::default(), &[0, 1]).unwrap();
        assert_eq!(s.connections(), 4000);
        assert_eq!((s.senders, s.rate, s.duration), (1, 1.0, Duration::from_secs(20)));
        assert_eq!((s.size, s.max_frame, s.connect_rate), (128, 1 << 20, 10_000.0));
        assert_eq!(
            (s.drain, s.connect_timeout, s.send_window),
            (Duration::from_secs(5), Duration::from_secs(10), Duration::from_millis(1))
        );
        assert_eq!(s.cores, vec![0, 1]);
        assert_eq!(s.url, None);
    }

    #[test]
    fn defaults_parse_with_their_flags_parsers() {
        for d in [defaults::CONVERSATIONS, defaults::MEMBERS, defaults::SENDERS] {
            assert!(units::parse_count_u32(d).is_ok(), "{d}");
        }
        for d in [defaults::RATE, defaults::CONNECT_RATE] {
            assert!(units::parse_rate(d).is_ok(), "{d}");
        }
        for d in [defaults::SIZE, defaults::MAX_FRAME] {
            assert!(units::parse_bytes(d).is_ok(), "{d}");
        }
        for d in [defaults::DURATION, defaults::DRAIN, defaults::CONNECT_TIMEOUT, defaults::SEND_WINDOW] {
            assert!(units::parse_duration(d).is_ok(), "{d}");
        }
    }

    #[test]
    fn errors_name_the_flag() {
        let e = |a: RunArgs| resolve1(a).unwrap_err().to_string();
        assert!(e(RunArgs { members: Some(1), ..Default::default() }).contains("--members"));
        assert!(e(RunArgs { senders: Some(5), ..Default::default() }).contains("--senders"));
        assert!(e(RunArgs { cores: Some("7".into()), ..Default::default() }).contains("not online"));
        assert!(e(RunArgs { url: Some("http://x".into()), ..Default::default() }).contains("--url"));
        assert!(e(RunArgs { threads: Some(0), ..Default::default() }).contains("--threads"));
        assert!(e(RunArgs { threads: Some(4_000_000_000), ..Default::default() }).contains("--threads"));
        assert!(e(RunArgs { server_threads: Some(4_000_000_000), ..Default::default() }).contains("--server-threads"));
        assert!(e(RunArgs { max_frame: Some(10), ..Default::default() }).contains("--max-frame"));
        let wide = RunArgs { send_window: Some(Duration::from_millis(101)), ..Default::default() };
        assert!(e(wide).contains("--send-window"));
        let huge = RunArgs { conversations: Some(2_147_549_185), members: Some(4_294_836_226), ..Default::default() };
        assert!(e(huge).contains("more than one process can open"));
    }

    #[test]
    fn reconnect_and_max_frame_from_flags() {
        let s = resolve1(RunArgs::default()).unwrap();
        assert_eq!((s.reconnect, s.max_frame), (false, 1 << 20));
        let a = RunArgs { max_frame: Some(4096), reconnect: true, ..Default::default() };
        let s = resolve1(a).unwrap();
        assert_eq!((s.reconnect, s.max_frame), (true, 4096));
    }

    #[test]
    fn deflate_is_off_unless_asked() {
        use crate::ws::deflate::Mode;
        assert_eq!(resolve1(RunArgs::default()).unwrap().deflate, Mode::Off);
        let a = RunArgs { deflate: Some(Mode::Browser), ..Default::default() };
        assert_eq!(resolve1(a).unwrap().deflate, Mode::Browser);
    }

    #[test]
    fn socket_buffers_are_bounded() {
        let s = resolve1(RunArgs { sndbuf: Some(65536), rcvbuf: Some(8000), ..Default::default() }).unwrap();
        assert_eq!((s.sndbuf, s.rcvbuf), (Some(65536), Some(8000)));
        let e = resolve1(RunArgs { rcvbuf: Some(10), ..Default::default() }).unwrap_err();
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
    fn max_frame_bounds_size() {
        let e = |a: RunArgs| resolve1(a).unwrap_err().to_string();
        assert!(e(RunArgs { max_frame: Some(100), ..Default::default() }).contains("--max-frame"));
        assert!(
            e(RunArgs { max_frame: Some(1000), size: Some(2000), ..Default::default() }).contains("a whole message")
        );
    }

    #[test]
    fn stages_replace_duration_and_rate() {
        let staged = |d: Option<Duration>| RunArgs {
            duration: d,
            shape: crate::shape::ShapeArgs { stages: vec!["2s:100:1/s".into()], ..Default::default() },
            ..Default::default()
        };
        assert!(resolve1(staged(Some(Duration::from_secs(3)))).unwrap_err().to_string().contains("--stage"));
        assert_eq!(resolve1(staged(None)).unwrap().duration, Duration::from_secs(2));
    }

    #[test]
    fn threads_beyond_cores_wrap_around() {
        let a = RunArgs { threads: Some(3), ..Default::default() };
        assert_eq!(resolve(&a, &[0, 1]).unwrap().cores, vec![0, 1, 0]);
    }
}
