//! wss:// end to end: herd through nginx terminating TLS (certificates generated here) in front
//! of `herd serve` and of nginx + nchan, with exact accounting; session resumption on reconnect
//! and its opt-out; mutual TLS; and every TLS failure category provoked by a test server.

mod common;
use common::peers::*;
use common::tlsfix::*;
use serde_json::{json, Value};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// Every connection went through TCP, TLS and the upgrade, each timed.
fn assert_phases(v: &Value, conns: u64) {
    for phase in ["tcp_connect", "tls_handshake", "ws_upgrade"] {
        assert_eq!(v["connect_phases"][phase]["count"], json!(conns), "{phase}: {}", v["connect_phases"]);
    }
    assert_eq!(n(v, "tls.handshakes"), conns);
}

#[test]
fn wss_through_nginx_to_herd_serve_is_exact() {
    let d = tmp();
    let certs = Certs::generate(d.path());
    let server = serve(d.path(), &[]);
    let proxy = nginx_tls(d.path(), &server.addr, &certs.good, "");
    let url = format!("wss://{}/conv/{{conv}}?user={{user}}", proxy.addr);
    let v = herd_ok(
        d.path(),
        &["--url", &url, "--ca", s(&certs.ca), "-c", "10", "-k", "4", "--rate", "5", "-d", "2s", "--drain", "3s"],
    );
    assert_exact(&v);
    let sent = n(&v, "messages.sent");
    assert_eq!(sent, 10 * 5 * 2);
    assert_eq!(n(&v, "messages.delivered"), sent * 3);
    assert_eq!(errors(&v), vec![]);
    assert_eq!((n(&v, "connections.established"), n(&v, "connections.closed")), (40, 40));
    assert_phases(&v, 40);
    assert_eq!(v["tls"]["insecure"], json!(false));
    // The server behind the proxy saw exactly what herd counted.
    assert_eq!(server_metric(&server.addr, "herd_server_messages_received_total"), sent);
    assert_eq!(server_metric(&server.addr, "herd_server_messages_delivered_total"), sent * 3);
}

#[test]
fn wss_through_nginx_to_nchan_is_exact() {
    let d = tmp();
    let certs = Certs::generate(d.path());
    let nchan = Peer::nchan(&[]);
    let proxy = nginx_tls(d.path(), &nchan.addr, &certs.good, "");
    let url = format!("wss://{}/conv/{{conv}}", proxy.addr);
    let v = herd_ok(
        d.path(),
        &["--target", "nchan", "--url", &url, "--ca", s(&certs.ca), "-c", "10", "-k", "3", "--rate", "5", "-d", "2s"],
    );
    assert_exact(&v);
    let sent = n(&v, "messages.sent");
    assert_eq!(n(&v, "messages.delivered"), sent * 2);
    assert_eq!(n(&v, "messages.echoed"), sent, "nchan returns every message to its sender");
    assert_eq!(errors(&v), vec![]);
    assert_phases(&v, 30);
    let r = nchan.stop();
    assert_eq!(r["stub_status"]["total_published_messages"], json!(sent), "{r}");
}

/// nginx closes idle proxied WebSockets after 1 s; herd reconnects, resuming TLS sessions unless
/// told not to.
#[test]
fn reconnects_resume_tls_sessions_unless_disabled() {
    let d = tmp();
    let certs = Certs::generate(d.path());
    let server = serve(d.path(), &[]);
    let proxy = nginx_tls(d.path(), &server.addr, &certs.good, "proxy_read_timeout 1s;");
    let url = format!("wss://{}/conv/{{conv}}", proxy.addr);
    let run = |extra: &[&str]| {
        let mut args = vec!["--url", &url, "--ca", s(&certs.ca), "-c", "5", "-k", "2", "--rate", "0", "-d", "3500ms"];
        args.push("--reconnect");
        args.extend_from_slice(extra);
        herd_ok(d.path(), &args)
    };
    let v = run(&[]);
    let (handshakes, reconnected) = (n(&v, "tls.handshakes"), n(&v, "connections.reconnected"));
    assert!(reconnected >= 10, "each connection is dropped at least once: {v}");
    // Every connection established did its handshake; a reconnect still under way when the run
    // ends may have finished its handshake without being established (at most one per
    // connection: 5 x 2).
    let established = n(&v, "connections.established");
    assert!((established..=established + 10).contains(&handshakes), "{handshakes} handshakes: {v}");
    // Sessions resume whenever a ticket is at hand (README): on every reconnect (the earlier
    // handshakes left tickets), and on a first connection that starts after another one got its
    // ticket. The very first handshake cannot.
    let resumed = n(&v, "tls.resumed");
    assert!(resumed >= reconnected && resumed < handshakes, "{reconnected} reconnects: {}", v["tls"]);
    assert_eq!(v["tls"]["resumption"], json!(true));

    let v = run(&["--no-tls-resume"]);
    assert!(n(&v, "connections.reconnected") >= 10, "{v}");
    assert_eq!(n(&v, "tls.resumed"), 0, "{}", v["tls"]);
    assert_eq!(v["tls"]["resumption"], json!(false));
}

