//! `kubectl {action, namespace, resource, name, …}`: typed Kubernetes
//! actions on a declared cluster (`[tools.kubernetes.clusters.<env>]`),
//! through the real kubectl with that cluster's kubeconfig and context, in
//! its allow-listed namespaces only.
//!
//! The policy judges the kubectl command line the action is (`kubectl
//! rollout restart deployment/web -n web`), in the cluster's environment, so
//! one rule covers the tool and a shell line alike. Before a write is
//! offered for approval it is planned against the cluster: a server-side
//! dry run where kubectl has one (`--dry-run=server`: admission and
//! validation run, nothing changes), and the state its rollback needs (the
//! replica count before a scale, the revision before a rollout, the object
//! before a delete or an apply, saved under the workspace's
//! `.hwc-rollback/`). A plan the server refuses is an error the model
//! reads; it never reaches an approver.

use super::{str_arg, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError, ToolOutput};
use crate::config::KubeCluster;
use crate::model::ToolSpec;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The kubectl tool.
pub struct Kubectl;

/// What the tool can do, by the `action` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Get,
    Describe,
    Logs,
    Events,
    RolloutStatus,
    RolloutHistory,
    RolloutRestart,
    RolloutUndo,
    Scale,
    Delete,
    Apply,
}

const ACTIONS: &[(&str, Action)] = &[
    ("get", Action::Get),
    ("describe", Action::Describe),
    ("logs", Action::Logs),
    ("events", Action::Events),
    ("rollout_status", Action::RolloutStatus),
    ("rollout_history", Action::RolloutHistory),
    ("rollout_restart", Action::RolloutRestart),
    ("rollout_undo", Action::RolloutUndo),
    ("scale", Action::Scale),
    ("delete", Action::Delete),
    ("apply", Action::Apply),
];

impl Action {
    fn parse(s: &str) -> Result<Self, ToolError> {
        ACTIONS
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                let names: Vec<&str> = ACTIONS.iter().map(|(n, _)| *n).collect();
                ToolError(format!(
                    "`action` = {s:?} is not one of {}",
                    names.join(", ")
                ))
            })
    }

    fn writes(self) -> bool {
        matches!(
            self,
            Self::RolloutRestart | Self::RolloutUndo | Self::Scale | Self::Delete | Self::Apply
        )
    }
}

/// Kinds that live outside namespaces: a write to one would escape the
/// namespace allow-list, so the tool refuses it (reads are fine).
const CLUSTER_SCOPED: &[&str] = &[
    "namespace",
    "node",
    "persistentvolume",
    "customresourcedefinition",
    "clusterrole",
    "clusterrolebinding",
    "storageclass",
    "priorityclass",
    "mutatingwebhookconfiguration",
    "validatingwebhookconfiguration",
    "apiservice",
    "certificatesigningrequest",
    "ingressclass",
    "runtimeclass",
];

/// A namespace (RFC 1123 label) as Kubernetes accepts it.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An object name (RFC 1123 subdomain).
fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && !s.starts_with(['-', '.'])
}

/// A resource type as kubectl reads it: `pods`, `deploy`,
/// `deployments.apps`; one type (no comma lists, no `type/name`).
fn is_resource(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && !s.starts_with(['-', '.'])
}

/// The resource's singular kind name, for the cluster-scoped check and the
/// rollout kinds (`deploy` and `deployments.apps` are `deployment`).
fn kind_of(resource: &str) -> String {
    let base = resource.split('.').next().unwrap_or(resource);
    let short = match base {
        "deploy" => "deployment",
        "ds" => "daemonset",
        "sts" => "statefulset",
        "rs" => "replicaset",
        "po" => "pod",
        "svc" => "service",
        "cm" => "configmap",
        "ns" => "namespace",
        "no" => "node",
        "pv" => "persistentvolume",
        "pvc" => "persistentvolumeclaim",
        "crd" | "crds" => "customresourcedefinition",
        "sc" => "storageclass",
        "pc" => "priorityclass",
        "csr" => "certificatesigningrequest",
        other => other,
    };
    short
        .strip_suffix("es")
        .filter(|s| s.ends_with("ss") || s.ends_with("ch"))
        .or_else(|| short.strip_suffix('s').filter(|s| !s.ends_with('s')))
        .unwrap_or(short)
        .to_string()
}

