//! herd on Kubernetes, offline: every manifest in deploy/kubernetes/ and every run `herd kube`
//! renders passes PyPI `kubernetes-validate --strict` (the schemas it ships with; `.ci/deps`
//! installs it), and the validator catches a broken copy; every pod but the worker meets Pod
//! Security "restricted" (and the default worker does too; the opt-in modes do not); the
//! rendered Job and collector agree on N, the run id and the collector's address; a worker's
//! rendered arguments run in herd and its results reach a real `herd collect`; the launch command
//! docs/KUBERNETES.md gives renders a valid run of 50 workers.

mod common;

use common::collect::CollectProc;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The YAML files of Kubernetes resources in deploy/kubernetes.
fn manifests() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(deploy().join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    out.sort();
    out
}

/// Runs the validator on `files`; returns (success, output).
fn validate(files: &[PathBuf]) -> (bool, String) {
    let o = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .args(files)
        .output()
        .expect("python3 runs");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(
        !text.contains("No module named kubernetes_validate"),
        "kubernetes-validate is not installed: python3 -m pip install kubernetes-validate==1.37.0 (.ci/deps)"
    );
    (o.status.success(), text)
}

/// Every document of a YAML file, as JSON (PyYAML comes with kubernetes-validate).
fn load(path: &Path) -> Vec<Value> {
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys,yaml,json; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
        ])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap()
}

/// `herd kube ARGS`, written to `dir/NAME`.
fn render(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let o = Command::new(herd_bin()).arg("kube").args(args).output().unwrap();
    assert!(o.status.success(), "herd kube {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    let p = dir.join(name);
    std::fs::write(&p, &o.stdout).unwrap();
    p
}

const SCENARIO: [&str; 12] = [
    "--url",
    "ws://chat.example.internal:8080/conv/{conv}?user={user}",
    "-c",
    "30000",
    "-k",
    "4",
    "-d",
    "10m",
    "--drain",
    "30s",
    "--connect-rate",
    "2000",
];

fn render_run(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["--shards", "50", "--image", "registry.example/herd:1.0", "--run-id", "r-test-1"];
    args.extend(extra);
    args.push("--");
    args.extend(SCENARIO);
    render(dir, name, &args)
}

#[test]
fn every_manifest_and_a_rendered_run_validate_against_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = manifests();
    let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["namespaces.yaml", "monitoring.yaml", "node-tuning.yaml", "prometheus-storage.yaml"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    files.push(render_run(dir.path(), "run.yaml", &[]));
    files.push(render_run(dir.path(), "run-host.yaml", &["--seccomp", "unconfined", "--host-network"]));
    let (ok, out) = validate(&files);
    assert!(ok, "kubernetes-validate failed:\n{out}");
    let want: usize = files.iter().map(|f| load(f).len()).sum();
    let passed = out.lines().filter(|l| l.contains(" passed ")).count();
    assert_eq!(passed, want, "not every resource validated:\n{out}");

    // The validator is not a rubber stamp: a misspelt field fails it.
    let run = std::fs::read_to_string(dir.path().join("run.yaml")).unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, run.replace("backoffLimitPerIndex:", "backoffLimitPerIndx:")).unwrap();
    let (ok, out) = validate(&[bad]);
    assert!(!ok && out.contains("backoffLimitPerIndx"), "a broken Job passed:\n{out}");
}

/// The pod template of a workload (or `None` for other kinds).
fn pod_spec(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "Deployment" | "Job" | "DaemonSet" | "StatefulSet" => Some(&doc["spec"]["template"]["spec"]),
        "Pod" => Some(&doc["spec"]),
        _ => None,
    }
}

