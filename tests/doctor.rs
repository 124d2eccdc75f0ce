//! Tests of `herd doctor`: the pure checks on handmade hosts, the real host, the binary, and
//! that `tuning/` sets exactly the knobs doctor checks.

use herd::doctor::{self, Allows, HostLimits, Reading, Status, UNLIMITED};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const GIB: u64 = 1 << 30;

/// A host after tuning/apply.sh, with 16 GiB free and 8 CPUs.
fn tuned() -> HostLimits {
    HostLimits {
        nofile_soft: Reading::Value(2_097_152),
        nofile_hard: Reading::Value(2_097_152),
        nr_open: Reading::Value(4_194_304),
        file_max: Reading::Value(4_194_304),
        files_in_use: Reading::Value(2_000),
        port_range: Reading::Value((1024, 65535)),
        somaxconn: Reading::Value(65535),
        tcp_max_syn_backlog: Reading::Value(65535),
        tcp_mem: Reading::Value([786_432, 1_048_576, 1_572_864]),
        nf_conntrack_max: Reading::Value(2_097_152),
        tcp_tw_reuse: Reading::Value(1),
        io_uring_disabled: Reading::Value(0),
        memlock_soft: Reading::Value(256 << 20),
        memlock_hard: Reading::Value(256 << 20),
        mem_available: Reading::Value(16 * GIB),
        page_size: 4096,
        cpus: 8,
    }
}

/// A stock host: the defaults of this build machine.
fn stock() -> HostLimits {
    HostLimits {
        nofile_soft: Reading::Value(20_000),
        nofile_hard: Reading::Value(20_000),
        nr_open: Reading::Value(1_048_576),
        file_max: Reading::Value(2_466_170),
        port_range: Reading::Value((32768, 60999)),
        somaxconn: Reading::Value(4096),
        tcp_max_syn_backlog: Reading::Value(2048),
        tcp_mem: Reading::Value([287_898, 383_867, 575_796]),
        nf_conntrack_max: Reading::Value(262_144),
        tcp_tw_reuse: Reading::Value(2),
        memlock_soft: Reading::Value(8 << 20),
        memlock_hard: Reading::Value(8 << 20),
        mem_available: Reading::Value(23 * GIB),
        cpus: 2,
        ..tuned()
    }
}

fn binding(report: &doctor::Report) -> &str {
    report.binding.as_deref().unwrap_or("none")
}

fn allows(report: &doctor::Report, name: &str) -> Allows {
    report.check(name).unwrap().allows
}

fn status(report: &doctor::Report, name: &str) -> Status {
    report.check(name).unwrap().status
}

fn has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}

#[test]
fn tuned_host_reaches_a_million_over_16_source_addresses() {
    let r = doctor::evaluate(&tuned(), Some(1_000_000), 16);
    assert_eq!(r.exit_code, 0, "{}", doctor::text(&r));
    let text = doctor::text(&r);
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{text}");
    has(&text, "verdict: REACHABLE");
    let c = Allows::Connections;
    assert_eq!(allows(&r, "net.ipv4.ip_local_port_range"), c(64512 * 16));
    assert_eq!(allows(&r, "net.ipv4.tcp_mem"), c(1_572_864));
    assert_eq!(allows(&r, "RLIMIT_NOFILE (hard)"), c(2_097_152 - 64));
    assert_eq!(allows(&r, "fs.file-max"), c(4_194_304 - 2_000 - 64));
    assert_eq!(allows(&r, "MemAvailable"), c(16 * GIB / 7168));
}

#[test]
fn one_source_address_binds_on_ports_with_the_fix_named() {
    let r = doctor::evaluate(&tuned(), Some(1_000_000), 1);
    assert_eq!(r.exit_code, 69);
    assert_eq!(binding(&r), "net.ipv4.ip_local_port_range");
    let ports = r.check("net.ipv4.ip_local_port_range").unwrap();
    assert_eq!(ports.status, Status::Binds);
    has(&ports.fix, "herd run --source-ip with 16 addresses");
    has(&ports.fix, "herd doctor --source-ips 16");
    has(&ports.fix, "half the range");
}

