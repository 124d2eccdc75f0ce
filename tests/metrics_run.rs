//! herd's metrics end to end: a real `herd serve` scraped by a real Prometheus, two `herd run`
//! workers pushing to a real Pushgateway (and a third running a population against npm
//! socket.io, for the per room class series), then the pushed values checked against the workers'
//! results files and every dashboard query evaluated on that data. Also: a run whose
//! Pushgateway is down still finishes and writes its results.

mod common;

use common::promstack::PromStack;
use common::*;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The value of `name{...}` in exposition text, for the series whose labels include `want`.
fn sample(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        (n == name && want.iter().all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))).then(|| value.parse().ok())?
    })
}

#[test]
fn two_workers_push_exact_figures_and_every_dashboard_query_has_data() {
    let srv = ServeProc::start(&[]);
    let stack = PromStack::start_scraping(&[&srv.addr]);
    let dir = tempfile::tempdir().unwrap();
    let job = "herd_e2e";
    // Start the workers only once Prometheus scrapes, so that it sees the run grow.
    for target in ["pushgateway", "herd_server"] {
        stack.wait_for_query(&format!("up{{job=\"{target}\"}}"), Duration::from_secs(60), |r| {
            r.len() == 1 && r[0]["value"][1] == "1"
        });
    }
    // Two workers, the two shards of one scenario (40 conversations, 20 each) on one server.
    // Connecting at 20/s spreads each worker's 60 connections over ~3 s, several scrapes, so the
    // connect-time panels have a rate() to show (connections made between two scrapes would
    // leave the counters flat in Prometheus).
    let workers: Vec<_> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let out = dir.path().join(format!("{w}.json"));
            let url = format!("ws://{}/conv/{{conv}}", srv.addr);
            let child = Command::new(herd_bin())
                .args(["run", "--url", &url, "-c", "40", "-k", "3", "--rate", "10", "-d", "5s", "-q"])
                .args(["--connect-rate", "20"])
                .args(["--shard", &format!("{i}/2")])
                .args(["--pushgateway", &stack.pushgateway, "--push-interval", "500ms", "--job", job])
                // One run id for both workers: the dashboard's run selector.
                .args(["--run-id", "run-a"])
                .args(["--instance", &format!("worker-{w}"), "-o", out.to_str().unwrap()])
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            (w, out, child)
        })
        .collect();
    // A third worker runs a population (direct messages and groups) against npm socket.io, so
    // that the per room class series and panels have data.
    let sio = common::peers::Peer::start(common::peers::Impl::SocketIo, &["--mode", "to"]);
    let sio_url = sio.url("/socket.io/?EIO=4&transport=websocket");
    let out_c = dir.path().join("c.json");
    let child_c = Command::new(herd_bin())
        .args(["run", "--url", &sio_url, "--target", "socketio", "-d", "5s", "-q", "--connect-rate", "20"])
        .args(["--users", "40", "--room-class", "dm,rooms=40,size=2,rate=10"])
        .args(["--room-class", "group,rooms=5,size=3-8,senders=0.5,rate=5", "--shard", "0/1"])
        .args(["--pushgateway", &stack.pushgateway, "--push-interval", "500ms", "--job", job, "--run-id", "run-a"])
        .args(["--instance", "worker-c", "-o", out_c.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let workers: Vec<_> = workers.into_iter().chain([(&"c", out_c, child_c)]).collect();
    let mut results = BTreeMap::new();
    for (w, out, mut child) in workers {
        assert!(child.wait().unwrap().success(), "worker {w} failed");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(v["push"]["final_push_ok"], true, "{}", v["push"]);
        results.insert(format!("worker-{w}"), v);
    }

    // The final pushed figures equal each worker's results file.
    let pushed = stack.pushgateway_metrics();
    for (instance, v) in &results {
        // The run id is a grouping label of every pushed series.
        let labels = [("job", job), ("instance", instance.as_str()), ("run", "run-a")];
        let get =
            |name: &str| sample(&pushed, name, &labels).unwrap_or_else(|| panic!("{name} of {instance} not pushed"));
        let delivered = u(v, "messages.delivered") as f64;
        assert!(delivered > 0.0);
        assert_eq!(get("herd_delivery_latency_seconds_count"), delivered);
        assert_eq!(get("herd_delivery_latency_uncorrected_seconds_count"), delivered);
        assert_eq!(get("herd_messages_sent_total"), u(v, "messages.sent") as f64);
        assert_eq!(get("herd_messages_delivered_total"), delivered);
        assert_eq!(get("herd_messages_missed_total"), 0.0);
        assert_eq!(get("herd_connections_established_total"), u(v, "connections.established") as f64);
        for c in v["population"]["classes"].as_array().into_iter().flatten() {
            let class = [("instance", instance.as_str()), ("room_class", c["class"].as_str().unwrap())];
            let pushed = sample(&pushed, "herd_class_messages_delivered_total", &class).expect("class series pushed");
            assert_eq!(pushed, c["delivered"].as_f64().unwrap(), "{c}");
            assert!(pushed > 0.0, "{c}");
        }
        let p99 = sample(
            &pushed,
            "herd_delivery_latency_quantile_seconds",
            &[("instance", instance), ("quantile", "0.99"), ("kind", "corrected")],
        )
        .expect("exact p99 pushed");
        let want = v["latency"]["corrected"]["p99_ms"].as_f64().unwrap() / 1000.0;
        assert!((p99 - want).abs() <= want * 0.001 + 1e-6, "pushed p99 {p99} vs results {want}");
    }

    // Prometheus has both workers and the server.
    stack.wait_for_query(&format!("count(herd_messages_sent_total{{job=\"{job}\"}})"), Duration::from_secs(60), |r| {
        r.len() == 1 && r[0]["value"][1] == "3"
    });
    stack.wait_for_query("herd_server_messages_received_total", Duration::from_secs(60), |r| {
        r.len() == 1 && r[0]["value"][1] != "0"
    });
    let total_sent: u64 = results.values().map(|v| u(v, "messages.sent")).sum();
    let q = format!("sum(herd_messages_sent_total{{job=\"{job}\"}})");
    let r = stack.wait_for_query(&q, Duration::from_secs(60), |r| {
        r.len() == 1 && r[0]["value"][1] == total_sent.to_string().as_str()
    });
    println!("{q} = {}", r[0]["value"][1]);

    // rate() needs several scrapes of the run in its window.
    stack.wait_for_query(
        &format!("min(count_over_time(herd_messages_sent_total{{job=\"{job}\"}}[1m]))"),
        Duration::from_secs(60),
        |r| r.len() == 1 && r[0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(|n| n >= 4.0),
    );
    let dash = common::dashboard::load("herd.json");
    let vars: BTreeMap<&str, &str> = [
        ("datasource", "prometheus"),
        ("job", job),
        ("run", "run-a"),
        ("instance", "worker-a|worker-b|worker-c"),
        ("room_class", "dm|group"),
        ("shard", "0|1"),
        ("server", srv.addr.as_str()),
        ("__rate_interval", "1m"),
        ("__interval", "5s"),
        ("__range", "5m"),
    ]
    .into_iter()
    .collect();
    let (failures, n) = common::dashboard::failures(&stack, &dash, &vars);
    assert!(n >= 30, "only {n} dashboard queries");
    assert!(failures.is_empty(), "{} of {n} dashboard queries failed:\n{}", failures.len(), failures.join("\n"));
    sio.stop();
}

#[test]
fn a_run_whose_pushgateway_is_down_still_finishes_and_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let gw = format!("http://127.0.0.1:{port}");
    let (_, v) =
        run_herd(dir.path(), &["-c", "10", "-k", "2", "-d", "2s", "--pushgateway", &gw, "--push-interval", "500ms"]);
    assert_eq!(v["push"]["final_push_ok"], false);
    assert!(u(&v, "push.pushes_failed") >= 1);
    assert_eq!(u(&v, "messages.delivered"), u(&v, "messages.sent"));
    let notes = v["notes"].to_string();
    assert!(notes.contains("final push"), "{notes}");
}
