//! Splitting one scenario over several herd processes: the shard a process runs (`--shard I/N`,
//! `--shards N` with `JOB_COMPLETION_INDEX`) and the conversations it owns. Waiting to start
//! together is `drive::shard`'s.
//!
//! A shard owns whole conversations: conversation `c` belongs to shard `c % N`. So N workers
//! together open exactly the conversations (same ids) of the one-process scenario, and each
//! conversation's sender and receivers live in one process, on one clock: latency needs no clock
//! synchronisation between machines.
//!
//! Inside a Kubernetes Indexed Job each pod gets its index in `JOB_COMPLETION_INDEX`: `--shards N`
//! takes the index from there. `HERD_SHARD=I/N` is the same as `--shard I/N`.

use clap::Args;
use serde::{Serialize, Serializer};
use std::fmt;

/// Shard `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Shard {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Shard {
    /// Whether this shard owns conversation `c`.
    pub fn owns(&self, c: u64) -> bool {
        c % self.count as u64 == self.index as u64
    }

    /// How many of `total` conversations this shard owns.
    pub fn len_of(&self, total: u32) -> u32 {
        let (q, r) = (total / self.count, total % self.count);
        q + u32::from(self.index < r)
    }
}

/// The conversations a process runs: all of them, or its shard's, in ascending order.
pub fn conversations(total: u32, shard: Option<Shard>) -> Vec<u64> {
    (0..total as u64).filter(|&c| shard.is_none_or(|s| s.owns(c))).collect()
}

/// The flags of a sharded run. Flattened into `herd run`'s flags.
#[derive(Args, Debug, Default, Clone)]
pub struct ShardArgs {
    /// Run only shard I of N (0-based): the conversations c with c % N == I. N processes with
    /// shards 0/N .. N-1/N together run exactly the whole scenario
    #[arg(long, env = "HERD_SHARD", value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Split into N shards and take this process's index from JOB_COMPLETION_INDEX (set by a
    /// Kubernetes Indexed Job)
    #[arg(long, value_name = "N", value_parser = crate::config::units::parse_count_u32)]
    pub shards: Option<u32>,
    /// The index for --shards (Kubernetes sets JOB_COMPLETION_INDEX in an Indexed Job's pods)
    #[arg(long, env = "JOB_COMPLETION_INDEX", hide = true, value_name = "I")]
    pub job_completion_index: Option<String>,
    /// Connect, then wait until TIME (RFC 3339, e.g. 2026-05-01T12:00:00Z, or unix seconds) to
    /// start sending; a process connected after TIME starts at once and notes it in its results
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<f64>,
    /// Connect, then wait until K of the N shards are connected (they meet on the --pushgateway)
    /// to start sending: for clusters whose pods start minutes apart
    #[arg(long, value_name = "K/N", value_parser = crate::drive::start_when::parse_start_when, conflicts_with = "start_at")]
    pub start_when: Option<crate::drive::start_when::StartWhen>,
    /// How long --start-when waits for the shards before the worker gives up with an error
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::config::units::parse_duration)]
    pub start_when_timeout: std::time::Duration,
}

/// `I/N` with I < N.
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s.trim().split_once('/').ok_or_else(|| format!("{s:?} is not I/N (e.g. 0/3)"))?;
    let index: u32 = i.trim().parse().map_err(|_| format!("{s:?}: shard index {i:?} is not a number"))?;
    let count: u32 = n.trim().parse().map_err(|_| format!("{s:?}: shard count {n:?} is not a number"))?;
    if count == 0 {
        return Err(format!("{s:?}: the shard count must be at least 1"));
    }
    if index >= count {
        return Err(format!("{s:?}: the index must be below the count (0 to {})", count - 1));
    }
    Ok(Shard { index, count })
}

/// RFC 3339 (`2026-05-01T12:00:00Z`, `2026-05-01T14:00:00.5+02:00`) or unix seconds
/// (`1777636800`, `1777636800.25`), as unix seconds.
pub fn parse_start_at(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("{s:?} is not a time: unix seconds must be positive"));
        }
        return Ok(secs);
    }
    let dt = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is neither RFC 3339 (2026-05-01T12:00:00Z) nor unix seconds: {e}"))?;
    Ok(dt.unix_timestamp_nanos() as f64 / 1e9)
}

