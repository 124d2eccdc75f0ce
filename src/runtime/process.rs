//! What the generator process itself costs: resident memory and CPU time, read from the kernel.

/// Resident set size in bytes (from /proc/self/statm), 0 if unreadable.
pub fn rss_bytes() -> u64 {
    let page = page_size();
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| parse_statm_rss_pages(&s))
        .map(|p| p * page)
        .unwrap_or(0)
}

/// Returns freed heap memory to the kernel (glibc `malloc_trim`), so that RSS shows what is
/// held rather than what a burst once needed.
pub fn trim_heap() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

/// Peak resident set size in bytes (VmHWM), 0 if unreadable.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn parse_statm_rss_pages(s: &str) -> Option<u64> {
    s.split_whitespace().nth(1)?.parse().ok()
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// User and system CPU seconds used by the whole process so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cpu {
    pub user_s: f64,
    pub sys_s: f64,
}

impl Cpu {
    pub fn now() -> Cpu {
        // SAFETY: getrusage writes into the struct we pass.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Cpu { user_s: tv(u.ru_utime), sys_s: tv(u.ru_stime) }
    }

    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu { user_s: self.user_s - earlier.user_s, sys_s: self.sys_s - earlier.sys_s }
    }

    pub fn total_s(self) -> f64 {
        self.user_s + self.sys_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(rss_bytes() > 0);
        assert!(peak_rss_bytes() >= rss_bytes() / 2);
        let a = Cpu::now();
        // Spin for 20 ms of wall time: some of it is this process's CPU time, however busy the
        // host.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(x > 0);
        assert!(Cpu::now().since(a).total_s() > 0.0);
        assert_eq!(parse_statm_rss_pages("10 20 30"), Some(20));
        assert_eq!(parse_statm_rss_pages("garbage"), None);
    }
}
