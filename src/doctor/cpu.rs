//! The executor check: how many executors `herd run` starts by default on this host and why
//! (the affinity mask or the cgroup CPU quota, `crate::cpu`). It caps no connection count.

use super::report::{Allows, Check, Status};
use crate::cpu::Budget;

/// The check's name in the report.
pub const NAME: &str = "executors (CPU mask, cgroup quota)";

/// One line for the executor count, from a [`Budget`] (pure).
pub fn executors(b: &Budget) -> Check {
    let n = b.limit();
    let cut = b.quota.as_ref().is_some_and(|q| q.whole_cpus() < b.affinity.len());
    Check {
        name: NAME,
        knob: None,
        value: format!("{n} of {} core(s)", b.affinity.len().max(1)),
        allows: Allows::Unbounded,
        status: if cut || b.quota_error.is_some() { Status::Advice } else { Status::Ok },
        note: format!("herd run starts {n} executor(s) by default: {}", b.reason()),
        fix: if cut {
            "raise the container's CPU limit (a whole number of CPUs; Guaranteed QoS lets the static CPU manager \
             pin them), or --threads N to run more executors than the quota pays for"
                .into()
        } else {
            "none needed (--threads N overrides)".into()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Quota;

    #[test]
    fn the_check_says_how_many_executors_and_why() {
        let q = Quota { quota_us: 400_000, period_us: 100_000, source: "/sys/fs/cgroup/cpu.max".into() };
        let b = Budget { affinity: (0..64).collect(), quota: Some(q), quota_error: None };
        let c = executors(&b);
        assert_eq!(c.value, "4 of 64 core(s)");
        assert_eq!(c.status, Status::Advice);
        assert!(c.note.contains("starts 4 executor(s)") && c.note.contains("/sys/fs/cgroup/cpu.max"), "{}", c.note);
        let b = Budget { affinity: vec![0, 1], quota: None, quota_error: None };
        let c = executors(&b);
        assert_eq!((c.value.as_str(), c.status), ("2 of 2 core(s)", Status::Ok));
        assert!(c.note.contains("no cgroup CPU quota"), "{}", c.note);
    }
}