#[test]
fn stock_host_binds_first_on_the_soft_fd_limit() {
    let r = doctor::evaluate(&stock(), Some(5_000_000), 1);
    assert_eq!(r.exit_code, 69);
    assert_eq!(binding(&r), "RLIMIT_NOFILE (hard)");
    assert_eq!(r.ceiling, Allows::Connections(20_000 - 64));
    let binds = "RLIMIT_NOFILE (hard)|fs.nr_open|fs.file-max|net.ipv4.tcp_mem|MemAvailable";
    for name in binds.split('|').chain(["net.netfilter.nf_conntrack_max"]) {
        assert_eq!(status(&r, name), Status::Binds, "{name}");
    }
    let fix = &r.check("fs.nr_open").unwrap().fix;
    assert_eq!(fix, "sysctl -w fs.nr_open=5000064  (persist: tuning/sysctl.d/90-herd.conf)");
    has(&r.check("RLIMIT_NOFILE (hard)").unwrap().fix, "ulimit -n 5000064 ");
    for name in "net.core.somaxconn net.ipv4.tcp_max_syn_backlog net.ipv4.tcp_tw_reuse".split(' ') {
        assert_eq!(status(&r, name), Status::Advice, "{name}");
    }
    // Below every cap the same host is fine, with advice only.
    let r = doctor::evaluate(&stock(), Some(1000), 1);
    assert_eq!(r.exit_code, 0, "{}", doctor::text(&r));
    assert_eq!(binding(&r), "RLIMIT_NOFILE (hard)");
}

#[test]
fn absent_knobs_limit_nothing_and_unreadable_ones_fail() {
    let mut host = tuned();
    host.nf_conntrack_max = Reading::NotPresent;
    host.io_uring_disabled = Reading::NotPresent;
    let r = doctor::evaluate(&host, Some(1_000_000), 16);
    assert_eq!(r.exit_code, 0);
    let c = r.check("net.netfilter.nf_conntrack_max").unwrap();
    let got = (c.status, c.allows, c.value.as_str());
    assert_eq!(got, (Status::NotPresent, Allows::Unbounded, "not present"));

    host.tcp_mem = Reading::Unreadable("bad text".into());
    let r = doctor::evaluate(&host, Some(1_000_000), 16);
    assert_eq!(r.exit_code, 70);
    has(&r.verdict, "net.ipv4.tcp_mem");
    // A limit known to bind still gives 69.
    let r = doctor::evaluate(&host, Some(1_000_000), 1);
    assert_eq!(r.exit_code, 69);
}

#[test]
fn memlock_and_io_uring() {
    let mut host = tuned();
    host.memlock_soft = Reading::Value(64 << 10);
    let r = doctor::evaluate(&host, Some(10), 1);
    assert_eq!(r.exit_code, 69);
    assert_eq!(binding(&r), "RLIMIT_MEMLOCK (soft)");
    // Above glommio's 512 KiB floor the limit does not bound the executor count (herd's
    // executors do no file I/O; glommio registers buffers only where the limit allows): 1 MiB
    // with 8 CPUs is fine.
    host.memlock_soft = Reading::Value(1 << 20);
    let r = doctor::evaluate(&host, Some(10), 1);
    assert_eq!(r.exit_code, 0);
    assert_eq!(status(&r, "RLIMIT_MEMLOCK (soft)"), Status::Ok);
    host.memlock_soft = Reading::Value(UNLIMITED);
    let r = doctor::evaluate(&host, Some(10), 1);
    assert_eq!(status(&r, "RLIMIT_MEMLOCK (soft)"), Status::Ok);

    let cases = [(0, Status::Ok, 0), (1, Status::Advice, 0), (2, Status::Binds, 69)];
    for (value, want, code) in cases {
        host.io_uring_disabled = Reading::Value(value);
        let r = doctor::evaluate(&host, Some(10), 1);
        let got = (status(&r, "kernel.io_uring_disabled"), r.exit_code);
        assert_eq!(got, (want, code), "io_uring_disabled = {value}");
    }
}

#[test]
fn no_target_gives_the_ceiling_unlimited_rlimits_do_not_cap_and_pages_count() {
    let mut host = tuned();
    host.nofile_soft = Reading::Value(UNLIMITED);
    host.nofile_hard = Reading::Value(UNLIMITED);
    let r = doctor::evaluate(&host, None, 1);
    assert_eq!(r.exit_code, 0);
    assert_eq!(allows(&r, "RLIMIT_NOFILE (hard)"), Allows::Unbounded);
    assert_eq!(binding(&r), "net.ipv4.ip_local_port_range");
    has(&r.verdict, "allows up to 64512");
    assert!(r.checks.iter().all(|c| c.status != Status::Binds));

    // tcp_mem counts in the host's pages.
    host.page_size = 65536;
    host.tcp_mem = Reading::Value([100, 200, 300]);
    let r = doctor::evaluate(&host, None, 1);
    assert_eq!(allows(&r, "net.ipv4.tcp_mem"), Allows::Connections(300 * 16));
}

