//! The real pinned kubectl (1.20) against `hwc_testkit::kube::FakeApiServer`:
//! every command line the agent runner's kubectl tool issues works, writes
//! change the fake's world and server dry runs do not. No kube-apiserver can
//! be installed here; scripts/setup.sh unpacks the kubectl these tests run.

#![allow(clippy::unwrap_used, missing_docs)]

use hwc_testkit::kube::{kubectl as kubectl_bin, FakeApiServer};
use std::path::PathBuf;

struct Fix {
    server: FakeApiServer,
    dir: tempfile::TempDir,
    config: PathBuf,
}

async fn fix() -> Fix {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = server.kubeconfig(dir.path(), &[("web", "web"), ("db", "db")]);
    Fix {
        server,
        dir,
        config,
    }
}

/// `kubectl --kubeconfig=K --context=CTX -n NS --request-timeout=20s ARGS`,
/// blocking (the test body runs outside the runtime's workers, which serve
/// the fake meanwhile), with HOME in the temp dir so kubectl's discovery
/// cache stays there.
fn kubectl(f: &Fix, ctx: &str, ns: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(kubectl_bin())
        .arg(format!("--kubeconfig={}", f.config.display()))
        .arg(format!("--context={ctx}"))
        .args(["-n", ns, "--request-timeout=20s"])
        .args(args)
        .env("HOME", f.dir.path())
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("$ kubectl {}\n{o}{e}", args.join(" "));
    (out.status.code().unwrap_or(-1), o, e)
}

fn ok(f: &Fix, args: &[&str]) -> String {
    let (code, out, err) = kubectl(f, "web", "web", args);
    assert_eq!(code, 0, "kubectl {args:?}: {err}");
    out
}