/// What keeps a pod from Pod Security "restricted" (empty: it meets it).
fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut v = vec![];
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[host] == true {
            v.push(format!("{host}: true"));
        }
    }
    let pod_sc = &pod["securityContext"];
    let containers = pod["containers"].as_array().into_iter().chain(pod["initContainers"].as_array()).flatten();
    for c in containers {
        let name = c["name"].as_str().unwrap_or("?");
        let sc = &c["securityContext"];
        if !(sc["runAsNonRoot"] == true || (sc["runAsNonRoot"].is_null() && pod_sc["runAsNonRoot"] == true)) {
            v.push(format!("{name}: runAsNonRoot is not true"));
        }
        if sc["runAsUser"] == 0 || pod_sc["runAsUser"] == 0 {
            v.push(format!("{name}: runAsUser 0"));
        }
        if sc["allowPrivilegeEscalation"] != false {
            v.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        if sc["privileged"] == true {
            v.push(format!("{name}: privileged"));
        }
        let drop = sc["capabilities"]["drop"].as_array().cloned().unwrap_or_default();
        if !drop.iter().any(|d| d == "ALL") {
            v.push(format!("{name}: capabilities do not drop ALL"));
        }
        let added = sc["capabilities"]["add"].as_array().cloned().unwrap_or_default();
        if added.iter().any(|a| a != "NET_BIND_SERVICE") {
            v.push(format!("{name}: adds capabilities {added:?}"));
        }
        let seccomp = if sc["seccompProfile"].is_null() { &pod_sc["seccompProfile"] } else { &sc["seccompProfile"] };
        if !matches!(seccomp["type"].as_str(), Some("RuntimeDefault" | "Localhost")) {
            v.push(format!("{name}: seccomp profile {seccomp}"));
        }
    }
    v
}

