//! `herd kube`: prints the Kubernetes manifests of one distributed run from `herd run`'s own
//! flags, so that N, the image and the scenario are given once: the workers' Indexed Job, the
//! run's `herd collect` (a one-pod Job and its Service) and the run id that ties them together.
//!
//! Why a renderer in herd rather than kustomize or Helm: the run's flags are parsed and the
//! scenario resolved by herd itself before any pod exists (a bad flag fails here, not in 50
//! pods), the deadlines follow from the scenario (ramp, duration, drain), and the user needs
//! only kubectl. The long-lived parts (namespaces, monitoring) are plain files in
//! deploy/kubernetes/. `render.rs` turns a [`Plan`] into YAML (pure).

pub mod render;

pub use render::{render, Plan, Seccomp};

use crate::error::{Error, Result};
use clap::{Args, Parser};
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct KubeArgs {
    /// Worker pods (one shard each, on N different nodes)
    #[arg(long, value_name = "N", value_parser = crate::config::units::parse_count_u32)]
    pub shards: u32,
    /// The herd image the pods run (built from the Dockerfile)
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// The run id: names the run's resources and labels its metrics [default: rYYYYMMDD-HHMMSS-XXXX, new each time]
    #[arg(long, value_name = "ID", value_parser = parse_kube_run_id)]
    pub run_id: Option<String>,
    /// The workers' namespace (Pod Security: see docs/KUBERNETES.md)
    #[arg(long, value_name = "NAME", default_value = "herd")]
    pub namespace: String,
    /// The Pushgateway the workers push to (`none`: no live metrics)
    #[arg(long, value_name = "URL", default_value = "http://pushgateway.herd-monitoring.svc:9091")]
    pub pushgateway: String,
    /// CPUs per worker (requests = limits: Guaranteed QoS; whole CPUs let the static CPU manager
    /// pin them). herd starts one executor per whole CPU of the limit
    #[arg(long, value_name = "CPUS", default_value = "4")]
    pub cpu: String,
    /// Memory per worker: about 10 KiB per connection plus 200 MiB
    #[arg(long, value_name = "QUANTITY", default_value = "2Gi")]
    pub memory: String,
    /// The workers' seccomp profile: `localhost` (deploy/seccomp/herd-io-uring.json
    /// installed on the nodes) or `unconfined` (needs a privileged namespace)
    #[arg(long, value_enum, default_value = "localhost")]
    pub seccomp: Seccomp,
    /// Run workers in the node's network namespace (the node's addresses and port range, no
    /// overlay; needs a privileged namespace)
    #[arg(long)]
    pub host_network: bool,
    /// How long --start-when waits for all N workers before they give up
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::config::units::parse_duration)]
    pub start_within: Duration,
    /// How long the collector serves the merged results after the merge
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = crate::config::units::parse_duration)]
    pub keep_results: Duration,
    /// A PersistentVolumeClaim for the collector's files [default: an emptyDir, kept across
    /// restarts of its container, not of its pod]
    #[arg(long, value_name = "CLAIM")]
    pub collect_claim: Option<String>,
    /// `herd run` flags of the scenario (after `--`), e.g. -- --url ws://chat:8080/conv/{conv} -c 30000
    #[arg(last = true, value_name = "RUN FLAGS", required = true)]
    pub run: Vec<String>,
}

/// A run id that can name Kubernetes objects: lower-case letters, digits and `-`, at most 40.
fn parse_kube_run_id(s: &str) -> std::result::Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if !ok {
        return Err(format!("{s:?}: 1 to 40 of a-z, 0-9 and '-' (it names Kubernetes objects)"));
    }
    Ok(s.to_string())
}

/// `herd run`'s flags alone, to check the run flags as a worker will parse them.
#[derive(clap::Parser, Debug)]
struct RunOnly {
    #[command(flatten)]
    run: crate::config::args::RunArgs,
}

/// Flags `herd kube` sets itself on every worker.
const OWN_FLAGS: [&str; 10] = [
    "--shard",
    "--shards",
    "--out",
    "--collect",
    "--run-id",
    "--pushgateway",
    "--start-at",
    "--start-when",
    "--start-when-timeout",
    "--report",
];

/// A fresh run id: the UTC time and 16 random bits.
pub fn new_run_id(unix_s: u64, random: u16) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_s as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "r{:04}{:02}{:02}-{:02}{:02}{:02}-{random:04x}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Checks the run flags with herd's own parser and resolves the scenario (as shard 0 of N);
/// returns the plan.
pub fn plan(a: &KubeArgs) -> Result<Plan> {
    for f in &a.run {
        let name = f.split('=').next().unwrap_or("");
        if OWN_FLAGS.contains(&name) {
            return Err(Error::Usage(format!(
                "{name}: herd kube sets it on every worker; leave it out of the run flags"
            )));
        }
    }
    if a.shards < 1 {
        return Err(Error::Usage("--shards: must be at least 1".into()));
    }
    let mut argv = vec!["herd run".to_string()];
    argv.extend(a.run.iter().cloned());
    argv.extend(["--shard".to_string(), format!("0/{}", a.shards)]);
    let run = RunOnly::try_parse_from(&argv).map_err(|e| Error::Usage(format!("the run flags: {e}")))?.run;
    if run.scenario.is_some() {
        return Err(Error::Usage(
            "--scenario: a file is not in the image; give the scenario as flags to herd kube".into(),
        ));
    }
    let s = crate::config::args::resolve(&run, &[0])?;
    let connections = s.connections();
    // The longest a worker can take: waiting for the others, its ramp (as `herd run` bounds it),
    // sending, draining, closing and posting.
    let ramp = Duration::from_secs_f64(connections as f64 / s.connect_rate.max(1.0))
        + s.connect_timeout
        + Duration::from_secs(30);
    let worker_s = (a.start_within + ramp + s.duration + s.drain + Duration::from_secs(300)).as_secs();
    let now = crate::drive::shard::unix_now() as u64;
    let run_id = a.run_id.clone().unwrap_or_else(|| new_run_id(now, random16()));
    Ok(Plan {
        run_id,
        shards: a.shards,
        image: a.image.clone(),
        namespace: a.namespace.clone(),
        pushgateway: (a.pushgateway != "none").then(|| a.pushgateway.clone()),
        cpu: a.cpu.clone(),
        memory: a.memory.clone(),
        seccomp: a.seccomp,
        host_network: a.host_network,
        run_flags: a.run.clone(),
        start_within: a.start_within,
        worker_deadline_s: worker_s,
        collect_deadline_s: worker_s + 120,
        keep_results_s: a.keep_results.as_secs(),
        collect_claim: a.collect_claim.clone(),
    })
}

/// 16 random bits (std's hasher keys are random per process).
fn random16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish() as u16
}

/// `herd kube`: prints the manifests.
pub fn main(a: &KubeArgs) -> Result<()> {
    let p = plan(a)?;
    crate::out!("{}", render(&p));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_objects() {
        assert_eq!(new_run_id(1_796_532_900, 0x3fa2), "r20261206-045500-3fa2");
        assert!(parse_kube_run_id("r20261206-045500-3fa2").is_ok());
        for bad in ["", "Run1", "-a", "a-", "a_b", &"a".repeat(41)] {
            assert!(parse_kube_run_id(bad).is_err(), "{bad}");
        }
    }
}