fn web_revision(f: &Fix) -> (String, String) {
    let d = f.server.deployment("web", "web").unwrap();
    (
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            .as_str()
            .unwrap()
            .to_string(),
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// The writes kubectl sent, as (method, path, dry run).
fn writes(f: &Fix) -> Vec<(String, String, bool)> {
    f.server
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| (r.method.clone(), r.path.clone(), r.dry_run()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pods_plain_and_wide() {
    let f = fix().await;
    let out = ok(&f, &["get", "pods"]);
    assert!(
        out.starts_with("NAME             READY   STATUS    RESTARTS   AGE\n"),
        "{out}"
    );
    assert!(
        out.contains("web-7f9c-abcde   1/1     Running   0          24h"),
        "{out}"
    );
    let out = ok(&f, &["get", "pods", "-o", "wide"]);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains("IP            NODE     NOMINATED NODE   READINESS GATES"),
        "{out}"
    );
    assert!(out.contains("node-1"), "{out}");
    let r = f
        .server
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/web/pods")
        .unwrap();
    assert!(
        r.accept
            .starts_with("application/json;as=Table;v=v1;g=meta.k8s.io"),
        "{}",
        r.accept
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_deployment_and_several_kinds() {
    let f = fix().await;
    let out = ok(&f, &["get", "deployment", "web"]);
    assert!(
        out.contains("web    2/2     2            2           10d"),
        "{out}"
    );
    let out = ok(&f, &["get", "deployments,services"]);
    assert!(out.contains("deployment.apps/web   2/2"), "{out}");
    assert!(
        out.contains("service/web   ClusterIP   10.96.12.34   <none>        80/TCP"),
        "{out}"
    );
    let out = ok(&f, &["get", "deployment", "web", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["spec"]["replicas"], 2);
    let out = ok(&f, &["get", "pods", "-o", "yaml"]);
    assert!(
        out.contains("kind: List") && out.contains("image: nginx:1.27"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_events_all_and_by_object() {
    let f = fix().await;
    let out = ok(&f, &["get", "events"]);
    assert!(
        out.starts_with("LAST SEEN   TYPE      REASON              OBJECT               MESSAGE\n"),
        "{out}"
    );
    assert!(
        out.contains("deployment/web       Scaled up replica set web-7f9c to 2"),
        "{out}"
    );
    let out = ok(
        &f,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web-7f9c-abcde",
        ],
    );
    assert!(
        out.contains("Warning   Unhealthy   pod/web-7f9c-abcde   Readiness probe failed"),
        "{out}"
    );
    assert!(
        !out.contains("fghij") && !out.contains("deployment/web"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_pod_and_deployment() {
    let f = fix().await;
    let out = ok(&f, &["describe", "pod", "web-7f9c-abcde"]);
    assert!(out.contains("Controlled By:  ReplicaSet/web-7f9c"), "{out}");
    // The age is counted from the fixture's start: on a loaded machine
    // kubectl may print `5m1s`, and the columns widen with it.
    let unhealthy = out
        .lines()
        .find(|l| l.contains("Unhealthy"))
        .unwrap_or_else(|| panic!("no Unhealthy event in:\n{out}"));
    let words: Vec<&str> = unhealthy.split_whitespace().collect();
    assert_eq!(words[..2], ["Warning", "Unhealthy"], "{unhealthy}");
    assert!(words[2].starts_with("5m"), "{unhealthy}");
    assert_eq!(
        words[3..7],
        ["(x3", "over", "15m)", "kubelet"],
        "{unhealthy}"
    );
    let out = ok(&f, &["describe", "deployment", "web"]);
    assert!(
        out.contains(
            "Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable"
        ),
        "{out}"
    );
    assert!(
        out.contains("NewReplicaSet:   web-7f9c (2/2 replicas created)"),
        "{out}"
    );
    assert!(
        out.contains("Scaled down replica set web-6d4b to 0"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_and_container() {
    let f = fix().await;
    let out = ok(&f, &["logs", "web-7f9c-abcde", "--tail=50"]);
    assert_eq!(out.lines().count(), 50);
    assert_eq!(out.lines().last(), Some("web: last line of web-7f9c-abcde"));
    let out = ok(&f, &["logs", "web-7f9c-abcde", "-c", "web", "--tail=50"]);
    assert_eq!(out.lines().count(), 50);
    let (code, _, err) = kubectl(&f, "web", "web", &["logs", "web-7f9c-abcde", "-c", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: container nope is not valid for pod web-7f9c-abcde\n"
        )
    );
    let (code, _, err) = kubectl(&f, "web", "web", &["logs", "web-7f9c-abcde", "--previous"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("previous terminated container \"web\" in pod \"web-7f9c-abcde\" not found"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_and_history() {
    let f = fix().await;
    let out = ok(
        &f,
        &["rollout", "status", "deployment/web", "--timeout=10s"],
    );
    assert_eq!(out, "deployment \"web\" successfully rolled out\n");
    let out = ok(&f, &["rollout", "history", "deployment/web"]);
    assert!(
        out.contains("REVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_restart_makes_a_revision_that_status_waits_for() {
    let f = fix().await;
    assert_eq!(
        ok(&f, &["rollout", "restart", "deployment/web"]),
        "deployment.apps/web restarted\n"
    );
    let d = f.server.deployment("web", "web").unwrap();
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    assert_eq!(web_revision(&f), ("3".into(), "nginx:1.27".into()));
    assert_eq!(f.server.names("web", "replicasets").len(), 3);
    assert!(!f.server.exists("web", "pods", "web-7f9c-abcde"));
    let out = ok(
        &f,
        &["rollout", "status", "deployment/web", "--timeout=10s"],
    );
    assert_eq!(out, "Waiting for deployment \"web\" rollout to finish: 1 out of 2 new replicas have been updated...\ndeployment \"web\" successfully rolled out\n");
    assert!(ok(&f, &["rollout", "history", "deployment/web"]).contains("\n3         <none>\n"));
    // kubectl 1.20's rollout restart has no --dry-run.
    let (code, _, err) = kubectl(
        &f,
        "web",
        "web",
        &["rollout", "restart", "deployment/web", "--dry-run=server"],
    );
    assert_eq!(code, 1);
    assert!(err.starts_with("Error: unknown flag: --dry-run\n"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_undo_dry_run_then_real() {
    let f = fix().await;
    let out = ok(
        &f,
        &[
            "rollout",
            "undo",
            "deployment/web",
            "--to-revision=1",
            "--dry-run=server",
        ],
    );
    assert_eq!(out, "deployment.apps/web rolled back (server dry run)\n");
    assert_eq!(web_revision(&f), ("2".into(), "nginx:1.27".into()));
    assert_eq!(
        ok(
            &f,
            &["rollout", "undo", "deployment/web", "--to-revision=1"]
        ),
        "deployment.apps/web rolled back\n"
    );
    // Revision 1's replica set is the newest revision now, as in Kubernetes.
    assert_eq!(web_revision(&f), ("3".into(), "nginx:1.25".into()));
    let path = "/apis/apps/v1/namespaces/web/deployments/web".to_string();
    assert_eq!(
        writes(&f),
        vec![
            ("PATCH".into(), path.clone(), true),
            ("PATCH".into(), path, false)
        ]
    );
    assert!(ok(&f, &["get", "pods"]).contains("web-6d4b-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_dry_run_then_real() {
    let f = fix().await;
    assert_eq!(
        ok(
            &f,
            &[
                "scale",
                "deployment/web",
                "--replicas=3",
                "--dry-run=server"
            ]
        ),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        f.server.deployment("web", "web").unwrap()["spec"]["replicas"],
        2
    );
    assert_eq!(
        ok(&f, &["scale", "deployment/web", "--replicas=3"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        f.server.deployment("web", "web").unwrap()["spec"]["replicas"],
        3
    );
    assert_eq!(f.server.names("web", "pods").len(), 3);
    let path = "/apis/apps/v1/namespaces/web/deployments/web/scale".to_string();
    assert_eq!(
        writes(&f),
        vec![
            ("PATCH".into(), path.clone(), true),
            ("PATCH".into(), path, false)
        ]
    );
    let r = f
        .server
        .requests()
        .into_iter()
        .rfind(|r| r.is_write())
        .unwrap();
    assert_eq!(
        (r.content_type.as_deref(), r.body.as_str()),
        (
            Some("application/merge-patch+json"),
            r#"{"spec":{"replicas":3}}"#
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pod_dry_run_then_real() {
    let f = fix().await;
    let out = ok(
        &f,
        &[
            "delete",
            "pod",
            "web-7f9c-abcde",
            "--wait=false",
            "--dry-run=server",
        ],
    );
    assert_eq!(out, "pod \"web-7f9c-abcde\" deleted (server dry run)\n");
    assert!(f.server.exists("web", "pods", "web-7f9c-abcde"));
    assert_eq!(
        ok(&f, &["delete", "pod", "web-7f9c-abcde", "--wait=false"]),
        "pod \"web-7f9c-abcde\" deleted\n"
    );
    assert!(!f.server.exists("web", "pods", "web-7f9c-abcde"));
    // Its replica set replaced it.
    assert_eq!(f.server.names("web", "pods").len(), 2);
    let path = "/api/v1/namespaces/web/pods/web-7f9c-abcde".to_string();
    assert_eq!(
        writes(&f),
        vec![
            ("DELETE".into(), path.clone(), true),
            ("DELETE".into(), path, false)
        ]
    );
}

const MANIFEST: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 1
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: api
        image: ghcr.io/example/api:1.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: api-config
data:
  LOG_LEVEL: info
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_updates_and_dry_runs() {
    let f = fix().await;
    let file = f.dir.path().join("app.yaml");
    let path = file.to_str().unwrap();
    std::fs::write(&file, MANIFEST).unwrap();
    let out = ok(&f, &["apply", "-f", path, "--dry-run=server"]);
    assert_eq!(out, "deployment.apps/api created (server dry run)\nconfigmap/api-config created (server dry run)\n");
    assert!(
        !f.server.exists("web", "deployments", "api")
            && !f.server.exists("web", "configmaps", "api-config")
    );
    assert_eq!(
        ok(&f, &["apply", "-f", path]),
        "deployment.apps/api created\nconfigmap/api-config created\n"
    );
    assert_eq!(
        ok(&f, &["apply", "-f", path]),
        "deployment.apps/api unchanged\nconfigmap/api-config unchanged\n"
    );
    assert_eq!(
        f.server
            .names("web", "pods")
            .iter()
            .filter(|p| p.starts_with("api-"))
            .count(),
        1
    );
    std::fs::write(
        &file,
        MANIFEST
            .replace("api:1.0", "api:1.1")
            .replace("info", "debug"),
    )
    .unwrap();
    let out = ok(&f, &["apply", "-f", path, "--dry-run=server"]);
    assert_eq!(out, "deployment.apps/api configured (server dry run)\nconfigmap/api-config configured (server dry run)\n");
    assert_eq!(
        f.server.object("web", "configmaps", "api-config").unwrap()["data"]["LOG_LEVEL"],
        "info"
    );
    assert_eq!(
        ok(&f, &["apply", "-f", path]),
        "deployment.apps/api configured\nconfigmap/api-config configured\n"
    );
    assert_eq!(
        f.server.object("web", "configmaps", "api-config").unwrap()["data"]["LOG_LEVEL"],
        "debug"
    );
    let d = f.server.deployment("web", "api").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/example/api:1.1"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    // Validation and the dry-run check read /openapi/v2 (no --validate=false needed).
    assert!(f.server.requests().iter().any(|r| r.path == "/openapi/v2"));
    let kinds: Vec<_> = writes(&f).into_iter().map(|(m, _, dry)| (m, dry)).collect();
    let w = |m: &str, dry| (m.to_string(), dry);
    assert_eq!(
        kinds,
        vec![
            w("POST", true),
            w("POST", true),
            w("POST", false),
            w("POST", false),
            w("PATCH", true),
            w("PATCH", true),
            w("PATCH", false),
            w("PATCH", false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_db_context_sees_its_own_namespace() {
    let f = fix().await;
    let (code, out, _) = kubectl(&f, "db", "db", &["get", "deployments"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("pg     1/1     1            1           15d"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_kubectl_prints() {
    let f = fix().await;
    let (code, _, err) = kubectl(&f, "web", "web", &["get", "pod", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "Error from server (NotFound): pods \"nope\" not found\n")
    );
    let (code, _, err) = kubectl(&f, "web", "web", &["get", "deployment", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (NotFound): deployments.apps \"nope\" not found\n"
        )
    );
    let (code, _, err) = kubectl(&f, "nope", "web", &["get", "pods"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: context \"nope\" does not exist\n")
    );
    f.server.fail_next(500, 1);
    let (code, _, err) = kubectl(&f, "web", "web", &["get", "pods"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (InternalError): fake apiserver: injected failure\n"
        )
    );
    assert_eq!(
        kubectl(&f, "web", "web", &["get", "pods"]).0,
        0,
        "one failure only"
    );
    let config = std::fs::read_to_string(&f.config).unwrap();
    std::fs::write(&f.config, config.replace(&f.server.token(), "wrong-token")).unwrap();
    let (code, _, err) = kubectl(&f, "web", "web", &["get", "pods"]);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: You must be logged in to the server (Unauthorized)\n"
        )
    );
}