#[test]
fn every_pod_but_the_worker_meets_pod_security_restricted() {
    let dir = tempfile::tempdir().unwrap();
    let run = render_run(dir.path(), "run.yaml", &[]);
    let mut checked = vec![];
    for f in manifests().iter().chain([&run]) {
        for doc in load(f) {
            let Some(pod) = pod_spec(&doc) else { continue };
            let name = format!("{}/{}", doc["kind"].as_str().unwrap(), doc["metadata"]["name"].as_str().unwrap());
            let component = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"].as_str();
            if component == Some("node-tuning") {
                // Opt-in, privileged by what it does (it sets the node's sysctls), in a
                // namespace of its own.
                assert_eq!(doc["metadata"]["namespace"], "herd-node-tuning", "{name}");
                continue;
            }
            let v = restricted_violations(pod);
            if component != Some("worker") {
                assert!(v.is_empty(), "{name} does not meet restricted: {v:?}");
            }
            checked.push((name, component.map(String::from), v));
        }
    }
    let names: Vec<&str> = checked.iter().map(|(n, ..)| n.as_str()).collect();
    for want in ["Deployment/pushgateway", "Deployment/prometheus", "Deployment/grafana", "Job/herd-collect-r-test-1"] {
        assert!(names.contains(&want), "{want} not checked: {names:?}");
    }
    // The default worker (Localhost seccomp profile) meets restricted too; the opt-in modes do
    // not, which is why the worker namespace's level is privileged (docs/KUBERNETES.md).
    let worker = checked.iter().find(|(_, c, _)| c.as_deref() == Some("worker")).expect("a worker Job");
    assert!(worker.2.is_empty(), "the default worker: {:?}", worker.2);
    let opt = render_run(dir.path(), "opt.yaml", &["--seccomp", "unconfined", "--host-network"]);
    let docs = load(&opt);
    let w = docs.iter().find(|d| d["metadata"]["name"] == "herd-r-test-1").unwrap();
    let v = restricted_violations(pod_spec(w).unwrap());
    assert!(v.iter().any(|x| x.contains("Unconfined")) && v.iter().any(|x| x.contains("hostNetwork")), "{v:?}");
    // Namespaces: monitoring enforces restricted; only the workers' (and the opt-in tuning's)
    // is privileged.
    for doc in load(&deploy().join("kubernetes/namespaces.yaml")) {
        let level = doc["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str().unwrap();
        match doc["metadata"]["name"].as_str().unwrap() {
            "herd" => assert_eq!(level, "privileged"),
            "herd-monitoring" => assert_eq!(level, "restricted"),
            other => panic!("unexpected namespace {other}"),
        }
    }
    // Every monitoring workload lives in herd-monitoring.
    for doc in load(&deploy().join("kubernetes/monitoring.yaml")) {
        assert_eq!(doc["metadata"]["namespace"], "herd-monitoring", "{}", doc["metadata"]["name"]);
    }
}

fn args_of(pod: &Value) -> Vec<String> {
    pod["containers"][0]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

fn env_of(pod: &Value, name: &str) -> Option<String> {
    pod["containers"][0]["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str().map(String::from)
}

#[test]
fn the_rendered_job_and_collector_agree_on_n_the_run_and_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let docs = load(&render_run(dir.path(), "run.yaml", &[]));
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} not rendered"))
    };
    let job = find("Job", "herd-r-test-1");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    for key in ["completions", "parallelism", "maxFailedIndexes"] {
        assert_eq!(spec[key], 50, "{key}");
    }
    assert_eq!(spec["backoffLimitPerIndex"], 0);
    // The deadline covers the run: 10 min of sending, 30 s of drain, the --start-when wait.
    assert!(spec["activeDeadlineSeconds"].as_u64().unwrap() > 600 + 30 + 600, "{}", spec["activeDeadlineSeconds"]);
    let worker = &spec["template"]["spec"];
    let args = args_of(worker);
    for want in ["--shards=50", "--start-when=50/50", "--collect=http://herd-collect-r-test-1.herd.svc:8090"] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    assert_eq!(env_of(worker, "HERD_RUN_ID").as_deref(), Some("r-test-1"));
    let svc = find("Service", "herd-collect-r-test-1");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8090);
    let collector = find("Job", "herd-collect-r-test-1");
    let cpod = &collector["spec"]["template"]["spec"];
    assert_eq!(env_of(cpod, "HERD_RUN_ID").as_deref(), Some("r-test-1"));
    let cargs = args_of(cpod);
    assert!(cargs.contains(&"--shards=50".to_string()), "{cargs:?}");
    // The Service selects the collector's pod, not the workers.
    let labels = &collector["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "selector {k}");
    }
    // The collector waits longer than the workers may run.
    let deadline = cargs.iter().find_map(|a| a.strip_prefix("--deadline=")).unwrap();
    let secs: u64 = deadline.trim_end_matches('s').parse().unwrap();
    assert!(secs > spec["activeDeadlineSeconds"].as_u64().unwrap());

    // Flags herd kube owns, and bad run flags, are refused before anything is printed.
    for (extra, says) in [(vec!["--shards", "3"], "--shards"), (vec!["--members", "1"], "--members")] {
        let mut a = vec!["kube", "--shards", "3", "--image", "x", "--"];
        a.extend(extra);
        let o = Command::new(herd_bin()).args(&a).output().unwrap();
        assert_eq!(o.status.code(), Some(64), "{a:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(says) && o.stdout.is_empty());
    }
}