/// The shard of this process from its flags: `--shard I/N` (or `HERD_SHARD`), or `--shards N`
/// with the index from `JOB_COMPLETION_INDEX`. Checked against the scenario's conversations.
pub fn resolve(a: &ShardArgs, conversations: u32) -> Result<Option<Shard>, String> {
    let shard = match (a.shards, a.shard) {
        (Some(_), Some(_)) => {
            return Err("--shards: give either --shard I/N (or HERD_SHARD) or --shards N, not both".into());
        }
        (Some(0), None) => return Err("--shards: must be at least 1".into()),
        (Some(n), None) => {
            let raw = a.job_completion_index.as_deref().ok_or_else(|| {
                "--shards: JOB_COMPLETION_INDEX is not set (it is set in the pods of a Kubernetes Indexed Job; \
                 elsewhere use --shard I/N)"
                    .to_string()
            })?;
            let index: u32 =
                raw.trim().parse().map_err(|_| format!("--shards: JOB_COMPLETION_INDEX {raw:?} is not a number"))?;
            if index >= n {
                return Err(format!("--shards: JOB_COMPLETION_INDEX {index} is not below --shards {n}"));
            }
            Some(Shard { index, count: n })
        }
        (None, s) => s,
    };
    if let Some(s) = shard {
        if s.count > conversations {
            return Err(format!(
                "--shard: {s} leaves shards without a conversation ({conversations} conversations for {} shards)",
                s.count
            ));
        }
    }
    Ok(shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_nonsense() {
        assert_eq!(parse_shard("2/3").unwrap(), Shard { index: 2, count: 3 });
        assert_eq!(parse_shard(" 0 / 1 ").unwrap().to_string(), "0/1");
        for bad in ["3/3", "1/0", "x/3", "1", "-1/3", ""] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_partition_the_conversations_exactly() {
        for total in [1u32, 2, 7, 10, 1000] {
            for n in 1..=total.min(7) {
                let mut all = vec![];
                for i in 0..n {
                    let s = Shard { index: i, count: n };
                    let mine = conversations(total, Some(s));
                    assert_eq!(mine.len() as u32, s.len_of(total));
                    all.extend(mine);
                }
                all.sort();
                assert_eq!(all, conversations(total, None), "{total} in {n}");
            }
        }
        assert_eq!(conversations(7, Some(Shard { index: 1, count: 3 })), vec![1, 4]);
    }

    #[test]
    fn shard_comes_from_flag_or_job_index() {
        let a = ShardArgs { shard: Some(Shard { index: 1, count: 3 }), ..Default::default() };
        assert_eq!(resolve(&a, 10).unwrap(), Some(Shard { index: 1, count: 3 }));
        let a = ShardArgs { shards: Some(3), job_completion_index: Some("2".into()), ..Default::default() };
        assert_eq!(resolve(&a, 10).unwrap(), Some(Shard { index: 2, count: 3 }));
        assert_eq!(resolve(&ShardArgs::default(), 10).unwrap(), None);
        let err = |a: ShardArgs| resolve(&a, 10).unwrap_err();
        assert!(err(ShardArgs { shards: Some(3), ..Default::default() }).contains("JOB_COMPLETION_INDEX is not set"));
        let e = err(ShardArgs { shards: Some(3), job_completion_index: Some("3".into()), ..Default::default() });
        assert!(e.contains("not below --shards 3"), "{e}");
        let e = err(ShardArgs { shards: Some(3), job_completion_index: Some("x".into()), ..Default::default() });
        assert!(e.contains("not a number"), "{e}");
        let both = ShardArgs { shards: Some(3), shard: Some(Shard { index: 0, count: 3 }), ..Default::default() };
        assert!(err(both).contains("not both"));
        let a = ShardArgs { shard: Some(Shard { index: 0, count: 11 }), ..Default::default() };
        assert!(err(a).contains("without a conversation"));
    }

    #[test]
    fn start_at_takes_rfc3339_or_unix_seconds() {
        assert_eq!(parse_start_at("1777636800").unwrap(), 1777636800.0);
        assert_eq!(parse_start_at("1777636800.25").unwrap(), 1777636800.25);
        assert_eq!(parse_start_at("2026-05-01T12:00:00Z").unwrap(), 1777636800.0);
        assert_eq!(parse_start_at("2026-05-01T14:00:00.5+02:00").unwrap(), 1777636800.5);
        assert!(parse_start_at("tomorrow").unwrap_err().contains("RFC 3339"));
        assert!(parse_start_at("-5").is_err());
    }
}
