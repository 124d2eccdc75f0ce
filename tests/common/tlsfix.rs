//! TLS fixtures: certificates generated at test time (rcgen), `herd serve` processes, and nginx
//! terminating TLS in front of a WebSocket server on a free loopback port.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A certificate and key written as PEM files.
pub struct Pem {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test CA and certificates it (or another CA) issued, in `dir`.
pub struct Certs {
    pub ca: PathBuf,
    /// For 127.0.0.1 and localhost, by the CA.
    pub good: Pem,
    /// For other.example only, by the CA.
    pub wrong_name: Pem,
    /// For 127.0.0.1, by the CA, valid only in 2000.
    pub expired: Pem,
    /// For 127.0.0.1, by a CA the client does not know.
    pub unknown_ca: Pem,
    /// A client certificate issued by the CA (mutual TLS).
    pub client: Pem,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(dir: &Path, file: &str, names: &[&str], cn: &str, issuer: &CertifiedIssuer<KeyPair>, expired: bool) -> Pem {
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    if expired {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2000, 12, 31);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    let pem = Pem { cert: dir.join(format!("{file}.crt")), key: dir.join(format!("{file}.key")) };
    std::fs::write(&pem.cert, cert.pem()).unwrap();
    std::fs::write(&pem.key, key.serialize_pem()).unwrap();
    pem
}

impl Certs {
    pub fn generate(dir: &Path) -> Certs {
        let ca1 = ca("herd test CA");
        let ca2 = ca("stranger CA");
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, ca1.pem()).unwrap();
        let local = ["127.0.0.1", "localhost"];
        Certs {
            ca,
            good: leaf(dir, "good", &local, "herd test server", &ca1, false),
            wrong_name: leaf(dir, "wrong", &["other.example"], "other.example", &ca1, false),
            expired: leaf(dir, "expired", &local, "expired server", &ca1, true),
            unknown_ca: leaf(dir, "stranger", &local, "stranger server", &ca2, false),
            client: leaf(dir, "client", &["herd-client"], "herd client", &ca1, false),
        }
    }
}

/// A child process stopped with SIGTERM (then killed) when dropped.
pub struct Proc {
    child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl Proc {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        super::terminate(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `herd serve --listen 127.0.0.1:0 --threads 1 ARGS`.
pub fn serve(dir: &Path, args: &[&str]) -> Proc {
    let log = dir.join(format!("serve-{}.log", std::process::id() ^ rand_u32()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_herd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--threads", "1"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start herd serve");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let addr = line.split_whitespace().find(|w| w.starts_with("127.0.0.1:")).map(String::from);
    let p = Proc { child, addr: addr.clone().unwrap_or_default(), log };
    assert!(addr.is_some(), "herd serve did not start: {line:?} {}", p.log_text());
    p
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// nginx terminating TLS on a free loopback port and proxying WebSockets to `upstream`
/// (`127.0.0.1:PORT`); `ssl_extra` goes into the server block (protocols, client certificates,
/// timeouts).
pub fn nginx_tls(dir: &Path, upstream: &str, cert: &Pem, ssl_extra: &str) -> Proc {
    let port = free_port();
    let root = dir.join(format!("nginx-{port}"));
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let user = if unsafe { libc::geteuid() } == 0 { "user root;" } else { "" };
    let conf = format!(
        r#"{user}
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        {ssl_extra}
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
        }}
    }}
}}
"#,
        root = root.display(),
        cert = cert.cert.display(),
        key = cert.key.display(),
    );
    let conf_path = root.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let log = root.join("stderr.log");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&root)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("nginx not found: apt-get install -y nginx-light");
    let mut p = Proc { child, addr: format!("127.0.0.1:{port}"), log };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&p.addr).is_err() {
        if Instant::now() > deadline || matches!(p.child.try_wait(), Ok(Some(_))) {
            panic!(
                "nginx did not start: {}\n{}",
                p.log_text(),
                std::fs::read_to_string(root.join("error.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

/// `GET /metrics` of a plain-HTTP herd serve, as (name, value) pairs without labels.
pub fn server_metric(addr: &str, name: &str) -> u64 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse::<f64>().ok()))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}")) as u64
}
