//! The YAML of one run (pure): the collector's Service and Job, and the workers' Indexed Job.
//! Strings are written as JSON strings (valid YAML scalars), so no flag value can break the
//! document.

use std::fmt::Write;
use std::time::Duration;

/// The workers' seccomp profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Seccomp {
    /// deploy/seccomp/herd-io-uring.json, installed on the nodes as
    /// /var/lib/kubelet/seccomp/herd/io-uring.json
    Localhost,
    /// No seccomp filter (a privileged namespace)
    Unconfined,
}

/// Everything the manifests are made from.
#[derive(Clone, Debug)]
pub struct Plan {
    pub run_id: String,
    pub shards: u32,
    pub image: String,
    pub namespace: String,
    pub pushgateway: Option<String>,
    pub cpu: String,
    pub memory: String,
    pub seccomp: Seccomp,
    pub host_network: bool,
    /// `herd run` flags of the scenario, as given.
    pub run_flags: Vec<String>,
    pub start_within: Duration,
    /// activeDeadlineSeconds of the workers' Job; the collector's `--deadline` (seconds).
    pub worker_deadline_s: u64,
    pub collect_deadline_s: u64,
    pub keep_results_s: u64,
    pub collect_claim: Option<String>,
}

/// The path of the seccomp profile under the kubelet's seccomp root.
pub const SECCOMP_PROFILE: &str = "herd/io-uring.json";
/// The uid of distroless's `nonroot` user, which the image runs as.
pub const UID: u32 = 65532;
const PORT: u16 = 8090;

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The restricted container security context (every container of the run).
fn container_security(out: &mut String, indent: &str) {
    let _ = write!(
        out,
        "{indent}securityContext:\n\
         {indent}  allowPrivilegeEscalation: false\n\
         {indent}  readOnlyRootFilesystem: true\n\
         {indent}  runAsNonRoot: true\n\
         {indent}  capabilities:\n\
         {indent}    drop: [\"ALL\"]\n"
    );
}

fn labels(out: &mut String, indent: &str, p: &Plan, component: &str) {
    let _ = write!(
        out,
        "{indent}labels:\n\
         {indent}  app.kubernetes.io/name: herd\n\
         {indent}  app.kubernetes.io/component: {component}\n\
         {indent}  app.kubernetes.io/instance: {}\n",
        q(&p.run_id)
    );
}

/// The collector's URL inside the cluster.
pub fn collect_url(p: &Plan) -> String {
    format!("http://herd-collect-{}.{}.svc:{PORT}", p.run_id, p.namespace)
}

/// The worker's `herd run` arguments: the scenario's flags, then those of the run.
pub fn worker_args(p: &Plan) -> Vec<String> {
    let mut a = vec!["run".to_string()];
    a.extend(p.run_flags.iter().cloned());
    a.push(format!("--shards={}", p.shards));
    a.push(format!("--collect={}", collect_url(p)));
    if let Some(pg) = &p.pushgateway {
        a.push(format!("--pushgateway={pg}"));
        a.push(format!("--start-when={0}/{0}", p.shards));
        a.push(format!("--start-when-timeout={}s", p.start_within.as_secs()));
    }
    a
}

