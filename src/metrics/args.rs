//! Command-line options of the Pushgateway export, and the small parsers behind them.

use std::time::Duration;

use super::pusher::PushConfig;

/// Options of the Prometheus Pushgateway export. Flatten into a command with
/// `#[command(flatten)] metrics: MetricsArgs`. Without `--pushgateway` nothing is pushed.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct MetricsArgs {
    /// Push live metrics to this Prometheus Pushgateway (plain http), e.g. http://localhost:9091
    #[arg(
        long = "pushgateway",
        env = "HERD_PUSHGATEWAY",
        value_name = "URL",
        value_parser = parse_pushgateway_url
    )]
    pub pushgateway: Option<String>,

    /// How often to push: 500ms, 5s, 1m, 1m30s
    #[arg(
        long = "push-interval",
        value_name = "DURATION",
        default_value = "5s",
        value_parser = parse_push_interval
    )]
    pub push_interval: Duration,

    /// The Pushgateway `job` grouping label
    #[arg(
        long = "job",
        env = "HERD_JOB",
        value_name = "NAME",
        default_value = "herd",
        value_parser = parse_job
    )]
    pub job: String,

    /// The Pushgateway `instance` grouping label [default: HOSTNAME-SHARD, or HOSTNAME-PID]
    #[arg(long = "instance", env = "HERD_INSTANCE", value_name = "NAME")]
    pub instance: Option<String>,

    /// Prefix of every metric name (the dashboards expect the default)
    #[arg(
        long = "metrics-prefix",
        value_name = "PREFIX",
        default_value = "herd",
        value_parser = parse_prefix
    )]
    pub metrics_prefix: String,

    /// Delete this run's group from the Pushgateway after the final push
    #[arg(long = "pushgateway-delete")]
    pub pushgateway_delete: bool,

    /// The id every shard of one run shares (e.g. the Kubernetes Job's uid): the Pushgateway
    /// grouping label `run` (the dashboards' run selector), what `--start-when` counts, and what
    /// `herd collect --run-id` takes
    #[arg(long = "run-id", env = "HERD_RUN_ID", value_name = "ID", value_parser = super::run_id::parse_run_id)]
    pub run_id: Option<String>,
}

impl Default for MetricsArgs {
    fn default() -> Self {
        MetricsArgs {
            pushgateway: None,
            push_interval: Duration::from_secs(5),
            job: "herd".to_string(),
            instance: None,
            metrics_prefix: "herd".to_string(),
            pushgateway_delete: false,
            run_id: None,
        }
    }
}

impl MetricsArgs {
    /// The `instance` label: `--instance` if given, else [`default_instance`].
    pub fn instance_or_default(&self, shard: Option<usize>) -> String {
        match &self.instance {
            Some(i) => i.clone(),
            None => default_instance(shard),
        }
    }

    /// The pusher's configuration, or `None` when no `--pushgateway` was given. `shard` is this
    /// process's shard index when a run is split over several herd processes; it names the
    /// default instance.
    pub fn push_config(&self, shard: Option<usize>) -> Option<PushConfig> {
        let url = self.pushgateway.as_ref()?;
        let mut cfg = PushConfig::new(url, &self.job, &self.instance_or_default(shard));
        cfg.interval = self.push_interval;
        cfg.delete_on_finish = self.pushgateway_delete;
        cfg.grouping.extend(self.run_id.iter().map(|r| ("run".to_string(), r.clone())));
        Some(cfg)
    }
}

/// `HOSTNAME-SHARD`, or `HOSTNAME-PID` without a shard index.
pub fn default_instance(shard: Option<usize>) -> String {
    match shard {
        Some(s) => format!("{}-{}", hostname(), s),
        None => format!("{}-{}", hostname(), std::process::id()),
    }
}

/// This machine's host name (`localhost` if it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast::<libc::c_char>(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        if !name.is_empty() {
            return name;
        }
    }
    "localhost".to_string()
}

fn parse_push_interval(s: &str) -> Result<Duration, String> {
    let d = crate::config::units::parse_duration(s)?;
    if d < Duration::from_millis(100) {
        return Err(format!("push interval {s:?} is below the 100ms minimum"));
    }
    Ok(d)
}

fn parse_pushgateway_url(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    if t.starts_with("https://") {
        return Err("https is not supported: herd pushes over plain http (put a TLS proxy on \
                    loopback in front of a remote Pushgateway)"
            .to_string());
    }
    if !t.starts_with("http://") || t.len() == "http://".len() {
        return Err(format!("{s:?} is not an http:// URL"));
    }
    Ok(t.to_string())
}

fn parse_job(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the job name must not be empty".to_string());
    }
    Ok(s.to_string())
}

fn parse_prefix(s: &str) -> Result<String, String> {
    let p = s.trim_end_matches('_');
    let valid = p
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()));
    if !valid {
        return Err(format!(
            "{s:?} is not a valid metric name prefix (letters, digits, '_' and ':', not \
             starting with a digit)"
        ));
    }
    Ok(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        metrics: MetricsArgs,
    }

    #[test]
    fn flags_parse_and_default() {
        let cli = Cli::try_parse_from(["herd"]).unwrap();
        assert_eq!(cli.metrics.pushgateway, None);
        assert_eq!(cli.metrics.push_interval, Duration::from_secs(5));
        assert_eq!(cli.metrics.metrics_prefix, "herd");
        assert!(cli.metrics.push_config(None).is_none());

        let cli = Cli::try_parse_from([
            "herd",
            "--pushgateway",
            "http://localhost:9091/",
            "--push-interval",
            "500ms",
            "--job",
            "chat",
            "--instance",
            "box/1",
            "--metrics-prefix",
            "lt_",
            "--pushgateway-delete",
        ])
        .unwrap();
        let m = &cli.metrics;
        assert_eq!(m.pushgateway.as_deref(), Some("http://localhost:9091"));
        assert_eq!(m.metrics_prefix, "lt");
        let cfg = m.push_config(Some(3)).unwrap();
        assert_eq!(cfg.interval, Duration::from_millis(500));
        assert_eq!(cfg.instance, "box/1");
        assert!(cfg.delete_on_finish);

        assert!(Cli::try_parse_from(["herd", "--pushgateway", "https://x:9091"]).is_err());
        assert!(Cli::try_parse_from(["herd", "--pushgateway", "localhost:9091"]).is_err());
        assert!(Cli::try_parse_from(["herd", "--push-interval", "10ms"]).is_err());
        assert!(Cli::try_parse_from(["herd", "--metrics-prefix", "9x"]).is_err());
        assert!(Cli::try_parse_from(["herd", "--job", ""]).is_err());
    }

    #[test]
    fn default_instance_names_host_and_shard_or_pid() {
        let host = hostname();
        assert!(!host.is_empty());
        assert_eq!(default_instance(Some(2)), format!("{host}-2"));
        assert_eq!(default_instance(None), format!("{host}-{}", std::process::id()));
    }
}