#[test]
fn mutual_tls_with_a_client_certificate() {
    let d = tmp();
    let certs = Certs::generate(d.path());
    let server = serve(d.path(), &[]);
    let extra = format!("ssl_client_certificate {}; ssl_verify_client on;", certs.ca.display());
    let proxy = nginx_tls(d.path(), &server.addr, &certs.good, &extra);
    let url = format!("wss://{}/conv/{{conv}}", proxy.addr);
    let base = ["--url", &url, "--ca", s(&certs.ca), "-c", "2", "-k", "2", "--rate", "5", "-d", "1s"];
    let mut with_cert = base.to_vec();
    with_cert.extend_from_slice(&["--client-cert", s(&certs.client.cert), "--client-key", s(&certs.client.key)]);
    let v = herd_ok(d.path(), &with_cert);
    assert_exact(&v);
    assert_eq!(errors(&v), vec![]);
    // Without one, nginx completes the TLS handshake and answers the upgrade with 400 ("No
    // required SSL certificate was sent").
    let (o, v) = herd(d.path(), &base);
    assert_eq!(o.status.code(), Some(69), "no connection could be made");
    assert_eq!(n(&v, "connections.established"), 0);
    assert_eq!(errors(&v), vec![("handshake_rejected".to_string(), 4)], "{}", v["errors"]);
}