fn collector(out: &mut String, p: &Plan) {
    let name = format!("herd-collect-{}", p.run_id);
    let _ = write!(out, "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {}\n", q(&p.namespace));
    labels(out, "  ", p, "collector");
    let _ = write!(
        out,
        "spec:\n  selector:\n    app.kubernetes.io/component: collector\n    app.kubernetes.io/instance: {}\n  \
         ports:\n    - name: http\n      port: {PORT}\n      targetPort: {PORT}\n---\n",
        q(&p.run_id)
    );
    let mut args = vec![
        "collect".to_string(),
        format!("--shards={}", p.shards),
        format!("--listen=0.0.0.0:{PORT}"),
        "--dir=/data".to_string(),
        format!("--deadline={}s", p.collect_deadline_s),
        format!("--exit-after={}s", p.keep_results_s),
    ];
    if let Some(pg) = &p.pushgateway {
        args.push(format!("--pushgateway={pg}"));
    }
    let _ =
        write!(out, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: {}\n", q(&p.namespace));
    labels(out, "  ", p, "collector");
    let _ = write!(
        out,
        "spec:\n  completions: 1\n  parallelism: 1\n  backoffLimit: 3\n  \
         # The collector outlives the workers: their deadline, then --keep-results to fetch the merge.\n  \
         activeDeadlineSeconds: {}\n  ttlSecondsAfterFinished: 3600\n  template:\n    metadata:\n",
        p.collect_deadline_s + p.keep_results_s + 600
    );
    labels(out, "      ", p, "collector");
    let _ = write!(
        out,
        "    spec:\n      # A crashed container restarts in the same pod: its emptyDir (the shards received) stays.\n      \
         restartPolicy: OnFailure\n      automountServiceAccountToken: false\n      securityContext:\n        \
         runAsNonRoot: true\n        runAsUser: {UID}\n        runAsGroup: {UID}\n        fsGroup: {UID}\n        \
         seccompProfile:\n          type: RuntimeDefault\n      containers:\n        - name: collect\n          \
         image: {}\n          args:\n",
        q(&p.image)
    );
    for a in &args {
        let _ = writeln!(out, "            - {}", q(a));
    }
    let _ = write!(
        out,
        "          env:\n            - name: HERD_RUN_ID\n              value: {}\n          ports:\n            \
         - containerPort: {PORT}\n          readinessProbe:\n            httpGet:\n              path: /healthz\n              \
         port: {PORT}\n          livenessProbe:\n            httpGet:\n              path: /healthz\n              port: {PORT}\n            \
         periodSeconds: 20\n          resources:\n            requests:\n              cpu: 250m\n              memory: 256Mi\n            \
         limits:\n              memory: 1Gi\n",
        q(&p.run_id)
    );
    container_security(out, "          ");
    let _ = write!(out, "          volumeMounts:\n            - name: data\n              mountPath: /data\n      volumes:\n        - name: data\n");
    match &p.collect_claim {
        Some(c) => {
            let _ = write!(out, "          persistentVolumeClaim:\n            claimName: {}\n", q(c));
        }
        None => out.push_str("          emptyDir: {}\n"),
    }
    out.push_str("---\n");
}

fn workers(out: &mut String, p: &Plan) {
    let n = p.shards;
    let _ = write!(
        out,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: herd-{}\n  namespace: {}\n",
        p.run_id,
        q(&p.namespace)
    );
    labels(out, "  ", p, "worker");
    let _ = write!(
        out,
        "spec:\n  completionMode: Indexed\n  completions: {n}\n  parallelism: {n}\n  \
         # One failed shard does not end the others: it is not run again (it would start late), and\n  \
         # the Job goes on until every index ended. The collector names the shards that failed.\n  \
         backoffLimitPerIndex: 0\n  maxFailedIndexes: {n}\n  \
         # The whole run: waiting for all workers, the ramp, sending, draining, closing, posting.\n  \
         activeDeadlineSeconds: {}\n  ttlSecondsAfterFinished: 86400\n  template:\n    metadata:\n",
        p.worker_deadline_s
    );
    labels(out, "      ", p, "worker");
    let _ = write!(
        out,
        "    spec:\n      restartPolicy: Never\n      automountServiceAccountToken: false\n      \
         # One worker per node: workers on one node would share its ports, fds and cores.\n      \
         affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            \
         - topologyKey: kubernetes.io/hostname\n              labelSelector:\n                matchLabels:\n                  \
         app.kubernetes.io/component: worker\n                  app.kubernetes.io/instance: {}\n",
        q(&p.run_id)
    );
    if p.host_network {
        out.push_str("      # The node's network: its addresses and port range, no overlay or pod NAT.\n      hostNetwork: true\n      dnsPolicy: ClusterFirstWithHostNet\n");
    }
    let _ = write!(out, "      securityContext:\n        runAsNonRoot: true\n        runAsUser: {UID}\n        runAsGroup: {UID}\n        seccompProfile:\n");
    match p.seccomp {
        Seccomp::Localhost => {
            let _ = write!(
                out,
                "          # Refuses what the runtime's default profile refuses, allows io_uring (glommio): deploy/seccomp/.\n          \
                 type: Localhost\n          localhostProfile: {SECCOMP_PROFILE}\n"
            );
        }
        Seccomp::Unconfined => out.push_str("          type: Unconfined\n"),
    }
    if !p.host_network {
        out.push_str(
            "        # Namespaced \"safe\" sysctls: the whole ephemeral port range, ports freed sooner after close.\n        \
             sysctls:\n          - name: net.ipv4.ip_local_port_range\n            value: \"1024 65535\"\n          \
             - name: net.ipv4.tcp_fin_timeout\n            value: \"15\"\n",
        );
    }
    let _ = write!(out, "      terminationGracePeriodSeconds: 60\n      containers:\n        - name: herd\n          image: {}\n          args:\n", q(&p.image));
    for a in worker_args(p) {
        let _ = writeln!(out, "            - {}", q(&a));
    }
    let _ = write!(
        out,
        "          env:\n            - name: HERD_RUN_ID\n              value: {}\n            \
         # The pushed group's instance label: the pod's name (the shard and run are labels of their own).\n            \
         - name: HERD_INSTANCE\n              valueFrom:\n                fieldRef:\n                  fieldPath: metadata.name\n          \
         resources:\n            requests:\n              cpu: {cpu}\n              memory: {mem}\n            \
         limits:\n              cpu: {cpu}\n              memory: {mem}\n",
        q(&p.run_id),
        cpu = q(&p.cpu),
        mem = q(&p.memory)
    );
    container_security(out, "          ");
}

/// The manifests of one run, with the commands to follow it as comments.
pub fn render(p: &Plan) -> String {
    let (ns, run) = (&p.namespace, &p.run_id);
    let mut out = format!(
        "# herd run {run}: {n} workers, one herd collect. Rendered by `herd kube`.\n\
         #   kubectl apply -f run.yaml\n\
         #   kubectl -n {ns} get pods -l app.kubernetes.io/instance={run}\n\
         #   kubectl -n {ns} port-forward svc/herd-collect-{run} {PORT}:{PORT} &\n\
         #   curl -s localhost:{PORT}/v1/status\n\
         #   curl -sf --retry 1000 --retry-delay 10 --retry-all-errors -o merged.json localhost:{PORT}/merged.json\n\
         #   curl -sf -o report.html localhost:{PORT}/report.html\n\
         #   kubectl -n {ns} delete job,service -l app.kubernetes.io/instance={run}\n---\n",
        n = p.shards
    );
    collector(&mut out, p);
    workers(&mut out, p);
    out
}