fn cluster<'a>(ctx: &'a Ctx, env: &str) -> Result<&'a KubeCluster, ToolError> {
    let clusters = &ctx.tools.kubernetes.clusters;
    clusters.get(env).ok_or_else(|| {
        let known: Vec<&str> = clusters.keys().map(String::as_str).collect();
        ToolError(if known.is_empty() {
            "no Kubernetes clusters are declared on this runner ([tools.kubernetes.clusters.<environment>])".into()
        } else {
            format!(
                "no Kubernetes cluster is declared for environment `{env}`; the clusters are for {} (pass `environment`)",
                known.join(", ")
            )
        })
    })
}

fn opt_str<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args[key].as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A Go duration kubectl's `--since` reads: digits then s, m or h.
fn is_since(s: &str) -> bool {
    s.len() <= 10
        && s.len() >= 2
        && s[..s.len() - 1].bytes().all(|c| c.is_ascii_digit())
        && s.ends_with(['s', 'm', 'h'])
}

/// The checked, normalised arguments and the kubectl words they are (the
/// command line without the connection flags): what the policy judges and
/// what runs. Pure, so it is table-tested.
pub fn command(args: &Value, ctx: &Ctx) -> Result<(Value, Vec<String>), ToolError> {
    let action = Action::parse(str_arg(args, "action")?)?;
    let env = opt_str(args, "environment").unwrap_or(&ctx.environment);
    let c = cluster(ctx, env)?;
    let ns = match opt_str(args, "namespace") {
        Some(ns) => ns,
        None if c.namespaces.len() == 1 => &c.namespaces[0],
        None => {
            return Err(ToolError(format!(
                "`namespace` is required; the agent may act in {} on environment `{env}`'s cluster",
                c.namespaces.join(", ")
            )))
        }
    };
    if !c.namespaces.iter().any(|n| n == ns) {
        return Err(ToolError(format!(
            "namespace `{ns}` is not allowed on environment `{env}`'s cluster; the allowed namespaces are {}",
            c.namespaces.join(", ")
        )));
    }
    let resource = opt_str(args, "resource");
    if let Some(r) = resource {
        if !is_resource(r) {
            return Err(ToolError(format!("`resource` = {r:?} is not one resource type (lowercase, like pods, deployment or deployments.apps; no commas and no type/name)")));
        }
    }
    let name = opt_str(args, "name");
    if let Some(n) = name {
        if !is_object_name(n) {
            return Err(ToolError(format!(
                "`name` = {n:?} is not a Kubernetes object name (lowercase letters, digits, - and .)"
            )));
        }
    }
    fn need<'a>(what: Option<&'a str>, key: &str, action: Action) -> Result<&'a str, ToolError> {
        what.ok_or_else(|| ToolError(format!("`{key}` is required for `{}`", action_name(action))))
    }
    let mut norm = json!({"environment": env, "action": action_name(action), "namespace": ns});
    let mut w: Vec<String> = vec!["kubectl".into()];
    let push = |w: &mut Vec<String>, xs: &[&str]| w.extend(xs.iter().map(|s| s.to_string()));
    let rollout_target = |kinds: &[&str]| -> Result<String, ToolError> {
        let r = need(resource, "resource", action)?;
        let k = kind_of(r);
        if !kinds.contains(&k.as_str()) {
            return Err(ToolError(format!(
                "`{}` works on {} only, not `{r}`",
                action_name(action),
                kinds.join(", ")
            )));
        }
        Ok(format!("{k}/{}", need(name, "name", action)?))
    };
    match action {
        Action::Get | Action::Describe => {
            push(
                &mut w,
                &[if action == Action::Get {
                    "get"
                } else {
                    "describe"
                }],
            );
            w.push(need(resource, "resource", action)?.to_string());
            if let Some(n) = name {
                w.push(n.to_string());
            }
            if let Some(sel) = opt_str(args, "selector") {
                if !sel
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"=!,._-/ ()".contains(&c))
                {
                    return Err(ToolError(format!(
                        "`selector` = {sel:?} is not a label selector (app=web,tier!=db)"
                    )));
                }
                norm["selector"] = json!(sel);
                push(&mut w, &["-l", sel]);
            }
            if action == Action::Get {
                if let Some(o) = opt_str(args, "output") {
                    norm["output"] = json!(o);
                    if o != "table" {
                        push(&mut w, &["-o", o]);
                    }
                }
            }
        }
        Action::Logs => {
            let n = need(name, "name", action)?;
            let target = match resource.map(kind_of) {
                None => n.to_string(),
                Some(k) if k == "pod" => n.to_string(),
                Some(k) => format!("{k}/{n}"),
            };
            push(&mut w, &["logs", &target]);
            if let Some(c) = opt_str(args, "container") {
                if !is_dns_label(c) {
                    return Err(ToolError(format!(
                        "`container` = {c:?} is not a container name"
                    )));
                }
                norm["container"] = json!(c);
                push(&mut w, &["-c", c]);
            }
            let tail = args["tail"]
                .as_u64()
                .unwrap_or(200)
                .min(u64::from(ctx.tools.kubernetes.max_log_lines));
            norm["tail"] = json!(tail);
            w.push(format!("--tail={tail}"));
            if let Some(s) = opt_str(args, "since") {
                if !is_since(s) {
                    return Err(ToolError(format!("`since` = {s:?} is not a duration kubectl reads (digits then s, m or h: 30m)")));
                }
                norm["since"] = json!(s);
                w.push(format!("--since={s}"));
            }
            if args["previous"].as_bool() == Some(true) {
                norm["previous"] = json!(true);
                w.push("--previous".into());
            }
        }
        Action::Events => {
            push(&mut w, &["get", "events"]);
            if let Some(n) = name {
                w.push(format!("--field-selector=involvedObject.name={n}"));
            }
        }
        Action::RolloutStatus | Action::RolloutHistory | Action::RolloutRestart => {
            let verb = match action {
                Action::RolloutStatus => "status",
                Action::RolloutHistory => "history",
                _ => "restart",
            };
            let t = rollout_target(&["deployment", "daemonset", "statefulset"])?;
            push(&mut w, &["rollout", verb, &t]);
        }
        Action::RolloutUndo => {
            let t = rollout_target(&["deployment", "daemonset", "statefulset"])?;
            push(&mut w, &["rollout", "undo", &t]);
            if let Some(r) = args["to_revision"].as_u64() {
                norm["to_revision"] = json!(r);
                w.push(format!("--to-revision={r}"));
            }
        }
        Action::Scale => {
            let t = rollout_target(&["deployment", "statefulset", "replicaset"])?;
            let Some(n) = args["replicas"].as_u64() else {
                return Err(ToolError("`replicas` is required for `scale`".into()));
            };
            norm["replicas"] = json!(n);
            push(&mut w, &["scale", &t, &format!("--replicas={n}")]);
        }
        Action::Delete => {
            let r = need(resource, "resource", action)?;
            let n = need(name, "name", action)?;
            let k = kind_of(r);
            if k == "all" || CLUSTER_SCOPED.contains(&k.as_str()) {
                return Err(ToolError(format!(
                    "`delete` acts on one namespaced object; `{r}` is {}",
                    if k == "all" {
                        "every kind at once"
                    } else {
                        "cluster-scoped (outside the namespace allow-list)"
                    }
                )));
            }
            push(&mut w, &["delete", r, n]);
        }
        Action::Apply => {
            let f = need(opt_str(args, "file"), "file", action)?;
            let (_, digest) = manifest(ctx, f)?;
            norm["file"] = json!(f);
            norm["file_sha256"] = json!(digest);
            push(&mut w, &["apply", "-f", f]);
        }
    }
    for (key, v) in [("resource", resource), ("name", name)] {
        if let Some(v) = v {
            norm[key] = json!(v);
        }
    }
    push(&mut w, &["-n", ns]);
    Ok((norm, w))
}

