//! How many executors a run starts by default: one per CPU this process may use, which is the
//! affinity mask (cpusets, `taskset`, the kubelet's static CPU manager) or the cgroup CPU quota
//! (a container's CPU limit), whichever is smaller.
//!
//! Under the kubelet's default CPU-manager policy (`none`) a pod limited to 4 CPUs on a 64-core
//! node sees all 64 cores in its affinity mask; 64 pinned executors would then share 4 CPUs of
//! time and be throttled in turns, which shows as delivery latency herd would blame on the
//! target. `cgroup.rs` reads the quota; [`Budget`] decides; [`resolve`] applies it to a run's
//! scenario when neither `--threads` nor `--cores` chose the executors.

pub mod cgroup;

pub use cgroup::Quota;

use crate::config::args::{self, RunArgs};
use crate::config::scenario::Scenario;
use serde::Serialize;
use std::path::Path;

/// The CPUs this process may use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    /// The cores of the affinity mask.
    pub affinity: Vec<usize>,
    /// The cgroup's CPU quota, if one is set.
    pub quota: Option<Quota>,
    /// Why the quota could not be read, if so (the affinity mask alone then decides).
    pub quota_error: Option<String>,
}

impl Budget {
    /// Reads this host: the affinity mask, `/proc/self/cgroup` and `/sys/fs/cgroup`.
    pub fn detect() -> Budget {
        Budget::read(
            crate::runtime::executor::online_cores(),
            Path::new("/sys/fs/cgroup"),
            Path::new("/proc/self/cgroup"),
        )
    }

    /// Reads the quota under `cgroup_root` for the cgroup paths listed in `proc_self_cgroup`.
    pub fn read(affinity: Vec<usize>, cgroup_root: &Path, proc_self_cgroup: &Path) -> Budget {
        let own = std::fs::read_to_string(proc_self_cgroup).unwrap_or_default();
        let (quota, quota_error) = match cgroup::read_quota(cgroup_root, &own) {
            Ok(q) => (q, None),
            Err(e) => (None, Some(e)),
        };
        Budget { affinity, quota, quota_error }
    }

    /// Executors by default: the smaller of the affinity mask and the quota's whole CPUs, never 0.
    pub fn limit(&self) -> usize {
        let mask = self.affinity.len().max(1);
        self.quota.as_ref().map_or(mask, |q| q.whole_cpus().min(mask))
    }

    /// The default cores: the first [`Budget::limit`] cores of the affinity mask.
    pub fn cores(&self) -> Vec<usize> {
        let mut c = if self.affinity.is_empty() { vec![0] } else { self.affinity.clone() };
        c.truncate(self.limit());
        c
    }

    /// What bounds the executor count, in words.
    pub fn reason(&self) -> String {
        let mask = format!("{} core(s) in the affinity mask", self.affinity.len().max(1));
        match (&self.quota, &self.quota_error) {
            (Some(q), _) if q.whole_cpus() < self.affinity.len() => format!(
                "the cgroup CPU quota ({} us per {} us in {}) allows {:.2} CPU(s), {QUOTA_CUT} {mask}",
                q.quota_us,
                q.period_us,
                q.source,
                q.cpus()
            ),
            (Some(q), _) => format!("the {mask}; the cgroup CPU quota ({}) allows {:.2} CPU(s)", q.source, q.cpus()),
            (None, Some(e)) => format!("the {mask} (the cgroup CPU quota could not be read: {e})"),
            (None, None) => format!("the {mask}; no cgroup CPU quota is set"),
        }
    }

    /// The results' `scenario.executors`: how many executors run and why.
    pub fn explain(&self, executors: usize, chosen_by: Option<&str>) -> String {
        match chosen_by {
            Some(flag) if executors > self.limit() => format!(
                "{executors} executor(s) from {flag}, {OVER} {} this process may use ({}): they take turns on \
                 the CPU, which shows as latency",
                self.limit(),
                self.reason()
            ),
            Some(flag) => {
                format!("{executors} executor(s) from {flag}, within the {} this process may use", self.limit())
            }
            None => format!("{executors} executor(s): {}", self.reason()),
        }
    }
}

