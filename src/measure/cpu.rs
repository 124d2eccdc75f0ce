//! How much CPU herd's own executor threads got: their time on a CPU and their run-queue wait
//! (the kernel's per-thread `schedstat`), and the CPU quota of herd's cgroup. Read once per
//! interval per core and once per run, never per message; the parsers are pure.
//!
//! Run-queue wait is time a thread was ready to run and waited for a CPU: a core that waits
//! sends late, and that lateness lands in corrected latency (see `send_lag` in `stats.rs`).

use std::path::{Path, PathBuf};

/// One reading of a thread's scheduler statistics, nanoseconds since the thread started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedStat {
    /// Time on a CPU.
    pub run_ns: u64,
    /// Time ready to run, waiting on a run queue.
    pub wait_ns: u64,
}

/// Parses `/proc/<pid>/task/<tid>/schedstat`: "run_ns wait_ns timeslices". `None` for anything
/// else (the file is absent without `CONFIG_SCHED_INFO`).
pub fn parse_schedstat(text: &str) -> Option<SchedStat> {
    let mut f = text.split_ascii_whitespace();
    let run_ns = f.next()?.parse().ok()?;
    let wait_ns = f.next()?.parse().ok()?;
    f.next()?.parse::<u64>().ok()?;
    Some(SchedStat { run_ns, wait_ns })
}

/// This thread's scheduler statistics; `None` where the kernel does not give them.
pub fn this_thread() -> Option<SchedStat> {
    parse_schedstat(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
}

/// Where a process's CPU limit is written, from `/proc/self/cgroup`: the cgroup v2 directory
/// (`0::/path`) or, under cgroup v1, the directory of the `cpu` controller. Paths are relative
/// to the hierarchy's mount (`/sys/fs/cgroup` or `/sys/fs/cgroup/cpu`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupDir {
    V2(String),
    V1Cpu(String),
}

/// Parses `/proc/self/cgroup`; a v1 `cpu` controller line wins over the v2 line (a hybrid host
/// limits CPU through v1).
pub fn parse_cgroup(text: &str) -> Option<CgroupDir> {
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if controllers.is_empty() {
            v2 = Some(CgroupDir::V2(path.to_string()));
        } else if controllers.split(',').any(|c| c == "cpu") {
            return Some(CgroupDir::V1Cpu(path.to_string()));
        }
    }
    v2
}

/// Parses cgroup v2 `cpu.max` ("max 100000" or "150000 100000"): the quota in CPUs, `None`
/// without a limit or for anything unreadable.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut f = text.split_ascii_whitespace();
    let quota = f.next()?;
    let period: f64 = f.next()?.parse().ok()?;
    let quota: f64 = quota.parse().ok()?;
    (period > 0.0 && quota > 0.0).then(|| quota / period)
}

/// cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`: the quota in CPUs; -1 is no limit.
pub fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let q: i64 = quota.trim().parse().ok()?;
    let p: i64 = period.trim().parse().ok()?;
    (q > 0 && p > 0).then(|| q as f64 / p as f64)
}

/// The CPU quota (in CPUs) herd runs under: the tightest `cpu.max` from its cgroup up to the
/// root (a parent's limit binds its children), `None` when no level sets one or the files are
/// not readable (a container that hides them).
pub fn quota_cores() -> Option<f64> {
    let dir = parse_cgroup(&std::fs::read_to_string("/proc/self/cgroup").ok()?)?;
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let (root, rel) = match &dir {
        CgroupDir::V2(p) => (Path::new("/sys/fs/cgroup"), p),
        CgroupDir::V1Cpu(p) => (Path::new("/sys/fs/cgroup/cpu"), p),
    };
    let mut tightest: Option<f64> = None;
    let mut at = PathBuf::from(rel.trim_start_matches('/'));
    loop {
        let d = root.join(&at);
        let q = match &dir {
            CgroupDir::V2(_) => read(d.join("cpu.max")).and_then(|t| parse_cpu_max(&t)),
            CgroupDir::V1Cpu(_) => match (read(d.join("cpu.cfs_quota_us")), read(d.join("cpu.cfs_period_us"))) {
                (Some(q), Some(p)) => parse_cfs(&q, &p),
                _ => None,
            },
        };
        if let Some(q) = q {
            tightest = Some(tightest.map_or(q, |t: f64| t.min(q)));
        }
        if !at.pop() {
            break;
        }
    }
    tightest
}

/// The executor threads' CPU over a span of the run (the send phase), from two readings of
/// their summed statistics ([`threads`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuShare {
    /// Executor threads that gave statistics.
    pub threads: u64,
    /// The span, seconds of wall time.
    pub wall_s: f64,
    /// Summed over the threads, seconds.
    pub run_s: f64,
    pub wait_s: f64,
}

