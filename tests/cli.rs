//! The binary's contract: clear errors naming the flag or key with sysexits codes, scenario
//! files, the fd-limit check, the HdrHistogram log, and the server's plain HTTP. Signals are in
//! signals.rs.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn herd(args: &[&str]) -> std::process::Output {
    Command::new(herd_bin()).args(args).output().expect("run herd")
}

#[test]
fn bad_flags_exit_64_and_name_the_flag() {
    for (args, needle) in [
        (vec!["run", "--members", "1"], "--members"),
        (vec!["run", "--rate", "fast"], "--rate"),
        (vec!["run", "--duration", "5 parsecs"], "--duration"),
        (vec!["run", "--url", "http://127.0.0.1:1/"], "--url"),
        (vec!["run", "--senders", "9"], "--senders"),
        (vec!["run", "--bogus"], "--bogus"),
    ] {
        let o = herd(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn scenario_file_keys_are_checked_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "conversations = 3\nmembrs = 4\n").unwrap();
    let o = herd(&["run", "--scenario", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("membrs"));

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "conversations = 5\nmembers = 3\nrate = \"2/s\"\nduration = \"1s\"\ndrain = \"1s\"\n")
        .unwrap();
    let (_, v) = run_herd(dir.path(), &["--scenario", good.to_str().unwrap(), "--members", "4"]);
    assert_eq!(u(&v, "scenario.conversations"), 5);
    assert_eq!(u(&v, "scenario.members"), 4, "the flag wins over the file");
    assert_eq!(u(&v, "connections.established"), 20);
    assert_eq!(u(&v, "messages.delivered"), u(&v, "messages.sent") * 3);
}

#[test]
fn a_scenario_beyond_the_fd_limit_is_refused_with_the_limit_named() {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(herd_bin());
    cmd.args(["run", "--conversations", "100k", "--members", "4", "-d", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The same limit on every host: herd raises the soft limit to the hard one, so both are set,
    // below what the scenario needs.
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let r = libc::rlimit { rlim_cur: 4096, rlim_max: 4096 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = output_within(cmd.spawn().expect("run herd"), Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(69), "{err}");
    assert!(err.contains("RLIMIT_NOFILE is 4096 (hard 4096)") && err.contains("800064"), "{err}");
}

#[test]
fn an_unreachable_target_exits_69_after_writing_results() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let url = format!("ws://127.0.0.1:{port}/conv/{{conv}}");
    let o = herd(&[
        "run",
        "--url",
        &url,
        "-c",
        "5",
        "-k",
        "2",
        "-d",
        "1s",
        "--drain",
        "0s",
        "-q",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(69), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(u(&v, "connections.failed"), 10);
    assert_eq!(u(&v, "errors.connect_refused"), 10);
}

#[test]
fn hdr_log_holds_tagged_interval_histograms() {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("lat.hlog");
    let (_, v) =
        run_herd(dir.path(), &["-c", "10", "-k", "3", "--rate", "10", "-d", "2s", "--hdr-log", log.to_str().unwrap()]);
    let text = std::fs::read(&log).unwrap();
    let mut counted = 0u64;
    let mut deser = hdrhistogram::serialization::Deserializer::new();
    for e in IntervalLogIterator::new(&text) {
        if let Ok(LogEntry::Interval(h)) = e {
            if h.tag().map(|t| t.as_str()) == Some("corrected") {
                let b =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, h.encoded_histogram()).unwrap();
                let hist: hdrhistogram::Histogram<u64> = deser.deserialize(&mut &b[..]).unwrap();
                counted += hist.len();
            }
        }
    }
    assert_eq!(counted, u(&v, "messages.delivered"));
}

#[test]
fn server_answers_plain_http_properly() {
    let srv = ServeProc::start(&[]);
    assert_eq!(http_get(&srv.addr, "/healthz").0, 200);
    assert_eq!(http_get(&srv.addr, "/nope").0, 404);
    assert_eq!(http_get(&srv.addr, "/conv/1").0, 426);
    let (code, body) = http_get(&srv.addr, "/metrics");
    assert_eq!(code, 200);
    for name in [
        "herd_server_connections ",
        "herd_server_rooms ",
        "herd_server_messages_received_total ",
        "herd_server_messages_delivered_total ",
        "herd_server_messages_dropped_total{",
    ] {
        assert!(body.contains(name), "{name} missing");
    }
}

#[test]
fn serve_refuses_a_bad_listen_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut c = Command::new(herd_bin()).args(["serve", "--listen", &addr]).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not refuse a taken port");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(69));
}

#[test]
fn run_help_lists_every_preset() {
    // The presets herd knows, from its own refusal of an unknown one.
    let o = herd(&["run", "--target", "no-such-server", "-d", "1s"]);
    assert_eq!(o.status.code(), Some(64));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let known = err.split("(known: ").nth(1).and_then(|k| k.split(')').next()).expect("the known presets").to_string();
    let names: Vec<&str> = known.split(", ").collect();
    assert!(names.len() >= 5 && names.contains(&"socketio"), "{names:?}");
    let help = String::from_utf8_lossy(&herd(&["run", "--help"]).stdout).into_owned();
    let target = help.split("--target <NAME>").nth(1).expect("--target in the help");
    let target = &target[..target.find("\n      --").unwrap_or(target.len())];
    for name in names {
        assert!(target.contains(name), "`herd run --help` --target does not list {name}:{target}");
    }
}