fn action_name(a: Action) -> &'static str {
    ACTIONS
        .iter()
        .find(|(_, x)| *x == a)
        .map_or("?", |(n, _)| n)
}

/// The manifest `file` inside the workspace, and the SHA-256 of its bytes
/// (carried in the approved arguments: an apply runs only the bytes that
/// were approved).
fn manifest(ctx: &Ctx, file: &str) -> Result<(PathBuf, String), ToolError> {
    let ws = ctx.workspace.canonicalize().map_err(ToolError::new)?;
    let p = ws.join(file).canonicalize().map_err(|e| {
        ToolError(format!(
            "`file` = {file:?}: {e}; write the manifest in the workspace first"
        ))
    })?;
    if !p.starts_with(&ws) {
        return Err(ToolError(format!(
            "`file` = {file:?} is outside the job's workspace"
        )));
    }
    let bytes = std::fs::read(&p).map_err(|e| ToolError(format!("`file` = {file:?}: {e}")))?;
    Ok((p, hex::encode(Sha256::digest(&bytes))))
}

/// The flags that reach the cluster: its kubeconfig and context, a bounded
/// request, a discovery cache outside the workspace.
fn connection(ctx: &Ctx, c: &KubeCluster) -> Vec<String> {
    let k = &ctx.tools.kubernetes;
    vec![
        format!(
            "--kubeconfig={}",
            hwc_ai_core::secret::resolve(&c.kubeconfig).display()
        ),
        format!("--context={}", c.context),
        format!("--request-timeout={}s", k.request_timeout.as_secs().max(1)),
        format!(
            "--cache-dir={}",
            std::env::temp_dir()
                .join("hwc-agent-kubectl-cache")
                .display()
        ),
    ]
}