/// Runs herd against `url`, expecting every one of its 4 connections to fail with `category`.
fn failing(d: &std::path::Path, url: &str, extra: &[&str], category: &str) -> Value {
    let mut args = vec!["--url", url, "-c", "2", "-k", "2", "--rate", "1", "-d", "200ms", "--drain", "0s"];
    args.extend_from_slice(extra);
    let (o, v) = herd(d, &args);
    assert_eq!(o.status.code(), Some(69), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(errors(&v), vec![(category.to_string(), 4)], "{}", v["errors"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(category),
        "the summary names the category: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    v
}

fn note_with(v: &Value, words: &[&str]) -> bool {
    v["notes"].as_array().unwrap().iter().any(|n| words.iter().all(|w| n.as_str().unwrap().contains(w)))
}

#[test]
fn certificate_failures_have_their_own_categories_and_name_the_certificate() {
    let d = tmp();
    let certs = Certs::generate(d.path());
    let ca = s(&certs.ca);
    for (pem, category, words) in [
        (&certs.unknown_ca, "tls_unknown_ca", ["CN=stranger server", "CN=stranger CA"]),
        (&certs.wrong_name, "tls_name_mismatch", ["CN=other.example", "CN=herd test CA"]),
        (&certs.expired, "tls_expired", ["CN=expired server", "CN=herd test CA"]),
    ] {
        let server = serve(d.path(), &["--tls-cert", s(&pem.cert), "--tls-key", s(&pem.key)]);
        let url = format!("wss://{}/conv/{{conv}}", server.addr);
        let v = failing(d.path(), &url, &["--ca", ca], category);
        assert!(note_with(&v, &[category, words[0], words[1]]), "{category}: {}", v["notes"]);
    }
    // --insecure accepts the very certificates refused above, and says so.
    let server = serve(d.path(), &["--tls-cert", s(&certs.expired.cert), "--tls-key", s(&certs.expired.key)]);
    let url = format!("wss://{}/conv/{{conv}}", server.addr);
    let args = ["--url", &url, "--insecure", "-c", "2", "-k", "2", "--rate", "5", "-d", "1s"];
    let (o, v) = herd(d.path(), &args);
    assert!(o.status.success());
    assert_exact(&v);
    assert_eq!(v["tls"]["insecure"], json!(true));
    assert!(String::from_utf8_lossy(&o.stdout).contains("NOT verified"));
    assert!(note_with(&v, &["--insecure", "NOT verified"]), "{}", v["notes"]);
}

#[test]
fn protocol_version_and_handshake_failures() {
    let d = tmp();
    let certs = Certs::generate(d.path());
    let server = serve(d.path(), &[]);
    // nginx speaking only TLS 1.2 to a client that insists on 1.3.
    let proxy = nginx_tls(d.path(), &server.addr, &certs.good, "ssl_protocols TLSv1.2;");
    let url = format!("wss://{}/conv/{{conv}}", proxy.addr);
    failing(d.path(), &url, &["--ca", s(&certs.ca), "--tls-version", "1.3"], "tls_protocol_version");
    // The same server over 1.2 works.
    let args = ["--url", &url, "--ca", s(&certs.ca), "--tls-version", "1.2", "-c", "2", "-k", "2", "--rate", "5"];
    let v = herd_ok(d.path(), &[&args[..], &["-d", "1s", "--drain", "1s"]].concat());
    assert_eq!(n(&v, "connections.established"), 4);
    assert_exact(&v);
    // A server that does not speak TLS at all: it answers the ClientHello in plain HTTP.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("wss://{}/conv/{{conv}}", plain.local_addr().unwrap());
    let answering = std::thread::spawn(move || {
        use std::io::{Read, Write};
        for _ in 0..4 {
            let (mut c, _) = plain.accept().unwrap();
            let _ = c.read(&mut [0u8; 512]);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    failing(d.path(), &url, &["--ca", s(&certs.ca)], "tls_handshake");
    answering.join().unwrap();
}

#[test]
fn embedded_tls_server_runs_exactly() {
    let d = tmp();
    let v = herd_ok(d.path(), &["--embedded-tls", "-c", "10", "-k", "3", "--rate", "5", "-d", "1s"]);
    assert_exact(&v);
    assert!(v["target"].as_str().unwrap().starts_with("wss://127.0.0.1:"), "{}", v["target"]);
    assert_phases(&v, 30);
    assert_eq!(n(&v, "server.messages_delivered"), n(&v, "messages.delivered"));
}

#[test]
fn tls_flags_are_checked() {
    let d = tmp();
    let missing = d.path().join("missing.pem");
    let (o, _) = herd_usage(&["--url", "wss://127.0.0.1:1/", "--ca", s(&missing)]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--ca"), "{}", String::from_utf8_lossy(&o.stderr));
    let (o, _) = herd_usage(&["--url", "ws://127.0.0.1:1/", "--embedded-tls"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--embedded-tls"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_herd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert", s(&missing), "--tls-key", s(&missing)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tls-cert"));
}

fn herd_usage(args: &[&str]) -> (std::process::Output, ()) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_herd")).arg("run").args(args).output().unwrap();
    (o, ())
}

/// A self-signed certificate made the usual way (`openssl req -x509`, which OpenSSL 3 marks
/// `CA:TRUE`) and given as `--ca` is pinned: accepted as the server's certificate when it is
/// byte-for-byte that one, with the name still checked.
fn openssl_self_signed(dir: &std::path::Path, cn: &str, san: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (key, cert) = (dir.join(format!("{cn}-key.pem")), dir.join(format!("{cn}-cert.pem")));
    let subj = format!("/CN={cn}");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", &subj, "-addext", san, "-keyout"])
        .args([&key, &std::path::PathBuf::from("-out"), &cert])
        .output()
        .expect("openssl is installed (.ci/deps)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

#[test]
fn a_self_signed_ca_certificate_given_as_ca_is_pinned() {
    let d = tmp();
    let (cert, key) = openssl_self_signed(d.path(), "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
    let server = serve(d.path(), &["--tls-cert", s(&cert), "--tls-key", s(&key)]);
    let port = server.addr.rsplit(':').next().unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{port}/conv/{{conv}}");
        let v = herd_ok(d.path(), &["--url", &url, "--ca", s(&cert), "-c", "2", "-k", "2", "--rate", "5", "-d", "1s"]);
        assert_exact(&v);
        assert_phases(&v, 4);
    }
    // Pinning keeps the name check: a certificate for another name, pinned, is still refused.
    let (other, other_key) = openssl_self_signed(d.path(), "other.example", "subjectAltName=DNS:other.example");
    let server = serve(d.path(), &["--tls-cert", s(&other), "--tls-key", s(&other_key)]);
    let url = format!("wss://{}/conv/{{conv}}", server.addr);
    let v = failing(d.path(), &url, &["--ca", s(&other)], "tls_name_mismatch");
    assert!(note_with(&v, &["tls_name_mismatch", "CN=other.example"]), "{}", v["notes"]);
    // And only the pinned certificate is accepted: the first one does not vouch for the second,
    // which webpki still refuses as a CA presented by a server.
    let v = failing(d.path(), &url, &["--ca", s(&cert)], "tls_handshake");
    assert!(note_with(&v, &["CN=other.example", "CaUsedAsEndEntity"]), "{}", v["notes"]);
}
