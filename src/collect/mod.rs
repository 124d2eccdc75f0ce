//! `herd collect`: the results path of a distributed run. Workers (`herd run --collect URL`)
//! POST their results JSON to it; it keeps each as a file (`--dir`, for `herd merge` by hand
//! too), merges them exactly with `herd merge`'s code once every shard settled or at
//! `--deadline`, and writes and serves the merged JSON and the HTML report. Every shard missing
//! from the merge is named with why (its worker failed and said how, started and went silent, or
//! was never heard from).
//!
//! Why a collector and not logs: a run's results grow with its length (`series`), container
//! runtimes cut log lines at 8-16 KiB, and logs vanish with their node. An HTTP body has no such
//! limit, and the collector outlives the workers.
//!
//! Layout: `store.rs` (the shards' state and the merge; no sockets), `serve.rs` (HTTP),
//! `post.rs` (the worker's side, with bounded retries), `groups.rs` (the run's Pushgateway
//! groups, deleted when the run is merged).

pub mod groups;
pub mod post;
pub mod serve;
pub mod store;

pub use post::PostArgs;

use crate::error::{Error, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct CollectArgs {
    /// How many shards the run has (`herd run --shards N`)
    #[arg(long, value_name = "N", value_parser = crate::config::units::parse_count_u32)]
    pub shards: u32,
    /// Where to listen (http)
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8090")]
    pub listen: std::net::SocketAddr,
    /// Directory for the shards' results, merged.json and report.html (a persistent volume keeps
    /// them across a restart of the collector)
    #[arg(long, value_name = "DIR", default_value = "herd-collect")]
    pub dir: PathBuf,
    /// The run's id: results of another run are refused (the workers' `--run-id`)
    #[arg(long, env = "HERD_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,
    /// Merge what has arrived this long after the collector started, even if shards are missing
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::config::units::parse_duration)]
    pub deadline: Duration,
    /// Once merged, delete this run's groups (label run=ID) from this Pushgateway, after
    /// --keep-groups (so that Prometheus scrapes their last values)
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// How long the run's Pushgateway groups stay after the merge
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = crate::config::units::parse_duration)]
    pub keep_groups: Duration,
    /// Exit this long after the merge [default: serve until SIGTERM or Ctrl-C]
    #[arg(long, value_name = "DURATION", value_parser = crate::config::units::parse_duration)]
    pub exit_after: Option<Duration>,
}

/// `herd collect`: serves until a signal (or `--exit-after` past the merge). Exit 0 when a merge
/// was written, 69 when none could be (no shard posted results).
pub fn main(a: &CollectArgs) -> Result<i32> {
    if a.shards == 0 {
        return Err(Error::Usage("--shards: must be at least 1".into()));
    }
    if a.pushgateway.is_some() && a.run_id.is_none() {
        return Err(Error::Usage("--pushgateway: needs --run-id (only the run's own groups are deleted)".into()));
    }
    let store = store::Store::open(&a.dir, a.shards, a.run_id.clone())?;
    let server = tiny_http::Server::http(a.listen)
        .map_err(|e| Error::Unavailable(format!("--listen {}: cannot listen: {e}", a.listen)))?;
    let addr = server.server_addr().to_ip().map_or_else(|| a.listen.to_string(), |s| s.to_string());
    let signals = crate::runtime::signal::Signals::install()?;
    crate::errln!(
        "herd collect: listening on http://{addr} for {} shard(s){}, merging at the latest in {:?}; files in {}",
        a.shards,
        a.run_id.as_deref().map(|r| format!(" of run {r}")).unwrap_or_default(),
        a.deadline,
        a.dir.display()
    );
    let mut c = serve::Collector {
        store,
        deadline: Instant::now() + a.deadline,
        merged: Default::default(),
        say: Box::new(|m| crate::errln!("herd collect: {m}")),
    };
    let mut merged_at = None::<Instant>;
    let mut groups_deleted = false;
    loop {
        c.step(&server);
        if c.merged.doc.is_some() && merged_at.is_none() {
            merged_at = Some(Instant::now());
        }
        if let (Some(t), Some(pg), Some(run), false) = (merged_at, &a.pushgateway, &a.run_id, groups_deleted) {
            if t.elapsed() >= a.keep_groups {
                groups_deleted = true;
                match groups::delete_run(pg, run) {
                    Ok(n) => crate::errln!("herd collect: deleted {n} Pushgateway group(s) of run {run}"),
                    Err(e) => crate::errln!("herd collect: the run's Pushgateway groups were not deleted: {e}"),
                }
            }
        }
        if signals.count() > 0 || a.exit_after.zip(merged_at).is_some_and(|(d, t)| t.elapsed() >= d) {
            break;
        }
    }
    match (&c.merged.doc, &c.merged.error) {
        (Some(_), _) => Ok(0),
        (None, Some(e)) => Err(Error::Unavailable(e.clone())),
        (None, None) => {
            Err(Error::Unavailable(format!("stopped before the merge: {}", c.store.status()["shard_states"])))
        }
    }
}
