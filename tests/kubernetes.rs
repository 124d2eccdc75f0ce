//! deploy/kubernetes/ is valid Kubernetes: every resource manifest passes PyPI
//! `kubernetes-validate --strict` (offline, against the schemas it ships with; `.ci/deps`
//! installs it), the validator catches a broken copy, and the Job is a consistent Indexed Job
//! whose pod arguments herd itself accepts.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every YAML file of Kubernetes resources (kustomize's own files are not API resources).
fn manifests() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") && p.file_name().unwrap() != "kustomization.yaml" {
                out.push(p);
            }
        }
    }
    let mut out = vec![];
    walk(&deploy_dir(), &mut out);
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

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas() {
    let files = manifests();
    let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in ["job.yaml", "monitoring.yaml", "namespace.yaml", "job-patch.yaml"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    let (ok, out) = validate(&files);
    assert!(ok, "kubernetes-validate failed:\n{out}");
    // One "passed" line per resource: Job, Namespace, and the monitoring stack's 8.
    let passed = out.lines().filter(|l| l.contains(" passed ")).count();
    assert!(passed >= 11, "only {passed} resources validated:\n{out}");

    // The validator is not a rubber stamp: a misspelt field fails it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("job.yaml");
    let job = std::fs::read_to_string(deploy_dir().join("job.yaml")).unwrap();
    std::fs::write(&bad, job.replace("completionMode: Indexed", "completionMod: Indexed")).unwrap();
    let (ok, out) = validate(&[bad]);
    assert!(!ok && out.contains("completionMod"), "a broken Job passed:\n{out}");
}

#[test]
fn the_job_is_indexed_and_its_arguments_are_herds() {
    let job = std::fs::read_to_string(deploy_dir().join("job.yaml")).unwrap();
    let value = |key: &str| -> String {
        job.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{key} not in job.yaml"))
    };
    assert_eq!(value("completionMode:"), "Indexed");
    let shards = value("- --shards=");
    assert_eq!(value("completions:"), shards, "completions = --shards");
    assert_eq!(value("parallelism:"), shards, "parallelism = --shards");
    assert_eq!(value("- --out="), "-", "the results go to the pod's log");
    let kustomization = std::fs::read_to_string(deploy_dir().join("kustomization.yaml")).unwrap();
    for f in ["namespace.yaml", "monitoring.yaml", "job.yaml"] {
        assert!(kustomization.contains(&format!("- {f}")), "{f} not in kustomization.yaml");
    }

    // herd accepts the pod's arguments: parse them with --help appended, as the pod would, with
    // the index from the environment as an Indexed Job sets it.
    let mut args: Vec<String> = job
        .lines()
        .skip_while(|l| l.trim() != "args:")
        .skip(1)
        .map(str::trim)
        .take_while(|l| l.starts_with("- ") || l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("- ").map(String::from))
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    // A tiny scenario against a closed loopback port keeps the check small: the counts, target
    // and times are replaced, every other argument is the pod's own.
    let replace = [
        ("--url", "ws://127.0.0.1:9/conv/{conv}"),
        ("--conversations", "3"),
        ("--duration", "1s"),
        ("--drain", "0s"),
        ("--start-at", "1"),
        ("--pushgateway", "http://127.0.0.1:9"),
    ];
    for a in args.iter_mut() {
        if let Some((key, new)) = replace.iter().find(|(k, _)| a.starts_with(&format!("{k}="))) {
            *a = format!("{key}={new}");
        }
    }
    let o = Command::new(env!("CARGO_BIN_EXE_herd"))
        .args(&args)
        .args(["--connect-timeout", "1s", "--threads", "1"])
        .env("JOB_COMPLETION_INDEX", "2")
        .env_remove("HERD_SHARD")
        .env_remove("HERD_INSTANCE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    // Nothing listens on port 9: the run starts (the flags are accepted), no connection is made.
    assert_eq!(o.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("shard 2/3"), "{stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("last line not JSON ({e}): {last}"));
    assert_eq!(v["scenario"]["shard"], "2/3");
    assert_eq!(v["connections"]["attempted"], 4, "conversation 2 of 3, 4 members");
}