#[test]
fn every_check_is_about_a_checked_knob_and_back() {
    let r = doctor::evaluate(&tuned(), Some(1), 1);
    let from_checks: BTreeSet<&str> = r.checks.iter().filter_map(|c| c.knob).collect();
    let knobs: BTreeSet<&str> = doctor::checked_knobs().iter().copied().collect();
    assert_eq!(from_checks, knobs);
    for c in &r.checks {
        let name = c.name;
        assert!(!c.fix.is_empty() && !c.note.is_empty(), "{name}: fix and note");
    }
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["checks"][0]["allows"], "unbounded");
    assert_eq!(json["checks"][1]["allows"], 2_097_152 - 64);
    assert_eq!(json["checks"][1]["status"], "ok");
}

#[test]
fn reads_sane_values_from_this_host() {
    let host = HostLimits::read();
    let soft = *host.nofile_soft.value().expect("RLIMIT_NOFILE");
    assert!(soft >= 64 && soft <= *host.nofile_hard.value().unwrap());
    let (lo, hi) = *host.port_range.value().expect("port range");
    assert!(0 < lo && lo <= hi && hi <= 65535);
    let [l, p, h] = *host.tcp_mem.value().expect("tcp_mem");
    assert!(l <= p && p <= h && h > 0);
    assert!(*host.mem_available.value().expect("meminfo") > 1 << 20);
    assert!(*host.nr_open.value().unwrap() >= soft);
    assert!(host.page_size >= 4096 && host.cpus >= 1);
    assert!(!matches!(host.nf_conntrack_max, Reading::Unreadable(_)));
    assert!(!matches!(host.io_uring_disabled, Reading::Unreadable(_)));
    assert_eq!(doctor::evaluate(&host, None, 1).exit_code, 0);
}

fn herd(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_herd")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn binary_smoke() {
    let (code, out) = herd(&["doctor", "--connections", "1000"]);
    assert_eq!(code, 0, "{out}");
    has(&out, "verdict: REACHABLE");

    let expected = doctor::evaluate(&HostLimits::read(), Some(5_000_000), 1);
    let name = expected.binding.clone().unwrap();
    let (code, out) = herd(&["doctor", "--connections", "5000000"]);
    assert_eq!(code, 69, "{out}");
    has(&out, &format!("first limit to bind: {name}"));
    has(&out, "verdict: NOT REACHABLE");

    let (code, out) = herd(&["doctor", "--connections", "5m", "--json"]);
    assert_eq!(code, 69);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["connections"], 5_000_000);
    assert_eq!(json["binding"], name.as_str());

    let (code, _) = herd(&["doctor", "--connections", "lots"]);
    assert_eq!(code, 64, "a malformed count is a usage error (EX_USAGE)");
}

// ---- tuning/ stays in step with doctor ----

fn tuning(path: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tuning")).join(path)
}

fn settings(path: &str) -> Vec<String> {
    std::fs::read_to_string(tuning(path))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(String::from)
        .collect()
}

fn mib_to_kib(value: &str) -> String {
    let mib: u64 = value.strip_suffix('M').expect("a size in M").parse().unwrap();
    (mib * 1024).to_string()
}

/// (knob, value) pairs set by sysctl.d, limits.d (value in KiB for memlock) and systemd.
fn tuning_settings() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in settings("sysctl.d/90-herd.conf") {
        let (k, v) = line.split_once('=').expect("sysctl line has =");
        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push((k.trim().trim_start_matches('-').to_string(), v));
    }
    for line in settings("limits.d/90-herd.conf") {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 4, "{line}");
        out.push((f[2].to_string(), f[3].to_string()));
    }
    for line in settings("systemd/herd.conf").iter().filter(|l| !l.starts_with('[')) {
        let (k, v) = line.split_once('=').unwrap();
        let (knob, value) = match k {
            "LimitNOFILE" => ("nofile", v.to_string()),
            "LimitMEMLOCK" => ("memlock", mib_to_kib(v)),
            other => panic!("unexpected systemd setting {other}"),
        };
        out.push((knob.to_string(), value));
    }
    out
}

#[test]
fn tuning_sets_exactly_the_knobs_doctor_checks() {
    let set = tuning_settings();
    let tuned: BTreeSet<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
    let checked: BTreeSet<&str> = doctor::checked_knobs().iter().copied().collect();
    assert_eq!(tuned, checked);
    for (knob, value) in &set {
        assert_eq!(doctor::tuned_value(knob), Some(value.as_str()), "{knob}");
    }
    let readme = std::fs::read_to_string(tuning("README.md")).unwrap();
    for knob in checked {
        has(&readme, &format!("`{knob}`"));
    }
}