/// [`args::resolve`] with the default executor count sized to `budget`: when neither
/// `--threads` nor `--cores` (flag or scenario file: both arrive as flags) chose the executors,
/// the run gets [`Budget::cores`], and the embedded server as many unless `--server-threads`
/// says. Pure: `budget` is what [`Budget::detect`] read.
pub fn resolve(a: &RunArgs, budget: &Budget) -> crate::error::Result<Scenario> {
    let mut s = args::resolve(a, &budget.affinity)?;
    let chosen_by = if a.threads.is_some() {
        Some("--threads")
    } else if a.cores.is_some() {
        Some("--cores")
    } else {
        None
    };
    if chosen_by.is_none() {
        s.cores = budget.cores();
        if a.server_threads.is_none() {
            s.server_threads = s.cores.len() as u32;
        }
    }
    s.executors = budget.explain(s.cores.len(), chosen_by);
    Ok(s)
}

/// A note for the results when the quota matters: it cut the executor count, or a flag asked
/// for more executors than it pays for.
pub fn note(s: &Scenario) -> Option<String> {
    (s.executors.contains(QUOTA_CUT) || s.executors.contains(OVER)).then(|| s.executors.clone())
}

/// The words [`Budget::explain`] uses when the quota cut the count, and when a flag exceeds it.
const QUOTA_CUT: &str = "fewer than the";
const OVER: &str = "more than the";

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(affinity: usize, quota: Option<(u64, u64)>) -> Budget {
        Budget {
            affinity: (0..affinity).collect(),
            quota: quota.map(|(quota_us, period_us)| Quota { quota_us, period_us, source: "cpu.max".into() }),
            quota_error: None,
        }
    }

    #[test]
    fn the_smaller_of_mask_and_quota_wins() {
        assert_eq!(budget(64, Some((400_000, 100_000))).cores(), vec![0, 1, 2, 3]);
        assert_eq!(budget(2, Some((400_000, 100_000))).cores(), vec![0, 1]);
        assert_eq!(budget(8, None).cores().len(), 8);
        assert_eq!(budget(8, Some((10_000, 100_000))).cores(), vec![0]);
        assert_eq!(budget(0, None).cores(), vec![0]);
    }

    #[test]
    fn the_scenario_gets_the_quota_unless_threads_or_cores_say() {
        let b = budget(16, Some((300_000, 100_000)));
        let s = resolve(&RunArgs::default(), &b).unwrap();
        assert_eq!((s.cores.clone(), s.server_threads), (vec![0, 1, 2], 3));
        assert!(s.executors.starts_with("3 executor(s): the cgroup CPU quota"), "{}", s.executors);
        assert!(note(&s).is_some());

        let a = RunArgs { threads: Some(8), ..Default::default() };
        let s = resolve(&a, &b).unwrap();
        assert_eq!(s.cores.len(), 8);
        assert!(s.executors.contains("more than the 3"), "{}", s.executors);
        assert!(note(&s).unwrap().contains("--threads"));

        let a = RunArgs { cores: Some("5,9".into()), server_threads: Some(1), ..Default::default() };
        let s = resolve(&a, &b).unwrap();
        assert_eq!((s.cores.clone(), s.server_threads), (vec![5, 9], 1));
        assert!(note(&s).is_none(), "{}", s.executors);

        let s = resolve(&RunArgs::default(), &budget(2, None)).unwrap();
        assert_eq!(s.cores, vec![0, 1]);
        assert!(s.executors.contains("no cgroup CPU quota"), "{}", s.executors);
        assert!(note(&s).is_none());
    }

    #[test]
    fn detect_reads_a_laid_out_cgroup_tree() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cpu.max"), "200000 100000\n").unwrap();
        let own = d.path().join("self-cgroup");
        std::fs::write(&own, "0::/\n").unwrap();
        let b = Budget::read((0..6).collect(), d.path(), &own);
        assert_eq!(b.cores(), vec![0, 1]);
        assert!(b.reason().contains("2.00 CPU(s), fewer than the 6 core(s)"), "{}", b.reason());
        std::fs::write(d.path().join("cpu.max"), "2 cpus\n").unwrap();
        let b = Budget::read((0..6).collect(), d.path(), &own);
        assert_eq!(b.cores().len(), 6);
        assert!(b.reason().contains("could not be read"), "{}", b.reason());
    }
}