/// Runs kubectl with `words` (from [`command`], `kubectl` first) plus
/// `extra`, on `env`'s cluster.
async fn kubectl(
    ctx: &Ctx,
    env: &str,
    words: &[String],
    extra: &[String],
) -> Result<crate::exec::Outcome, ToolError> {
    let c = cluster(ctx, env)?;
    let k = &ctx.tools.kubernetes;
    let mut argv = vec![super::program(&k.program)];
    argv.extend(connection(ctx, c));
    argv.extend(words.iter().skip(1).cloned());
    argv.extend(extra.iter().cloned());
    let mut inv = super::host_invocation(ctx, argv);
    inv.timeout = k.request_timeout * 3 + k.rollout_timeout;
    inv.keep = k.max_output_bytes;
    crate::exec::run(&inv).await.map_err(ToolError::new)
}

/// kubectl's own error, with what to do about the ones whose cause is this
/// runner's configuration rather than the model's call.
fn explain(env: &str, c: &KubeCluster, o: &crate::exec::Outcome) -> String {
    let err = o.stderr.excerpt();
    let hint = if err.contains("context was not found")
        || err.contains("does not exist") && err.contains("context")
    {
        format!("the kubeconfig {} has no context `{}`: fix [tools.kubernetes.clusters.{env}] context or the kubeconfig", c.kubeconfig.display(), c.context)
    } else if err.contains("Unauthorized") || err.contains("must be logged in") {
        format!(
            "the cluster refused the credentials in {} (401): renew the token in that kubeconfig",
            c.kubeconfig.display()
        )
    } else if err.contains("connection refused")
        || err.contains("no such host")
        || err.contains("i/o timeout")
        || err.contains("Client.Timeout")
    {
        format!("environment `{env}`'s API server cannot be reached; check the cluster and the runner's network (IPAddressAllow)")
    } else {
        String::new()
    };
    let mut s = err.trim().to_string();
    if s.is_empty() {
        s = o.status_line();
    }
    if !hint.is_empty() {
        s = format!("{s}\n({hint})");
    }
    s
}