fn fresh_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herd-doctor-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn apply(root: &Path, proc_sys: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("bash")
        .arg(tuning("apply.sh"))
        .args(args)
        .env("HERD_PROC_SYS", proc_sys)
        .env("HERD_ETC", root.join("etc"))
        .env("HERD_STATE_DIR", root.join("state"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text.into_owned())
}

fn sysctl_values(proc_sys: &Path) -> Vec<(String, Option<String>)> {
    doctor::checked_knobs()
        .iter()
        .filter(|k| k.contains('.'))
        .map(|k| {
            let v = std::fs::read_to_string(proc_sys.join(k.replace('.', "/"))).ok();
            (k.to_string(), v)
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    let paths = entries.map(|e| e.path());
    paths.flat_map(|p| if p.is_dir() { files_under(&p) } else { vec![p] }).collect()
}

fn assert_no_files(dir: &Path) {
    let files = files_under(dir);
    assert!(files.is_empty(), "unexpected files: {files:?}");
}

fn dry_run_changes_nothing(root: &Path, proc_sys: &Path) {
    let before = sysctl_values(proc_sys);
    for args in [&["--dry-run"][..], &["--revert", "--dry-run"]] {
        let (code, out) = apply(root, proc_sys, args);
        assert_eq!(code, 0, "{out}");
        assert_eq!(sysctl_values(proc_sys), before, "{args:?} changed a knob:\n{out}");
        assert_no_files(&root.join("etc"));
        assert_no_files(&root.join("state"));
        if args.len() == 1 {
            for (knob, _) in tuning_settings().iter().filter(|(k, _)| k.contains('.')) {
                has(&out, &format!("\n{knob}: "));
            }
        }
    }
}

#[test]
fn apply_dry_run_changes_nothing() {
    let root = fresh_dir("dry");
    // First on a copy of this host's knobs, so that a script writing despite --dry-run fails
    // here before it could touch the host; then on /proc/sys itself.
    let copy = root.join("sys");
    for (knob, value) in sysctl_values(Path::new("/proc/sys")) {
        if let Some(value) = value {
            let path = copy.join(knob.replace('.', "/"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, value).unwrap();
        }
    }
    dry_run_changes_nothing(&root, &copy);
    dry_run_changes_nothing(&root, Path::new("/proc/sys"));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn apply_and_revert_on_a_copy_of_proc_sys() {
    let root = fresh_dir("copy");
    let proc_sys = root.join("sys");
    let stock = "fs/nr_open=1048576 fs/file-max=9223372036854775807 \
        net/ipv4/ip_local_port_range=32768\t60999 net/ipv4/tcp_mem=287898\t383867\t575796 \
        net/core/somaxconn=4096 net/ipv4/tcp_max_syn_backlog=8192 net/ipv4/tcp_tw_reuse=2";
    let stock: Vec<(&str, &str)> = stock.split(' ').map(|kv| kv.split_once('=').unwrap()).collect();
    for &(path, value) in &stock {
        let p = proc_sys.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{value}\n")).unwrap();
    }
    let read = |p: &str| std::fs::read_to_string(proc_sys.join(p)).unwrap().trim().to_string();
    let before = sysctl_values(&proc_sys);

    let (code, out) = apply(&root, &proc_sys, &["--dry-run"]);
    assert_eq!((code, sysctl_values(&proc_sys) == before), (0, true), "{out}");
    assert_no_files(&root.join("etc"));
    assert_no_files(&root.join("state"));

    let (code, out) = apply(&root, &proc_sys, &[]);
    assert_eq!(code, 0, "{out}");
    has(&out, "fs.nr_open: 1048576 -> 4194304");
    has(&out, "net.ipv4.tcp_max_syn_backlog: 8192 -> 65535");
    has(&out, "net.netfilter.nf_conntrack_max: not present");
    assert_eq!(read("fs/file-max"), "9223372036854775807", "never lowered");
    assert_eq!(read("net/ipv4/ip_local_port_range"), "1024 65535");
    assert_eq!(read("net/ipv4/tcp_tw_reuse"), "1");
    let etc = root.join("etc");
    let installed = std::fs::read_to_string(etc.join("sysctl.d/90-herd.conf")).unwrap();
    has(&installed, "\nfs.file-max = 9223372036854775807\n");
    assert!(etc.join("security/limits.d/90-herd.conf").exists());
    let drop_in = etc.join("systemd/system/herd.service.d/90-herd.conf");
    assert!(drop_in.exists());

    let (code, again) = apply(&root, &proc_sys, &[]);
    assert_eq!(code, 0, "{again}");
    assert!(!again.contains(" -> "), "second run changed:\n{again}");

    let (code, out) = apply(&root, &proc_sys, &["--revert"]);
    assert_eq!(code, 0, "{out}");
    has(&out, "fs.nr_open: 4194304 -> 1048576");
    for &(path, value) in &stock {
        assert_eq!(read(path), value.replace('\t', " "), "{path} restored");
    }
    assert_no_files(&etc);
    assert!(!root.join("state").exists());
    std::fs::remove_dir_all(&root).unwrap();
}
