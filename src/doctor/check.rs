//! The pure checks: [`evaluate`] turns a [`HostLimits`] and a target into a [`Report`].

use super::host::{HostLimits, Reading, UNLIMITED};
use super::knobs::*;
use super::report::{Allows, Check, Report, Status};

const SYSCTL_FILE: &str = "tuning/sysctl.d/90-herd.conf";
const LIMIT_FILES: &str = "tuning/limits.d/90-herd.conf (logins) or tuning/systemd/herd.conf (services)";

/// Formats a byte count with a binary unit: `8 MiB`, `23.2 GiB`.
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut value, mut unit) = (bytes as f64, 0);
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn fmt_limit(v: u64) -> String {
    if v == UNLIMITED {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

fn fmt_bytes_limit(v: u64) -> String {
    if v == UNLIMITED {
        "unlimited".into()
    } else {
        fmt_bytes(v)
    }
}

fn sysctl_fix(knob: &str, value: impl std::fmt::Display) -> String {
    let value = value.to_string();
    let arg = if value.contains(' ') { format!("\"{value}\"") } else { value };
    format!("sysctl -w {knob}={arg}  (persist: {SYSCTL_FILE})")
}

/// Builds the check from a reading: `present` handles a value, the rest is uniform.
fn from<T>(
    name: &'static str,
    knob: Option<&'static str>,
    reading: &Reading<T>,
    fix: String,
    present: impl FnOnce(&T) -> (String, Allows, String),
) -> Check {
    let (value, allows, status, note) = match reading {
        Reading::Value(v) => {
            let (value, allows, note) = present(v);
            (value, allows, Status::Ok, note)
        }
        Reading::NotPresent => {
            ("not present".into(), Allows::Unbounded, Status::NotPresent, "limits nothing on this host".into())
        }
        Reading::Unreadable(e) => ("unreadable".into(), Allows::Unknown, Status::Unreadable, e.clone()),
    };
    Check { name, knob, value, allows, status, note, fix }
}

fn advise_below(mut c: Check, current: Option<&u64>, wanted: u64) -> Check {
    if c.status == Status::Ok && current.is_some_and(|v| *v < wanted) {
        c.status = Status::Advice;
    }
    c
}

/// Evaluates `host` for `connections` (if given) spread over `source_ips` source addresses.
pub fn evaluate(host: &HostLimits, connections: Option<u64>, source_ips: u64) -> Report {
    let source_ips = source_ips.max(1);
    let n = connections.unwrap_or(0);
    let fds = n.saturating_add(FD_RESERVE);
    let nofile_target = TUNED_NOFILE.max(fds);
    let fd_allows = |v: u64| {
        if v == UNLIMITED {
            Allows::Unbounded
        } else {
            Allows::Connections(v.saturating_sub(FD_RESERVE))
        }
    };
    let fd_note = format!(
        "one descriptor per connection, {FD_RESERVE} kept for herd itself; \
         herd raises its soft limit to this at start"
    );
    let mut checks = Vec::new();

    checks.push(from(
        "RLIMIT_NOFILE (soft)",
        Some("nofile"),
        &host.nofile_soft,
        format!("none needed: herd raises it to the hard limit; `ulimit -n {nofile_target}` sets both"),
        |&v| {
            let note = "not a cap: herd raises its soft limit to the hard limit at start";
            (fmt_limit(v), Allows::Unbounded, note.into())
        },
    ));
    checks.push(from(
        "RLIMIT_NOFILE (hard)",
        Some("nofile"),
        &host.nofile_hard,
        format!(
            "as root: ulimit -n {nofile_target} in the shell that starts herd; \
             persist: {LIMIT_FILES}; it cannot exceed fs.nr_open"
        ),
        |&v| (fmt_limit(v), fd_allows(v), fd_note.clone()),
    ));

    checks.push(from(
        "fs.nr_open",
        Some("fs.nr_open"),
        &host.nr_open,
        sysctl_fix("fs.nr_open", TUNED_NR_OPEN.max(nofile_target)),
        |&v| (v.to_string(), fd_allows(v), "the most RLIMIT_NOFILE any process may have".into()),
    ));

    let in_use = host.files_in_use.value().copied().unwrap_or(0);
    checks.push(from(
        "fs.file-max",
        Some("fs.file-max"),
        &host.file_max,
        sysctl_fix("fs.file-max", TUNED_FILE_MAX.max(fds.saturating_add(in_use))),
        |&v| {
            (
                v.to_string(),
                Allows::Connections(v.saturating_sub(in_use).saturating_sub(FD_RESERVE)),
                format!("open files system-wide; {in_use} already open"),
            )
        },
    ));

    let (lo, hi) = TUNED_PORT_RANGE;
    let tuned_ports = hi - lo + 1;
    let mut port_fix = sysctl_fix("net.ipv4.ip_local_port_range", format!("{lo} {hi}"));
    if n > tuned_ports.saturating_mul(source_ips) {
        let need = n.div_ceil(tuned_ports);
        port_fix.push_str(&format!(
            "; and spread over at least {need} source addresses (herd run --source-ip with {need} addresses, \
             e.g. 127.0.0.1-127.0.0.{need} on loopback; herd doctor --source-ips {need} checks it)"
        ));
    } else {
        port_fix.push_str("; more source addresses (herd run --source-ip) or destinations multiply it");
    }
    // Linux's connect() first takes ports of one parity (half the range) and searches the rest
    // slowly: with one source address, connects slow down well before the range is used up.
    port_fix.push_str(
        "; with one source address connect() slows down past about half the range (the kernel \
         searches the other half port by port)",
    );
    checks.push(from(
        "net.ipv4.ip_local_port_range",
        Some("net.ipv4.ip_local_port_range"),
        &host.port_range,
        port_fix,
        |&(a, b)| {
            let ports = b - a + 1;
            (
                format!("{a} {b}"),
                Allows::Connections(ports.saturating_mul(source_ips)),
                format!("{ports} ports x {source_ips} source address(es), per destination ip:port"),
            )
        },
    ));

    let page = host.page_size.max(1);
    let need_pages = n.saturating_mul(TCP_MEM_BYTES_PER_CONN).div_ceil(page);
    let tuned_high = TUNED_TCP_MEM[2];
    let mem_fix = if need_pages > tuned_high {
        format!("{} {} {}", need_pages / 2, need_pages / 3 * 2, need_pages)
    } else {
        TUNED_TCP_MEM.map(|v| v.to_string()).join(" ")
    };
    checks.push(from(
        "net.ipv4.tcp_mem",
        Some("net.ipv4.tcp_mem"),
        &host.tcp_mem,
        sysctl_fix("net.ipv4.tcp_mem", mem_fix),
        |&[l, p, h]| {
            (
                format!("{l} {p} {h}"),
                Allows::Connections(h.saturating_mul(page) / TCP_MEM_BYTES_PER_CONN),
                format!(
                    "high mark {} at {} of socket buffers per connection; pressure from {}",
                    fmt_bytes(h.saturating_mul(page)),
                    fmt_bytes(TCP_MEM_BYTES_PER_CONN),
                    fmt_bytes(p.saturating_mul(page))
                ),
            )
        },
    ));

    let mut conntrack = from(
        "net.netfilter.nf_conntrack_max",
        Some("net.netfilter.nf_conntrack_max"),
        &host.nf_conntrack_max,
        sysctl_fix("net.netfilter.nf_conntrack_max", TUNED_CONNTRACK_MAX.max(n)),
        |&v| (v.to_string(), Allows::Connections(v), "one tracked flow per connection (~320 bytes each)".into()),
    );
    if conntrack.status == Status::NotPresent {
        conntrack.note = "connection tracking is not loaded, so it limits nothing".into();
        conntrack.fix = format!("none needed; if nf_conntrack gets loaded: {}", conntrack.fix);
    }
    checks.push(conntrack);

    let per_conn = KERNEL_BYTES_PER_CONN + HERD_BYTES_PER_CONN;
    let mem_fix = match connections {
        Some(n) => format!(
            "no knob: {n} connections need about {}; add memory, stop other work or spread the load over more hosts",
            fmt_bytes(n.saturating_mul(per_conn))
        ),
        None => "no knob: add memory, stop other work or spread the load over more hosts".into(),
    };
    checks.push(from("MemAvailable", None, &host.mem_available, mem_fix, |&v| {
        (
            fmt_bytes(v),
            Allows::Connections(v / per_conn),
            format!(
                "at about {} kernel + {} herd per connection",
                fmt_bytes(KERNEL_BYTES_PER_CONN),
                fmt_bytes(HERD_BYTES_PER_CONN)
            ),
        )
    }));

    checks.push(memlock(host));
    checks.push(io_uring(host));

    let c = from(
        "net.core.somaxconn",
        Some("net.core.somaxconn"),
        &host.somaxconn,
        sysctl_fix("net.core.somaxconn", TUNED_BACKLOG),
        |&v| {
            (v.to_string(), Allows::Unbounded,
              "caps a listener's accept queue: matters for a server on this host (loopback runs), not herd's own connections".into())
        },
    );
    checks.push(advise_below(c, host.somaxconn.value(), TUNED_BACKLOG));
    let c = from(
        "net.ipv4.tcp_max_syn_backlog",
        Some("net.ipv4.tcp_max_syn_backlog"),
        &host.tcp_max_syn_backlog,
        sysctl_fix("net.ipv4.tcp_max_syn_backlog", TUNED_BACKLOG),
        |&v| {
            (
                v.to_string(),
                Allows::Unbounded,
                "half-open connections a listener on this host holds during connect bursts".into(),
            )
        },
    );
    checks.push(advise_below(c, host.tcp_max_syn_backlog.value(), TUNED_BACKLOG));
    let mut c = from(
        "net.ipv4.tcp_tw_reuse",
        Some("net.ipv4.tcp_tw_reuse"),
        &host.tcp_tw_reuse,
        sysctl_fix("net.ipv4.tcp_tw_reuse", 1),
        |&v| {
            (
                v.to_string(),
                Allows::Unbounded,
                "1 lets reconnects reuse ports still in TIME-WAIT (2: loopback only, 0: never)".into(),
            )
        },
    );
    if c.status == Status::Ok && host.tcp_tw_reuse.value() != Some(&1) {
        c.status = Status::Advice;
    }
    checks.push(c);

    Report::new(host.clone(), connections, source_ips, checks)
}

fn memlock(host: &HostLimits) -> Check {
    let fix = format!("ulimit -l {TUNED_MEMLOCK_KIB} (KiB) in the shell that starts herd; persist: {LIMIT_FILES}");
    let hard = host.memlock_hard.value().copied();
    from("RLIMIT_MEMLOCK (soft)", Some("memlock"), &host.memlock_soft, fix, |&v| {
        let value = match hard {
            Some(h) => format!("{} (hard {})", fmt_bytes_limit(v), fmt_bytes_limit(h)),
            None => fmt_bytes_limit(v),
        };
        if v < GLOMMIO_MIN_MEMLOCK {
            let note = format!("glommio refuses to start an executor below {}", fmt_bytes(GLOMMIO_MIN_MEMLOCK));
            return (value, Allows::Connections(0), note);
        }
        let note = "does not bound the executor count above 512 KiB: herd's executors do no file I/O, and glommio \
                    registers its 64 KiB buffers only where the limit allows (measured: 64 server executors at \
                    1 MiB, 128 at 8 MiB)"
            .to_string();
        (value, Allows::Unbounded, note)
    })
}

fn io_uring(host: &HostLimits) -> Check {
    let fix = sysctl_fix("kernel.io_uring_disabled", 0);
    let mut c = from(
        "kernel.io_uring_disabled",
        Some("kernel.io_uring_disabled"),
        &host.io_uring_disabled,
        fix,
        |&v| match v {
            0 => ("0".into(), Allows::Unbounded, "io_uring available to every process".into()),
            1 => (
                "1".into(),
                Allows::Unbounded,
                "io_uring restricted to CAP_SYS_ADMIN and members of kernel.io_uring_group".into(),
            ),
            v => (v.to_string(), Allows::Connections(0), "io_uring disabled: glommio cannot start".into()),
        },
    );
    match c.status {
        Status::NotPresent => {
            c.note = "kernel older than 6.6: io_uring is not restricted by sysctl".into();
            c.fix = "none needed".into();
        }
        Status::Ok if host.io_uring_disabled.value() == Some(&1) => c.status = Status::Advice,
        _ => {}
    }
    c
}