/// Runs a planning step that must succeed (a dry run, a lookup), its
/// stdout, or kubectl's explained error.
async fn must(
    ctx: &Ctx,
    env: &str,
    what: &str,
    words: &[String],
    extra: &[String],
) -> Result<String, ToolError> {
    let o = kubectl(ctx, env, words, extra).await?;
    if o.success() {
        Ok(String::from_utf8_lossy(&o.stdout.head).trim().to_string())
    } else {
        let c = cluster(ctx, env)?;
        Err(ToolError(format!("{what} failed: {}", explain(env, c, &o))))
    }
}

/// The object as it is now, stripped of what the server owns, saved where
/// its rollback can apply it again; the saved path, relative to the
/// workspace.
async fn save_for_rollback(
    ctx: &Ctx,
    env: &str,
    ns: &str,
    get: Vec<String>,
    label: &str,
) -> Result<(String, Vec<String>), ToolError> {
    let mut words = vec!["kubectl".to_string(), "get".into()];
    words.extend(get);
    words.extend(["-n".into(), ns.into()]);
    let out = must(
        ctx,
        env,
        "reading the object for its rollback",
        &words,
        &["-o".into(), "json".into(), "--ignore-not-found".into()],
    )
    .await?;
    let v: Value = if out.is_empty() {
        json!({"kind": "List", "apiVersion": "v1", "items": []})
    } else {
        serde_json::from_str(&out)
            .map_err(|e| ToolError(format!("kubectl get -o json printed no JSON: {e}")))?
    };
    let mut items: Vec<Value> = match v.get("items") {
        Some(Value::Array(a)) => a.clone(),
        _ => vec![v],
    };
    let mut names = Vec::new();
    for it in &mut items {
        strip_server_fields(it);
        names.push(format!(
            "{}/{}",
            it["kind"].as_str().unwrap_or("?").to_lowercase(),
            it["metadata"]["name"].as_str().unwrap_or("?")
        ));
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let dir = ctx.workspace.join(".hwc-rollback");
    std::fs::create_dir_all(&dir).map_err(ToolError::new)?;
    let body = serde_json::to_vec_pretty(&list).map_err(ToolError::new)?;
    let file = format!("{label}-{}.json", &hex::encode(Sha256::digest(&body))[..12]);
    std::fs::write(dir.join(&file), &body).map_err(ToolError::new)?;
    Ok((format!(".hwc-rollback/{file}"), names))
}

/// Drops what the server sets (uid, resourceVersion, status, …) so the
/// object can be applied again.
fn strip_server_fields(o: &mut Value) {
    if let Some(m) = o["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
        ] {
            m.remove(k);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
}

/// Whether kubectl can dry-run `action` on the server.
fn dry_run_supported(action: Action) -> bool {
    // kubectl 1.20's `rollout restart` has no --dry-run.
    action != Action::RolloutRestart
}

#[async_trait::async_trait]
impl Tool for Kubectl {
    fn spec(&self) -> ToolSpec {
        let actions: Vec<&str> = ACTIONS.iter().map(|(n, _)| *n).collect();
        ToolSpec {
            name: "kubectl".into(),
            description: "Look at and act on a declared Kubernetes cluster (per environment; namespaces allow-listed). Reads: get, describe, logs, events, rollout_status, rollout_history. Changes (approved first; planned with a server dry run and a rollback): rollout_restart, rollout_undo, scale, delete, apply (a manifest file in the workspace).".into(),
            parameters: json!({"type": "object", "required": ["action"], "properties": {
                "action": {"type": "string", "enum": actions},
                "environment": {"type": "string", "maxLength": 64, "description": "the cluster's environment; default: the job's"},
                "namespace": {"type": "string", "maxLength": 63},
                "resource": {"type": "string", "maxLength": 100, "description": "one resource type: pods, deployment, service, events, …"},
                "name": {"type": "string", "maxLength": 253},
                "selector": {"type": "string", "maxLength": 256, "description": "label selector for get/describe"},
                "output": {"type": "string", "enum": ["table", "wide", "yaml", "json", "name"]},
                "container": {"type": "string", "maxLength": 63},
                "tail": {"type": "integer", "minimum": 1, "maximum": 10000},
                "since": {"type": "string", "maxLength": 10, "description": "logs newer than this: 30m, 2h"},
                "previous": {"type": "boolean"},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 1000},
                "to_revision": {"type": "integer", "minimum": 1},
                "file": {"type": "string", "maxLength": 1024, "description": "for apply: a manifest path in the workspace"}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let (norm, words) = command(args, ctx)?;
        let action = Action::parse(str_arg(&norm, "action")?)?;
        let env = str_arg(&norm, "environment")?.to_string();
        let ns = str_arg(&norm, "namespace")?.to_string();
        let c = cluster(ctx, &env)?;
        let mut summary = words.join(" ");
        let mut rollback = None;
        if action.writes() {
            if action == Action::Apply {
                let (path, _) = manifest(ctx, str_arg(&norm, "file")?)?;
                let out = must(
                    ctx,
                    &env,
                    "reading the manifest (kubectl apply --dry-run=client)",
                    &words,
                    &["--dry-run=client".into(), "-o".into(), "json".into()],
                )
                .await?;
                let v: Value = serde_json::from_str(&out).map_err(|e| {
                    ToolError(format!("kubectl printed no JSON for the manifest: {e}"))
                })?;
                let items = match v.get("items") {
                    Some(Value::Array(a)) => a.clone(),
                    _ => vec![v],
                };
                for it in &items {
                    let kind = it["kind"].as_str().unwrap_or("").to_lowercase();
                    if CLUSTER_SCOPED.contains(&kind.as_str()) {
                        return Err(ToolError(format!("the manifest has a {} (`{}`): cluster-scoped objects are outside the namespace allow-list; apply them another way", it["kind"].as_str().unwrap_or("?"), it["metadata"]["name"].as_str().unwrap_or("?"))));
                    }
                }
                let (saved, existing) = save_for_rollback(
                    ctx,
                    &env,
                    &ns,
                    vec!["-f".into(), path.display().to_string()],
                    "apply",
                )
                .await?;
                let created: Vec<String> = items
                    .iter()
                    .map(|it| {
                        format!(
                            "{}/{}",
                            it["kind"].as_str().unwrap_or("?").to_lowercase(),
                            it["metadata"]["name"].as_str().unwrap_or("?")
                        )
                    })
                    .filter(|n| !existing.contains(n))
                    .collect();
                let mut r = Vec::new();
                if !existing.is_empty() {
                    r.push(format!(
                        "kubectl apply -f {saved} -n {ns} (restores {} as they were before)",
                        existing.join(", ")
                    ));
                }
                if !created.is_empty() {
                    r.push(format!(
                        "kubectl delete {} -n {ns} (created by this apply)",
                        created.join(" ")
                    ));
                }
                rollback = Some(r.join("; then "));
            }
            if action == Action::Delete {
                let r = str_arg(&norm, "resource")?;
                let n = str_arg(&norm, "name")?;
                let (saved, _) = save_for_rollback(
                    ctx,
                    &env,
                    &ns,
                    vec![r.into(), n.into()],
                    &format!("delete-{}-{n}", kind_of(r)),
                )
                .await?;
                rollback = Some(format!("kubectl apply -f {saved} -n {ns} (re-creates the object as it was; its uid, status and any data it held are not restored)"));
            }
            if matches!(action, Action::Scale) {
                let t = &words[2];
                let get = vec![
                    "kubectl".to_string(),
                    "get".into(),
                    t.clone(),
                    "-n".into(),
                    ns.clone(),
                ];
                let now = must(
                    ctx,
                    &env,
                    "reading the replica count",
                    &get,
                    &["-o".into(), "jsonpath={.spec.replicas}".into()],
                )
                .await?;
                rollback = Some(format!("kubectl scale {t} --replicas={now} -n {ns}"));
            }
            if matches!(action, Action::RolloutRestart | Action::RolloutUndo) {
                let t = &words[3];
                rollback = Some(if t.starts_with("deployment/") {
                    let get = vec![
                        "kubectl".to_string(),
                        "get".into(),
                        t.clone(),
                        "-n".into(),
                        ns.clone(),
                    ];
                    let rev = must(
                        ctx,
                        &env,
                        "reading the current revision",
                        &get,
                        &[
                            "-o".into(),
                            r"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}"
                                .into(),
                        ],
                    )
                    .await?;
                    if rev.is_empty() {
                        format!("kubectl rollout undo {t} -n {ns}")
                    } else {
                        format!("kubectl rollout undo {t} --to-revision={rev} -n {ns}")
                    }
                } else {
                    format!("kubectl rollout undo {t} -n {ns}")
                });
            }
            if dry_run_supported(action) {
                let out = must(
                    ctx,
                    &env,
                    "the server dry run (--dry-run=server)",
                    &words,
                    &["--dry-run=server".into()],
                )
                .await?;
                let first = out.lines().next().unwrap_or("accepted");
                summary = format!("{summary}  [server dry run: {first}]");
            } else {
                summary = format!("{summary}  [no server dry run: kubectl has none for this]");
            }
        }
        let target = format!(
            "k8s:{}/{ns}/{}",
            c.context,
            words
                .iter()
                .skip(2)
                .find(|w| w.contains('/'))
                .cloned()
                .unwrap_or_else(|| norm["name"].as_str().unwrap_or("*").to_string())
        );
        Ok(Planned {
            tool: "kubectl".into(),
            arguments: norm,
            subject: PlanSubject::Commands(vec![words]),
            target,
            rollback,
            claimed: None,
            summary,
            item: if action.writes() {
                ItemKind::CommandExecution
            } else {
                ItemKind::ToolCall
            },
            network: false,
            call_id: None,
            environment: Some(env),
        })
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let (norm, words) = command(&p.arguments, ctx)?;
        let action = Action::parse(str_arg(&norm, "action")?)?;
        let env = str_arg(&norm, "environment")?;
        if action == Action::Apply && norm["file_sha256"] != p.arguments["file_sha256"] {
            return Err(ToolError(format!(
                "the manifest {} changed after it was planned and approved; plan the apply again",
                norm["file"].as_str().unwrap_or("?")
            )));
        }
        let mut extra = Vec::new();
        match action {
            Action::Delete => extra.push("--wait=false".to_string()),
            Action::RolloutStatus => extra.push(format!(
                "--timeout={}s",
                ctx.tools.kubernetes.rollout_timeout.as_secs().max(1)
            )),
            _ => {}
        }
        let o = kubectl(ctx, env, &words, &extra).await?;
        let mut out = ToolOutput::from_outcome(&o);
        if !o.success() {
            let c = cluster(ctx, env)?;
            out.text = format!("{}\n{}", o.status_line(), explain(env, c, &o));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KubeCluster, ToolsConfig};

    fn ctx() -> Ctx {
        let mut tools = ToolsConfig::default();
        for (env, ns) in [("prod", vec!["web", "db"]), ("dev", vec!["web"])] {
            tools.kubernetes.clusters.insert(
                env.into(),
                KubeCluster {
                    kubeconfig: "kubeconfig".into(),
                    context: format!("{env}-admin"),
                    namespaces: ns.into_iter().map(String::from).collect(),
                },
            );
        }
        crate::tools::test_ctx(tools)
    }

    fn line(args: Value) -> String {
        match command(&args, &ctx()) {
            Ok((_, w)) => w.join(" "),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn actions_become_the_kubectl_lines_the_policy_judges() {
        let table = [
            (json!({"action": "get", "resource": "pods"}), "kubectl get pods -n web"),
            (json!({"action": "get", "resource": "deployment", "name": "web", "output": "wide", "environment": "prod", "namespace": "web"}), "kubectl get deployment web -o wide -n web"),
            (json!({"action": "logs", "name": "web-1", "container": "app", "tail": 99999}), "kubectl logs web-1 -c app --tail=500 -n web"),
            (json!({"action": "logs", "resource": "deploy", "name": "web", "since": "30m"}), "kubectl logs deployment/web --tail=200 --since=30m -n web"),
            (json!({"action": "events", "name": "web-1"}), "kubectl get events --field-selector=involvedObject.name=web-1 -n web"),
            (json!({"action": "rollout_restart", "resource": "deployments.apps", "name": "web"}), "kubectl rollout restart deployment/web -n web"),
            (json!({"action": "rollout_undo", "resource": "sts", "name": "pg", "to_revision": 3}), "kubectl rollout undo statefulset/pg --to-revision=3 -n web"),
            (json!({"action": "scale", "resource": "deployment", "name": "web", "replicas": 0}), "kubectl scale deployment/web --replicas=0 -n web"),
            (json!({"action": "delete", "resource": "pod", "name": "web-1"}), "kubectl delete pod web-1 -n web"),
            (json!({"action": "get", "resource": "pods", "environment": "prod"}), "error: `namespace` is required; the agent may act in web, db on environment `prod`'s cluster"),
            (json!({"action": "get", "resource": "pods", "namespace": "kube-system"}), "error: namespace `kube-system` is not allowed on environment `dev`'s cluster; the allowed namespaces are web"),
            (json!({"action": "get", "resource": "pods", "environment": "staging"}), "error: no Kubernetes cluster is declared for environment `staging`; the clusters are for dev, prod (pass `environment`)"),
            (json!({"action": "get", "resource": "pods,secrets"}), "error: `resource` = \"pods,secrets\" is not one resource type (lowercase, like pods, deployment or deployments.apps; no commas and no type/name)"),
            (json!({"action": "delete", "resource": "namespace", "name": "web"}), "error: `delete` acts on one namespaced object; `namespace` is cluster-scoped (outside the namespace allow-list)"),
            (json!({"action": "delete", "resource": "all", "name": "x"}), "error: `delete` acts on one namespaced object; `all` is every kind at once"),
            (json!({"action": "scale", "resource": "pod", "name": "x", "replicas": 1}), "error: `scale` works on deployment, statefulset, replicaset only, not `pod`"),
            (json!({"action": "logs"}), "error: `name` is required for `logs`"),
            (json!({"action": "get", "resource": "pods", "name": "--all"}), "error: `name` = \"--all\" is not a Kubernetes object name (lowercase letters, digits, - and .)"),
            (json!({"action": "logs", "name": "x", "since": "1d; rm"}), "error: `since` = \"1d; rm\" is not a duration kubectl reads (digits then s, m or h: 30m)"),
            (json!({"action": "apply", "file": "../../etc/passwd"}), "error: `file` = \"../../etc/passwd\" is outside the job's workspace"),
        ];
        for (args, want) in table {
            assert_eq!(line(args.clone()), want, "{args}");
        }
    }

    #[test]
    fn kinds_are_singular_and_unshortened() {
        for (r, k) in [
            ("deploy", "deployment"),
            ("deployments", "deployment"),
            ("deployments.apps", "deployment"),
            ("ingresses", "ingress"),
            ("ns", "namespace"),
            ("statefulsets", "statefulset"),
            ("pods", "pod"),
            ("crds", "customresourcedefinition"),
            ("clusterroles", "clusterrole"),
        ] {
            assert_eq!(kind_of(r), k, "{r}");
        }
        assert!(is_dns_label("web-1") && !is_dns_label("-web") && !is_dns_label("Web"));
    }
}
