//! Connection density mechanisms: source-address spreading and `herd ceiling` against a server
//! made to refuse past a known count.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Established IPv4 TCP sockets from `local_ip` to `remote_port`, from /proc/net/tcp.
fn established_from(local_ip: [u8; 4], remote_port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    // Addresses are little-endian hex on x86: 127.0.0.2 -> 0200007F.
    let ip_hex = format!("{:02X}{:02X}{:02X}{:02X}", local_ip[3], local_ip[2], local_ip[1], local_ip[0]);
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == "01"
                && f[1].starts_with(&ip_hex)
                && f[2].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(remote_port)
        })
        .count()
}

#[test]
fn connections_are_spread_over_source_addresses() {
    let srv = ServeProc::start(&[]);
    let port: u16 = srv.addr.rsplit(':').next().unwrap().parse().unwrap();
    let mut child = Command::new(herd_bin())
        .args(["run", "--url", &srv.url(), "-c", "50", "-k", "2", "--rate", "0", "-d", "30s", "-q"])
        .args(["--source-ip", "127.0.0.2-127.0.0.3"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let counts = loop {
        let c = (established_from([127, 0, 0, 2], port), established_from([127, 0, 0, 3], port));
        if c == (50, 50) || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    signal(&child, libc::SIGINT);
    assert!(child.wait().unwrap().success());
    assert_eq!(counts, (50, 50), "connections per source address");
}

fn ceiling(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ceiling.json");
    let o =
        Command::new(herd_bin()).arg("ceiling").args(args).args(["-q", "-o", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("highest stable"));
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

#[test]
fn ceiling_finds_the_count_a_server_refuses_past() {
    let srv = ServeProc::start(&["--max-connections", "1500"]);
    let v = ceiling(&["--url", &srv.url(), "--step", "500", "--max", "5000", "--hold", "300ms"]);
    assert_eq!(u(&v, "highest_stable"), 1500);
    assert_eq!(v["stopped_by"], "errors");
    assert!(v["reason"].as_str().unwrap().contains("refused upgrades"), "{}", v["reason"]);
    let refused = srv.metrics()["herd_server_connections_refused_total"];
    assert!(refused >= 500.0, "the server refused {refused}");
}

#[test]
fn ceiling_stops_at_max_when_nothing_fails() {
    let srv = ServeProc::start(&[]);
    let v = ceiling(&["--url", &srv.url(), "--step", "300", "--max", "600", "--hold", "200ms"]);
    assert_eq!(u(&v, "highest_stable"), 600);
    assert_eq!(v["stopped_by"], "max");
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);
    assert!(v["user_bytes_per_connection"].as_f64().unwrap() > 0.0);
}

#[test]
fn socket_buffer_sizes_are_applied_to_every_connection() {
    let srv = ServeProc::start(&[]);
    let port = srv.addr.rsplit(':').next().unwrap().to_string();
    let mut child = Command::new(herd_bin())
        .args(["run", "--url", &srv.url(), "-c", "5", "-k", "2", "--rate", "0", "-d", "30s", "-q"])
        .args(["--rcvbuf", "8192", "--sndbuf", "16384"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The kernel doubles what is set: rb16384, tb32768 for each of herd's 10 sockets.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut matching, mut total) = (0, 0);
    while Instant::now() < deadline {
        let o = Command::new("ss")
            .args(["-tmnH", "state", "established", &format!("dport = :{port}")])
            .output()
            .expect("ss (iproute2)");
        let text = String::from_utf8_lossy(&o.stdout);
        total = text.matches("skmem:").count();
        matching = text.matches("rb16384,").count().min(text.matches("tb32768,").count());
        if total == 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, libc::SIGINT);
    assert!(child.wait().unwrap().success());
    assert_eq!((matching, total), (10, 10));
}