#[test]
fn a_rendered_workers_arguments_run_and_its_results_reach_a_collector() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny scenario against a closed loopback port: the flags are accepted, no connection is
    // made (exit 69), and the results still go to the collector.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("ws://127.0.0.1:{closed}/conv/{{conv}}");
    let run = render(
        dir.path(),
        "run.yaml",
        &[
            "--shards",
            "3",
            "--image",
            "x",
            "--run-id",
            "r-small",
            "--pushgateway",
            "none",
            "--",
            "--url",
            &url,
            "-c",
            "3",
        ],
    );
    let docs = load(&run);
    let job = docs.iter().find(|d| d["metadata"]["name"] == "herd-r-small" && d["kind"] == "Job").unwrap();
    let mut args = args_of(&job["spec"]["template"]["spec"]);
    assert_eq!(args[0], "run");

    let store = dir.path().join("collected");
    let c = CollectProc::start(&store, 3, &["--run-id", "r-small"]);
    for a in args.iter_mut() {
        if a.starts_with("--collect=") {
            *a = format!("--collect={}", c.url());
        }
    }
    let o = Command::new(herd_bin())
        .args(&args)
        .args(["--connect-timeout", "1s", "--duration", "1s", "--drain", "0s", "--threads", "1"])
        .env("JOB_COMPLETION_INDEX", "2")
        .env("HERD_RUN_ID", "r-small")
        .env_remove("HERD_SHARD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("shard 2/3"), "{stderr}");
    let status = c.status();
    drop(c);
    let s2 = &status["shard_states"][2];
    assert_eq!(s2["results"], "shard-2-of-3.json", "{status}");
    assert!(s2["failure"].as_str().unwrap().contains("exit 69"), "{status}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(store.join("shard-2-of-3.json")).unwrap()).unwrap();
    assert_eq!(v["scenario"]["shard"], "2/3");
    assert_eq!(v["connections"]["attempted"], 4, "conversation 2 of 3, 4 members");
}

#[test]
fn the_seccomp_profile_allows_io_uring_and_refuses_what_the_default_refuses() {
    let text = std::fs::read_to_string(deploy().join("seccomp/herd-io-uring.json")).unwrap();
    let p: Value = serde_json::from_str(&text).unwrap();
    let denied: Vec<&str> = p["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ERRNO" && r["args"].is_null())
        .flat_map(|r| r["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()))
        .collect();
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register", "epoll_pwait2", "clone", "membarrier"] {
        assert!(!denied.contains(&call), "{call} is refused");
    }
    for call in ["mount", "ptrace", "bpf", "kexec_load", "init_module", "unshare", "setns", "userfaultfd", "clone3"] {
        assert!(denied.contains(&call), "{call} is allowed");
    }
    // clone with a namespace flag is refused, one rule per flag.
    let clone_rules = p["syscalls"].as_array().unwrap().iter().filter(|r| r["names"][0] == "clone").count();
    assert_eq!(clone_rules, 7);
    // Where the renderer points is where the README installs it.
    let readme = std::fs::read_to_string(deploy().join("seccomp/README.md")).unwrap();
    assert!(readme.contains(&format!("/var/lib/kubelet/seccomp/{}", herd::kube::render::SECCOMP_PROFILE)));
}

#[test]
fn the_documented_launch_command_renders_a_valid_run_of_50_workers() {
    // docs/KUBERNETES.md's `herd kube` command, as written (continuation lines joined), with the
    // doc's variables set: the doc stays true to the flags.
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/KUBERNETES.md")).unwrap();
    let joined = doc.replace("\\\n", " ");
    let line =
        joined.lines().find(|l| l.trim_start().starts_with("herd kube ")).expect("a herd kube command in the doc");
    let line = line
        .split(" > ")
        .next()
        .unwrap()
        .replace("$N", "50")
        .replace("$RUN", "r-doc")
        .replace("\"$IMAGE\"", "registry.example/herd:1.0");
    let o = Command::new("python3")
        .args(["-c", "import json,shlex,sys; print(json.dumps(shlex.split(sys.argv[1])))", &line])
        .output()
        .unwrap();
    let words: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(words[..2], ["herd", "kube"], "{words:?}");
    let args: Vec<&str> = words[2..].iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let run = render(dir.path(), "doc-run.yaml", &args);
    let (ok, out) = validate(std::slice::from_ref(&run));
    assert!(ok, "{out}");
    let docs = load(&run);
    let job = docs.iter().find(|d| d["metadata"]["name"] == "herd-r-doc").expect("the workers' Job");
    assert_eq!(job["spec"]["completions"], 50);
}