impl CpuShare {
    /// Between two readings (`from` earlier) summed over `threads` threads, `wall_ns` apart.
    pub fn between(from: SchedStat, to: SchedStat, threads: u64, wall_ns: u64) -> CpuShare {
        let s = |ns: u64| ns as f64 / 1e9;
        CpuShare {
            threads,
            wall_s: s(wall_ns),
            run_s: s(to.run_ns.saturating_sub(from.run_ns)),
            wait_s: s(to.wait_ns.saturating_sub(from.wait_ns)),
        }
    }

    /// Share of the span (per thread) spent waiting for a CPU, 0..=1.
    pub fn wait_share(&self) -> f64 {
        self.per_thread(self.wait_s)
    }

    /// Share of the span (per thread) spent on a CPU, 0..=1.
    pub fn busy_share(&self) -> f64 {
        self.per_thread(self.run_s)
    }

    fn per_thread(&self, s: f64) -> f64 {
        let span = self.wall_s * self.threads as f64;
        if span > 0.0 {
            (s / span).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// The summed statistics of these threads of this process (herd's executors: see
/// `Heartbeats::tids`), and how many gave them; `None` when none did. Read at the send phase's
/// start and end: one small file per thread, twice a run.
pub fn threads(tids: &[i32]) -> Option<(SchedStat, u64)> {
    let mut sum = SchedStat::default();
    let mut n = 0;
    for tid in tids {
        let Ok(text) = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")) else { continue };
        if let Some(st) = parse_schedstat(&text) {
            sum.run_ns += st.run_ns;
            sum.wait_ns += st.wait_ns;
            n += 1;
        }
    }
    (n > 0).then_some((sum, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_has_run_wait_and_slices() {
        assert_eq!(parse_schedstat("431921 51948 1\n"), Some(SchedStat { run_ns: 431_921, wait_ns: 51_948 }));
        assert_eq!(parse_schedstat("431921 51948"), None, "three fields or it is not schedstat");
        assert_eq!(parse_schedstat("a b c"), None);
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn this_threads_statistics_grow_while_it_runs() {
        // Kernels without CONFIG_SCHED_INFO give none: then there is nothing to check.
        let Some(a) = this_thread() else { return };
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let b = this_thread().expect("read once, readable again");
        let wall = t.elapsed().as_nanos() as u64;
        assert!(b.run_ns > a.run_ns, "{a:?} -> {b:?}");
        assert!(b.wait_ns >= a.wait_ns, "{a:?} -> {b:?}");
        // One thread is either on a CPU or waiting for one, never both: together they cannot
        // outgrow the wall time (others' load moves time from one to the other).
        let grew = (b.run_ns + b.wait_ns) - (a.run_ns + a.wait_ns);
        assert!(grew <= wall + 1_000_000, "grew {grew} ns in {wall} ns");
    }

    #[test]
    fn cgroup_files_name_the_cpu_limits_directory() {
        assert_eq!(parse_cgroup("0::/user.slice/herd.scope\n"), Some(CgroupDir::V2("/user.slice/herd.scope".into())));
        let hybrid = "9:name=systemd:/\n4:memory:/a/b\n1:cpu,cpuacct:/box\n0::/\n";
        assert_eq!(parse_cgroup(hybrid), Some(CgroupDir::V1Cpu("/box".into())));
        assert_eq!(parse_cgroup("4:memory:/a\n"), None);
        assert_eq!(parse_cgroup("garbage"), None);
    }

    #[test]
    fn quotas_are_in_cpus_and_max_is_none() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("50000"), None);
        assert_eq!(parse_cpu_max("x 100000"), None);
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("200000\n", "100000\n"), Some(2.0));
        assert_eq!(parse_cfs("", "100000"), None);
    }

    #[test]
    fn threads_are_read_by_id_and_summed() {
        let Some(_) = this_thread() else { return };
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        let other = std::thread::spawn(|| unsafe { libc::gettid() }).join().unwrap();
        let (one, n) = threads(&[me]).expect("this thread is readable");
        assert_eq!(n, 1);
        assert!(one.run_ns > 0, "{one:?}");
        assert_eq!(threads(&[me, other]).map(|(_, n)| n), Some(1), "a thread that ended gives nothing");
        assert!(threads(&[]).is_none());
    }

    #[test]
    fn shares_are_per_thread_of_the_span() {
        let from = SchedStat { run_ns: 1_000_000_000, wait_ns: 0 };
        let to = SchedStat { run_ns: 2_000_000_000, wait_ns: 1_500_000_000 };
        let s = CpuShare::between(from, to, 2, 5_000_000_000);
        assert!((s.busy_share() - 0.1).abs() < 1e-9, "{s:?}");
        assert!((s.wait_share() - 0.15).abs() < 1e-9, "{s:?}");
        assert_eq!(CpuShare::between(to, from, 2, 5_000_000_000).wait_s, 0.0, "a reset never goes negative");
        assert_eq!(CpuShare::default().wait_share(), 0.0, "no span, no share");
    }
}
