//! The per-connection cost model, the knobs doctor checks, and the values `tuning/` sets them to.

/// Kernel memory one established client TCP connection costs, in bytes: the socket and its
/// `tcp_sock` (about 2.3 KiB), the `struct file`, dentry and inode behind its descriptor, and
/// the polling bookkeeping, rounded up to 5 KiB. Data sitting in socket buffers comes on top
/// and is charged to `net.ipv4.tcp_mem` (see [`TCP_MEM_BYTES_PER_CONN`]).
pub const KERNEL_BYTES_PER_CONN: u64 = 5 * 1024;

/// herd's own user-space memory per client connection, in bytes: WebSocket and chat state,
/// buffers at rest and per-connection statistics, about 2 KiB.
pub const HERD_BYTES_PER_CONN: u64 = 2 * 1024;

/// Socket buffer memory charged to `net.ipv4.tcp_mem` per connection, in bytes. A chat client
/// has a small message queued now and then, so doctor budgets one 4 KiB page per connection.
pub const TCP_MEM_BYTES_PER_CONN: u64 = 4096;

/// Descriptors herd needs besides one per connection: stdio, glommio's io_uring rings and
/// eventfds (a few per executor), listeners and output files (herd's own spare count).
pub const FD_RESERVE: u64 = crate::runtime::limits::SPARE_FDS;

/// glommio refuses to create an executor when the soft `RLIMIT_MEMLOCK` is below 512 KiB.
pub const GLOMMIO_MIN_MEMLOCK: u64 = 512 * 1024;

/// Ports herd can use per source address and destination once `tuning/` widened the range.
pub const TUNED_PORT_RANGE: (u64, u64) = (1024, 65535);
/// `nofile` (soft and hard) set by `tuning/limits.d` and `tuning/systemd`.
pub const TUNED_NOFILE: u64 = 2_097_152;
/// `memlock` set by `tuning/limits.d`, in KiB (256 MiB).
pub const TUNED_MEMLOCK_KIB: u64 = 262_144;
/// `fs.nr_open`: the ceiling for any process's `nofile`; kept above [`TUNED_NOFILE`].
pub const TUNED_NR_OPEN: u64 = 4_194_304;
/// `fs.file-max`: open files system-wide.
pub const TUNED_FILE_MAX: u64 = 4_194_304;
/// `net.core.somaxconn` and `net.ipv4.tcp_max_syn_backlog`.
pub const TUNED_BACKLOG: u64 = 65_535;
/// `net.ipv4.tcp_mem` in 4 KiB pages: 3, 4 and 6 GiB.
pub const TUNED_TCP_MEM: [u64; 3] = [786_432, 1_048_576, 1_572_864];
/// `net.netfilter.nf_conntrack_max`.
pub const TUNED_CONNTRACK_MAX: u64 = 2_097_152;

/// Every knob doctor checks with the value `tuning/` sets it to, as written in the tuning files
/// (`nofile` and `memlock` as in `limits.d`; sysctls as in `sysctl.d`).
pub const TUNED: [(&str, &str); 11] = [
    ("nofile", "2097152"),
    ("memlock", "262144"),
    ("fs.nr_open", "4194304"),
    ("fs.file-max", "4194304"),
    ("net.ipv4.ip_local_port_range", "1024 65535"),
    ("net.ipv4.tcp_mem", "786432 1048576 1572864"),
    ("net.netfilter.nf_conntrack_max", "2097152"),
    ("net.core.somaxconn", "65535"),
    ("net.ipv4.tcp_max_syn_backlog", "65535"),
    ("net.ipv4.tcp_tw_reuse", "1"),
    ("kernel.io_uring_disabled", "0"),
];

// pam_limits cannot set nofile above fs.nr_open: the tuned values must leave room.
const _: () = assert!(TUNED_NOFILE + FD_RESERVE <= TUNED_NR_OPEN);

static NAMES: [&str; TUNED.len()] = {
    let mut names = [""; TUNED.len()];
    let mut i = 0;
    while i < TUNED.len() {
        names[i] = TUNED[i].0;
        i += 1;
    }
    names
};

/// The knobs doctor checks: sysctl names (`fs.nr_open`) and resource limit names as spelled in
/// limits.conf (`nofile`, `memlock`). `tuning/` sets exactly these.
pub fn checked_knobs() -> &'static [&'static str] {
    &NAMES
}

/// The value `tuning/` sets `knob` to, as written in its files.
pub fn tuned_value(knob: &str) -> Option<&'static str> {
    TUNED.iter().find(|(name, _)| *name == knob).map(|(_, value)| *value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuned_strings_match_constants() {
        let (lo, hi) = TUNED_PORT_RANGE;
        let mem = TUNED_TCP_MEM.map(|v| v.to_string()).join(" ");
        let expect = [
            ("nofile", TUNED_NOFILE.to_string()),
            ("memlock", TUNED_MEMLOCK_KIB.to_string()),
            ("fs.nr_open", TUNED_NR_OPEN.to_string()),
            ("fs.file-max", TUNED_FILE_MAX.to_string()),
            ("net.ipv4.ip_local_port_range", format!("{lo} {hi}")),
            ("net.ipv4.tcp_mem", mem),
            ("net.netfilter.nf_conntrack_max", TUNED_CONNTRACK_MAX.to_string()),
            ("net.core.somaxconn", TUNED_BACKLOG.to_string()),
            ("net.ipv4.tcp_max_syn_backlog", TUNED_BACKLOG.to_string()),
        ];
        for (knob, value) in expect {
            assert_eq!(tuned_value(knob), Some(value.as_str()), "{knob}");
        }
        assert_eq!(checked_knobs().len(), TUNED.len());
    }
}
