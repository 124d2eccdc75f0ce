//! The CPU quota of this process's cgroup, read from cgroup v2 `cpu.max` or v1
//! `cpu.cfs_quota_us` / `cpu.cfs_period_us`: pure parsers over the files' text, and one reader
//! over a directory laid out like /sys/fs/cgroup (so tests can lay one out in a temp dir).
//!
//! A quota may be set on the process's own cgroup or on any ancestor (Kubernetes sets it on the
//! container's cgroup, a node's slice may set another): the smallest one along the path binds.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// A CPU quota: `quota_us` of CPU time per `period_us` of wall time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quota {
    pub quota_us: u64,
    pub period_us: u64,
    /// The file it came from, for messages (`/sys/fs/cgroup/cpu.max`).
    pub source: String,
}

impl Quota {
    /// The CPUs the quota amounts to (may be fractional: 1500m is 1.5).
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us.max(1) as f64
    }

    /// Whole CPUs, rounded down, never 0: one executor per whole CPU the quota pays for. A
    /// fractional rest would be time an extra pinned executor waits throttled, which is latency
    /// herd would measure as the target's.
    pub fn whole_cpus(&self) -> usize {
        ((self.quota_us / self.period_us.max(1)) as usize).max(1)
    }
}

/// cgroup v2 `cpu.max`: `max 100000` (no quota) or `QUOTA PERIOD`. `Ok(None)`: no quota.
pub fn parse_cpu_max(text: &str) -> Result<Option<(u64, u64)>, String> {
    let mut words = text.split_whitespace();
    let (q, p) = (words.next(), words.next());
    let period = match p {
        Some(p) => p.parse::<u64>().map_err(|_| format!("period {p:?} is not a number"))?,
        None => 100_000,
    };
    match q {
        None => Err("empty".into()),
        Some("max") => Ok(None),
        Some(q) => {
            let quota = q.parse::<u64>().map_err(|_| format!("quota {q:?} is neither \"max\" nor a number"))?;
            if period == 0 {
                return Err("period 0".into());
            }
            Ok(Some((quota, period)))
        }
    }
}

/// cgroup v1 `cpu.cfs_quota_us` (-1: no quota) and `cpu.cfs_period_us`.
pub fn parse_cfs(quota: &str, period: &str) -> Result<Option<(u64, u64)>, String> {
    let q: i64 = quota.trim().parse().map_err(|_| format!("cpu.cfs_quota_us {:?} is not a number", quota.trim()))?;
    let p: u64 = period.trim().parse().map_err(|_| format!("cpu.cfs_period_us {:?} is not a number", period.trim()))?;
    if q < 0 {
        return Ok(None);
    }
    if p == 0 {
        return Err("cpu.cfs_period_us is 0".into());
    }
    Ok(Some((q as u64, p)))
}

/// This process's cgroup paths from `/proc/self/cgroup`: the v2 path (`0::/path`) and the v1
/// path of the `cpu` controller (`4:cpu,cpuacct:/path`).
pub fn own_paths(proc_self_cgroup: &str) -> (Option<String>, Option<String>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(c), Some(p)) => (id, c, p),
            _ => continue,
        };
        if controllers.is_empty() {
            v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "cpu") {
            v1 = Some(path.to_string());
        }
    }
    (v2, v1)
}

