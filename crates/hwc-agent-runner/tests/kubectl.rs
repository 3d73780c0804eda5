//! The `kubectl` tool in real jobs: the REAL kubectl (Debian's
//! kubernetes-client 1.20, pinned by scripts/setup.sh) against a SCRIPTED
//! Kubernetes API server (`hwc_testkit::kube`: no kube-apiserver installs
//! on this machine; the fake serves what kubectl asks for these verbs).
//! Reads run at once; a scale and a rollout restart wait for an approval
//! with a server dry run done and a rollback planned from the cluster's
//! state; a delete in production waits for two approvers with the object
//! saved for its rollback, and nothing but dry runs reached the server
//! meanwhile; a namespace off the allow-list, a kubeconfig without the
//! context and an API server answering 500 are errors the model reads.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{finish, Runner, BOB, CAROL};
use hwc_testkit::kube::{kubectl, FakeApiServer};
use hwc_testkit::scripted::{tool_call, Upstream};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The action waiting now, once it is another than `after`'s.
async fn pending_after(r: &Runner, id: &str, after: Option<&str>) -> Value {
    let t0 = Instant::now();
    loop {
        let v = r.view(id).await;
        let p = &v["pending"];
        if v["state"] == "waiting_approval"
            && p["digest"].is_string()
            && p["digest"].as_str() != after
        {
            return p.clone();
        }
        assert!(
            !matches!(v["state"].as_str(), Some("completed" | "failed")),
            "the job ended: {v}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no new approval: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn digest(p: &Value) -> String {
    p["digest"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_actions_are_dry_run_planned_approved_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApiServer::start().await;
    let kubeconfig = api.kubeconfig(dir.path(), &[("dev-agent", "web"), ("prod-agent", "web")]);
    let cluster = |env: &str, ctx: &str, ns: &str| {
        format!(
            "[tools.kubernetes.clusters.{env}]\nkubeconfig = \"{}\"\ncontext = \"{ctx}\"\nnamespaces = [{ns}]\n",
            kubeconfig.display()
        )
    };
    let extra = [
        format!(
            "[tools.kubernetes]\nprogram = \"{}\"\nrollout_timeout = \"10s\"\n",
            kubectl().display()
        ),
        cluster("dev", "dev-agent", "\"web\""),
        cluster("prod", "prod-agent", "\"web\", \"db\""),
        cluster("staging", "gone", "\"web\""),
    ]
    .concat();
    let call = |args: Value| tool_call("kubectl", &args.to_string());
    let up = Upstream::start(
        vec![
            call(json!({"action": "get", "resource": "pods"})),
            call(json!({"action": "logs", "name": "web-7f9c-abcde", "tail": 3})),
            call(json!({"action": "get", "resource": "pods", "namespace": "kube-system"})),
            call(json!({"action": "get", "resource": "pods", "environment": "staging"})),
            call(json!({"action": "scale", "resource": "deployment", "name": "web", "replicas": 3})),
            call(json!({"action": "rollout_restart", "resource": "deployment", "name": "web"})),
            call(json!({"action": "delete", "resource": "pod", "name": "web-7f9c-fghij", "environment": "prod", "namespace": "web"})),
        ],
        tool_call("finish", &finish("done", &[])),
    )
    .await;
    let r = Runner::start(&up.url(), &extra).await;
    let id = r
        .job(json!({"goal": "web is slow", "environment": "dev"}))
        .await;

    // The scale: dry-run on the server, the rollback from the replica count.
    let p = pending_after(&r, &id, None).await;
    assert_eq!(p["risk"], "R2", "{p}");
    assert_eq!(
        p["rollback"], "kubectl scale deployment/web --replicas=2 -n web",
        "{p}"
    );
    let summary = p["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("kubectl scale deployment/web --replicas=3 -n web  [server dry run: deployment.apps/web scaled"),
        "{summary}"
    );
    assert_eq!(
        api.deployment("web", "web").unwrap()["spec"]["replicas"],
        2,
        "a dry run changes nothing"
    );
    assert_eq!(r.approve(&id, BOB, &digest(&p)).await.0, 200);

    // The restart: no dry run in kubectl 1.20, the rollback to the
    // revision before; the API server fails its next request.
    let p2 = pending_after(&r, &id, Some(&digest(&p))).await;
    assert_eq!(
        api.deployment("web", "web").unwrap()["spec"]["replicas"],
        3,
        "the approved scale ran"
    );
    assert_eq!(
        p2["rollback"], "kubectl rollout undo deployment/web --to-revision=2 -n web",
        "{p2}"
    );
    assert!(
        p2["summary"]
            .as_str()
            .unwrap()
            .ends_with("[no server dry run: kubectl has none for this]"),
        "{p2}"
    );
    api.fail_next(500, 1);
    assert_eq!(r.approve(&id, BOB, &digest(&p2)).await.0, 200);

    // The delete in production: two approvers, the pod saved first.
    let p3 = pending_after(&r, &id, Some(&digest(&p2))).await;
    assert_eq!(
        p3["risk"], "R3",
        "judged in the cluster's environment: {p3}"
    );
    let rollback = p3["rollback"].as_str().unwrap();
    let saved = rollback
        .strip_prefix("kubectl apply -f ")
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("{rollback}"));
    let ws = r.dir.join("workspaces");
    let file = walk(&ws)
        .into_iter()
        .find(|f| f.ends_with(saved))
        .unwrap_or_else(|| panic!("{saved} not under {}", ws.display()));
    let obj: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(obj["items"][0]["metadata"]["name"], "web-7f9c-fghij");
    assert!(
        obj["items"][0]["metadata"].get("uid").is_none(),
        "server fields are dropped: {obj}"
    );
    assert!(api.exists("web", "pods", "web-7f9c-fghij"));
    let deletes: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|q| q.method == "DELETE")
        .collect();
    assert!(
        !deletes.is_empty() && deletes.iter().all(|q| q.dry_run()),
        "only dry runs so far: {deletes:?}"
    );
    assert_eq!(r.approve(&id, BOB, &digest(&p3)).await.0, 200);
    assert_eq!(r.approve(&id, CAROL, &digest(&p3)).await.0, 200);
    let v = r.wait_for(&id, &["completed", "failed"]).await;
    assert_eq!(v["state"], "completed", "{v}");
    assert!(
        !api.exists("web", "pods", "web-7f9c-fghij"),
        "deleted once approved twice"
    );

    let last = up.request(up.calls() - 1).2;
    let told: String = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| format!("{}\n", m["content"].as_str().unwrap_or_default()))
        .collect();
    for want in [
        "web-7f9c-abcde",
        "namespace `kube-system` is not allowed on environment `dev`'s cluster; the allowed namespaces are web",
        "error: context \"gone\" does not exist",
        "has no context `gone`: fix [tools.kubernetes.clusters.staging] context or the kubeconfig",
        "Error from server (InternalError)",
        "pod \"web-7f9c-fghij\" deleted",
    ] {
        assert!(told.contains(want), "{want:?} not told to the model:\n{told}");
    }
    let pod = api.object("web", "pods", "web-7f9c-abcde").unwrap();
    let log = hwc_testkit::kube::log_lines(&pod, "web");
    assert!(
        told.contains(log.last().unwrap().as_str()),
        "the log's tail: {told}"
    );
    // The scale's dry run reached the server before the write.
    let scales: Vec<bool> = api
        .requests()
        .into_iter()
        .filter(|q| q.method == "PATCH" && q.path.ends_with("/scale"))
        .map(|q| q.dry_run())
        .collect();
    assert_eq!(scales, [true, false], "dry run, then the approved write");
    r.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