/// `dir` and each of its ancestors up to `root`, deepest first. A path that does not exist
/// under `root` (the host's path seen from a container without a cgroup namespace) is skipped.
fn up_to_root(root: &Path, path: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut rel = PathBuf::from(path.trim_start_matches('/'));
    loop {
        let d = root.join(&rel);
        if d.is_dir() {
            out.push(d);
        }
        if !rel.pop() {
            break;
        }
    }
    if out.last().map(PathBuf::as_path) != Some(root) && root.is_dir() {
        out.push(root.to_path_buf());
    }
    out
}

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// The smallest quota set on this process's cgroup or its ancestors, read under `root` (the
/// cgroup mount, `/sys/fs/cgroup`) for the paths of `proc_self_cgroup`. `Err` when a quota file
/// exists but cannot be understood (the caller says so and falls back to the affinity mask).
pub fn read_quota(root: &Path, proc_self_cgroup: &str) -> Result<Option<Quota>, String> {
    let (v2, v1) = own_paths(proc_self_cgroup);
    let mut found: Vec<Quota> = vec![];
    let mut keep = |q: Option<(u64, u64)>, source: &Path| {
        if let Some((quota_us, period_us)) = q {
            found.push(Quota { quota_us, period_us, source: source.display().to_string() });
        }
    };
    if let Some(path) = v2 {
        for d in up_to_root(root, &path) {
            let f = d.join("cpu.max");
            if let Some(text) = read(&f) {
                keep(parse_cpu_max(&text).map_err(|e| format!("{}: {e}", f.display()))?, &f);
            }
        }
    }
    if let Some(path) = v1 {
        for mount in ["cpu", "cpu,cpuacct", "cpuacct,cpu"] {
            let base = root.join(mount);
            if !base.is_dir() {
                continue;
            }
            for d in up_to_root(&base, &path) {
                let (qf, pf) = (d.join("cpu.cfs_quota_us"), d.join("cpu.cfs_period_us"));
                if let (Some(q), Some(p)) = (read(&qf), read(&pf)) {
                    keep(parse_cfs(&q, &p).map_err(|e| format!("{}: {e}", d.display()))?, &qf);
                }
            }
            break;
        }
    }
    Ok(found.into_iter().min_by(|a, b| a.cpus().total_cmp(&b.cpus())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_and_cfs_files_parse() {
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert_eq!(parse_cpu_max("400000 100000\n"), Ok(Some((400_000, 100_000))));
        assert_eq!(parse_cpu_max("150000 100000"), Ok(Some((150_000, 100_000))));
        assert!(parse_cpu_max("lots 100000").unwrap_err().contains("lots"));
        assert!(parse_cpu_max("").is_err());
        assert!(parse_cpu_max("1000 0").is_err());
        assert_eq!(parse_cfs("-1\n", "100000\n"), Ok(None));
        assert_eq!(parse_cfs("200000\n", "100000\n"), Ok(Some((200_000, 100_000))));
        assert!(parse_cfs("x", "100000").unwrap_err().contains("cfs_quota_us"));
        assert!(parse_cfs("1", "0").is_err());
    }

    #[test]
    fn whole_cpus_round_down_and_never_reach_zero() {
        let q = |quota_us, period_us| Quota { quota_us, period_us, source: String::new() };
        assert_eq!(q(400_000, 100_000).whole_cpus(), 4);
        assert_eq!(q(150_000, 100_000).whole_cpus(), 1);
        assert_eq!(q(350_000, 100_000).whole_cpus(), 3);
        assert_eq!(q(50_000, 100_000).whole_cpus(), 1);
        assert_eq!(q(50_000, 100_000).cpus(), 0.5);
    }

    #[test]
    fn own_paths_come_from_proc_self_cgroup() {
        assert_eq!(own_paths("0::/kubepods/pod1/c1\n"), (Some("/kubepods/pod1/c1".into()), None));
        let v1 = "12:memory:/x\n4:cpu,cpuacct:/kubepods/burstable/pod2/c2\n1:name=systemd:/y\n";
        assert_eq!(own_paths(v1), (None, Some("/kubepods/burstable/pod2/c2".into())));
        assert_eq!(own_paths("garbage"), (None, None));
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn v2_quota_is_the_smallest_along_the_path() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, "cpu.max", "max 100000\n");
        write(root, "kubepods/cpu.max", "max 100000\n");
        write(root, "kubepods/pod1/cpu.max", "600000 100000\n");
        write(root, "kubepods/pod1/c1/cpu.max", "250000 100000\n");
        let q = read_quota(root, "0::/kubepods/pod1/c1\n").unwrap().unwrap();
        assert_eq!((q.quota_us, q.period_us, q.whole_cpus()), (250_000, 100_000, 2));
        assert!(q.source.ends_with("kubepods/pod1/c1/cpu.max"), "{}", q.source);
        // A parent tighter than the container binds.
        write(root, "kubepods/cpu.max", "100000 100000\n");
        let q = read_quota(root, "0::/kubepods/pod1/c1\n").unwrap().unwrap();
        assert_eq!(q.whole_cpus(), 1);
        // Inside a cgroup namespace the process sees its own cgroup as the root.
        let ns = tempfile::tempdir().unwrap();
        write(ns.path(), "cpu.max", "300000 100000\n");
        assert_eq!(read_quota(ns.path(), "0::/\n").unwrap().unwrap().whole_cpus(), 3);
        write(ns.path(), "cpu.max", "max 100000\n");
        assert_eq!(read_quota(ns.path(), "0::/\n").unwrap(), None);
        write(ns.path(), "cpu.max", "bogus\n");
        assert!(read_quota(ns.path(), "0::/\n").unwrap_err().contains("cpu.max"));
    }

    #[test]
    fn v1_cfs_quota_is_read_from_the_cpu_controller() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(root, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
        write(root, "cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        write(root, "cpu,cpuacct/kubepods/pod2/c2/cpu.cfs_quota_us", "400000\n");
        write(root, "cpu,cpuacct/kubepods/pod2/c2/cpu.cfs_period_us", "100000\n");
        let cg = "4:cpu,cpuacct:/kubepods/pod2/c2\n0::/\n";
        let q = read_quota(root, cg).unwrap().unwrap();
        assert_eq!((q.whole_cpus(), q.cpus()), (4, 4.0));
        assert!(q.source.ends_with("cpu.cfs_quota_us"), "{}", q.source);
        // No quota anywhere.
        write(root, "cpu,cpuacct/kubepods/pod2/c2/cpu.cfs_quota_us", "-1\n");
        assert_eq!(read_quota(root, cg).unwrap(), None);
        // The host's path seen from a container without a cgroup namespace: the mount root holds
        // the container's own files.
        let ctr = tempfile::tempdir().unwrap();
        write(ctr.path(), "cpu/cpu.cfs_quota_us", "150000\n");
        write(ctr.path(), "cpu/cpu.cfs_period_us", "100000\n");
        assert_eq!(read_quota(ctr.path(), "3:cpu:/docker/abc\n").unwrap().unwrap().whole_cpus(), 1);
    }
}
