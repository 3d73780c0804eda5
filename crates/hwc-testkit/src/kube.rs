//! A scripted Kubernetes API server for the agent runner's kubectl tool
//! tests: no kube-apiserver (nor etcd) installs here, so the tests run the
//! real pinned kubectl ([`kubectl`], Debian 12's 1.20) against this fake,
//! which answers exactly the requests that kubectl makes for the commands
//! the tool offers (get, describe, logs, rollout, scale, delete, apply),
//! with an in-memory world that writes change and server dry runs
//! (`dryRun=All`) do not. Never used where a real cluster could serve.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// The pinned kubectl (1.20, from Debian 12's kubernetes-client, unpacked
/// by scripts/setup.sh) so every test run sees the same client: `HWC_KUBECTL`
/// if set, else the one in the hwc-ai cache.
pub fn kubectl() -> PathBuf {
    if let Some(p) = std::env::var_os("HWC_KUBECTL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    let p = cache.join("hwc-ai/kubectl/usr/bin/kubectl");
    if p.exists() {
        return p;
    }
    panic!(
        "the pinned kubectl 1.20 is not at {} and HWC_KUBECTL is unset: run scripts/setup.sh",
        p.display()
    )
}

/// One request the fake answered, so a test can assert what kubectl sent
/// (a server dry run before the real write, the patch type, the body).
#[derive(Clone, Debug)]
pub struct Recorded {
    /// GET, POST, PUT, PATCH, DELETE.
    pub method: String,
    /// The URL path, e.g. `/apis/apps/v1/namespaces/web/deployments/web/scale`.
    pub path: String,
    /// The raw query string (still percent-encoded).
    pub query: String,
    /// The Accept header (`application/json;as=Table;...` for `kubectl get`).
    pub accept: String,
    /// The Content-Type header: which patch type a PATCH is.
    pub content_type: Option<String>,
    /// The request body as text.
    pub body: String,
}

impl Recorded {
    /// The decoded value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<String> {
        parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether this request was a server dry run (`dryRun=All` in the query,
    /// or in a DeleteOptions body).
    pub fn dry_run(&self) -> bool {
        self.param("dryRun").as_deref() == Some("All")
            || serde_json::from_str::<Value>(&self.body)
                .ok()
                .and_then(|b| b.get("dryRun").cloned())
                .is_some_and(|d| d.as_array().is_some_and(|a| a.iter().any(|x| x == "All")))
    }

    /// Whether this request changes state (not GET; dry runs included).
    pub fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

/// A running fake Kubernetes API server on loopback: https with a fixed
/// self-signed certificate (kubectl sends a kubeconfig's token only over
/// TLS), bearer token auth (401 `Status` otherwise), namespaces `default`,
/// `web` (Deployment `web` at revision 2 with ReplicaSets `web-6d4b` and
/// `web-7f9c`, Pods `web-7f9c-abcde` and `web-7f9c-fghij`, Service `web`,
/// Events) and `db` (Deployment `pg`, one Pod). The controllers act at
/// once on every write (a changed pod template makes or reuses a
/// ReplicaSet as the next revision; pods follow `spec.replicas`), except
/// that a new revision's rollout stays in progress until a watch on
/// deployments sees it (as `kubectl rollout status` does), which then
/// reports it finished.
#[derive(Clone)]
pub struct FakeApiServer {
    /// Where it listens (127.0.0.1 and a free port).
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

struct Inner {
    world: Mutex<World>,
    token: String,
}

impl FakeApiServer {
    /// Starts the server on a free loopback port with the seeded world.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut world = World {
            objects: BTreeMap::new(),
            rv: 1000,
            serial: 0,
            pending: BTreeSet::new(),
            requests: Vec::new(),
            fail: None,
            now,
        };
        world.seed();
        let inner = Arc::new(Inner {
            world: Mutex::new(world),
            token: format!("hwc-fake-token-{}", addr.port()),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let tls = TlsListener::new(listener, addr);
        tokio::spawn(async move { axum::serve(tls, app).await.unwrap() });
        Self { addr, inner }
    }

    /// The server URL a kubeconfig names (`https://127.0.0.1:PORT`; https
    /// because kubectl sends credentials only over TLS).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM certificate the server presents (self-signed, for 127.0.0.1
    /// and localhost): the CA a kubeconfig or an https client trusts.
    pub fn ca_pem(&self) -> &'static str {
        CERT_PEM
    }

    /// The bearer token the server accepts.
    pub fn token(&self) -> String {
        self.inner.token.clone()
    }

    /// Writes `dir/kubeconfig` with one context per `(context, namespace)`
    /// pair (the first is current), all on this server with its token.
    pub fn kubeconfig(&self, dir: &Path, contexts: &[(&str, &str)]) -> PathBuf {
        let q = |s: &str| Value::String(s.to_string()).to_string();
        let mut y = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: fake\n  user:\n    token: {}\ncontexts:\n",
            q(&self.url()),
            B64.encode(CERT_PEM),
            q(&self.inner.token)
        );
        for (ctx, ns) in contexts {
            y += &format!(
                "- name: {}\n  context:\n    cluster: fake\n    user: fake\n    namespace: {}\n",
                q(ctx),
                q(ns)
            );
        }
        if let Some((ctx, _)) = contexts.first() {
            y += &format!("current-context: {}\n", q(ctx));
        }
        let path = dir.join("kubeconfig");
        std::fs::write(&path, y).unwrap();
        path
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.world.lock().unwrap().requests.clone()
    }

    /// The stored Deployment `ns/name`, as the API would return it.
    pub fn deployment(&self, ns: &str, name: &str) -> Option<Value> {
        self.object(ns, "deployments", name)
    }

    /// The stored object `ns/plural/name` (`plural` as in the API path:
    /// pods, deployments, replicasets, services, events, configmaps).
    pub fn object(&self, ns: &str, plural: &str, name: &str) -> Option<Value> {
        self.inner
            .world
            .lock()
            .unwrap()
            .get(plural, ns, name)
            .cloned()
    }

    /// Whether `ns/plural/name` exists.
    pub fn exists(&self, ns: &str, plural: &str, name: &str) -> bool {
        self.object(ns, plural, name).is_some()
    }

    /// Names of the stored `plural` objects in `ns`, sorted.
    pub fn names(&self, ns: &str, plural: &str) -> Vec<String> {
        let w = self.inner.world.lock().unwrap();
        w.objects
            .keys()
            .filter(|(p, n, _)| p == plural && n == ns)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// Fault injector: the next `times` resource requests (not discovery,
    /// /version or /openapi/v2, so kubectl gets as far as the real call)
    /// answer `status` with a Kubernetes `Status` body and no Retry-After.
    pub fn fail_next(&self, status: u16, times: usize) {
        self.inner.world.lock().unwrap().fail = Some((status, times));
    }
}

// ---------------------------------------------------------------------------
// TLS

/// A self-signed test certificate (P-256, valid 2000-2100, SAN 127.0.0.1
/// and localhost) and its key: a fixed pair, so no cert tool runs in tests.
const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBrzCCAVSgAwIBAgIBATAKBggqhkjOPQQDAjAlMSMwIQYDVQQDDBpod2MtdGVz
dGtpdCBmYWtlIGFwaXNlcnZlcjAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAw
MDAwMFowJTEjMCEGA1UEAwwaaHdjLXRlc3RraXQgZmFrZSBhcGlzZXJ2ZXIwWTAT
BgcqhkjOPQIBBggqhkjOPQMBBwNCAARBX7/CcrruRfC37jetAQT9xGaE/nbyH9dW
aQrF0gqg8QgzXtnL2nVyt9Ks91IpoKZ97nim0Tlj1YQztXDO0GWmo3MwcTAPBgNV
HRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIChDATBgNVHSUEDDAKBggrBgEFBQcD
ATAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwHQYDVR0OBBYEFNz11Yji3Icn
y2UGYCdb8qcqXrPyMAoGCCqGSM49BAMCA0kAMEYCIQCrPHAjaDd0MIXoY32OeAmb
Mynw0m3viTgOAGd6nmxLPwIhAPlnyKIaAVASVA/YKsOJAjhE4g8Bggo/nNubarkj
HilN
-----END CERTIFICATE-----\n";
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgn5LTbBZK9CdNV2TM
pWua2UxYjx9Of6+vQEjX1aVjSSWhRANCAARBX7/CcrruRfC37jetAQT9xGaE/nby
H9dWaQrF0gqg8QgzXtnL2nVyt9Ks91IpoKZ97nim0Tlj1YQztXDO0GWm
-----END PRIVATE KEY-----\n";

fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    B64.decode(b64).unwrap()
}

/// Accepts TCP connections and hands axum the finished TLS streams (each
/// handshake on its own task, so a stuck client blocks no other).
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    fn new(tcp: tokio::net::TcpListener, addr: SocketAddr) -> Self {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(pem_der(CERT_PEM))],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pem_der(KEY_PEM))),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let tls =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    if let Ok(Ok(tls)) = tls {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Self { rx, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

// ---------------------------------------------------------------------------
// Resources served

struct Res {
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
}

impl Res {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            "v1".into()
        } else {
            format!("{}/v1", self.group)
        }
    }
    /// `deployments.apps`, as error messages name it.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.into()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

#[rustfmt::skip]
const RESOURCES: &[Res] = &[
    Res { group: "", plural: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false, short: &["ns"], categories: &[] },
    Res { group: "", plural: "pods", singular: "pod", kind: "Pod", namespaced: true, short: &["po"], categories: &["all"] },
    Res { group: "", plural: "services", singular: "service", kind: "Service", namespaced: true, short: &["svc"], categories: &["all"] },
    Res { group: "", plural: "events", singular: "event", kind: "Event", namespaced: true, short: &["ev"], categories: &[] },
    Res { group: "", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, short: &["cm"], categories: &[] },
    Res { group: "apps", plural: "deployments", singular: "deployment", kind: "Deployment", namespaced: true, short: &["deploy"], categories: &["all"] },
    Res { group: "apps", plural: "replicasets", singular: "replicaset", kind: "ReplicaSet", namespaced: true, short: &["rs"], categories: &["all"] },
];

/// (parent plural, subresource, kind, group, version, verbs)
type Sub = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);
#[rustfmt::skip]
const SUBRESOURCES: &[Sub] = &[
    ("pods", "log", "Pod", "", "v1", &["get"]),
    ("pods", "status", "Pod", "", "v1", &["get", "patch", "update"]),
    ("deployments", "scale", "Scale", "autoscaling", "v1", &["get", "patch", "update"]),
    ("deployments", "status", "Deployment", "apps", "v1", &["get", "patch", "update"]),
    ("replicasets", "scale", "Scale", "autoscaling", "v1", &["get", "patch", "update"]),
    ("replicasets", "status", "ReplicaSet", "apps", "v1", &["get", "patch", "update"]),
];

fn resource_list(group: &str) -> Value {
    let mut list = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        let mut e = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": VERBS,
        });
        if !r.short.is_empty() {
            e["shortNames"] = json!(r.short);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        list.push(e);
        for (parent, sub, kind, g, v, verbs) in SUBRESOURCES.iter().filter(|s| s.0 == r.plural) {
            let mut e = json!({
                "name": format!("{parent}/{sub}"), "singularName": "", "namespaced": r.namespaced,
                "kind": kind, "verbs": verbs,
            });
            if *g != r.group {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            list.push(e);
        }
    }
    let gv = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
}

// ---------------------------------------------------------------------------
// The world

struct World {
    /// (plural, namespace or "", name) -> object
    objects: BTreeMap<(String, String, String), Value>,
    rv: u64,
    serial: u64,
    /// Deployments whose rollout completes when a watch sees it.
    pending: BTreeSet<(String, String)>,
    requests: Vec<Recorded>,
    fail: Option<(u16, usize)>,
    now: u64,
}

const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH: &str = "pod-template-hash";

impl World {
    fn get(&self, plural: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(plural.into(), ns.into(), name.into()))
    }
    fn put(&mut self, plural: &str, ns: &str, obj: Value) {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.objects.insert((plural.into(), ns.into(), name), obj);
    }
    fn remove(&mut self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .remove(&(plural.into(), ns.into(), name.into()))
    }
    fn list(&self, plural: &str, ns: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((p, n, _), _)| p == plural && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }
    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }
    fn uid(&mut self) -> String {
        let n = self.next_serial();
        let h = fnv(&format!("uid{n}")) as u64;
        let h2 = fnv(&format!("uid2{n}")) as u64;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            h,
            h2 & 0xffff,
            (h2 >> 16) & 0xfff,
            n & 0xfff,
            (h << 16 | h2) & 0xffff_ffff_ffff
        )
    }
    fn suffix(&mut self) -> String {
        let n = self.next_serial();
        alnum(fnv(&format!("pod{n}")), 5)
    }
    fn ago(&self, secs: u64) -> String {
        rfc3339(self.now.saturating_sub(secs))
    }
    fn now_ts(&self) -> String {
        rfc3339(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
    }

    /// Fills in server-set metadata for a new object.
    fn new_meta(&mut self, obj: &mut Value, ns: &str, age: u64) {
        let uid = self.uid();
        let rv = self.next_rv();
        let ts = self.ago(age);
        let m = obj["metadata"].as_object_mut().unwrap();
        if !ns.is_empty() {
            m.insert("namespace".into(), json!(ns));
        }
        m.insert("uid".into(), json!(uid));
        m.insert("resourceVersion".into(), json!(rv));
        m.insert("creationTimestamp".into(), json!(ts));
    }

    fn seed(&mut self) {
        for (ns, age) in [
            ("default", 30 * 86400),
            ("web", 20 * 86400),
            ("db", 20 * 86400),
        ] {
            let mut o = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            self.new_meta(&mut o, "", age);
            self.put("namespaces", "", o);
        }
        // web: two revisions, the second current.
        let d = self.seed_deployment(
            "web",
            "web",
            2,
            template("web", "nginx:1.27", 80),
            10 * 86400,
        );
        self.seed_rs(
            &d,
            "6d4b",
            1,
            template("web", "nginx:1.25", 80),
            0,
            10 * 86400,
        );
        let rs = self.seed_rs(&d, "7f9c", 2, template("web", "nginx:1.27", 80), 2, 86400);
        let p1 = self.seed_pod(&rs, "web-7f9c-abcde", 86400);
        let p2 = self.seed_pod(&rs, "web-7f9c-fghij", 86400);
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}],
                "selector": {"app": "web"}, "sessionAffinity": "None"},
            "status": {"loadBalancer": {}}});
        self.new_meta(&mut svc, "web", 10 * 86400);
        self.put("services", "web", svc);
        let kubelet = json!({"component": "kubelet", "host": "node-1"});
        let ctrl = json!({"component": "deployment-controller"});
        let p1c = "spec.containers{web}";
        self.event(
            "web",
            &p1,
            "Normal",
            "Scheduled",
            "Successfully assigned web/web-7f9c-abcde to node-1",
            json!({"component": "default-scheduler"}),
            None,
            1,
            86400,
        );
        self.event(
            "web",
            &p1,
            "Normal",
            "Pulled",
            "Container image \"nginx:1.27\" already present on machine",
            kubelet.clone(),
            Some(p1c),
            1,
            86390,
        );
        self.event(
            "web",
            &p1,
            "Normal",
            "Created",
            "Created container web",
            kubelet.clone(),
            Some(p1c),
            1,
            86390,
        );
        self.event(
            "web",
            &p1,
            "Normal",
            "Started",
            "Started container web",
            kubelet.clone(),
            Some(p1c),
            1,
            86389,
        );
        self.event(
            "web",
            &p1,
            "Warning",
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
            kubelet.clone(),
            Some(p1c),
            3,
            300,
        );
        self.event(
            "web",
            &p2,
            "Normal",
            "Scheduled",
            "Successfully assigned web/web-7f9c-fghij to node-1",
            json!({"component": "default-scheduler"}),
            None,
            1,
            86400,
        );
        self.event(
            "web",
            &p2,
            "Normal",
            "Started",
            "Started container web",
            kubelet,
            Some("spec.containers{web}"),
            1,
            86389,
        );
        self.event(
            "web",
            &d,
            "Normal",
            "ScalingReplicaSet",
            "Scaled up replica set web-7f9c to 2",
            ctrl.clone(),
            None,
            1,
            86400,
        );
        self.event(
            "web",
            &d,
            "Normal",
            "ScalingReplicaSet",
            "Scaled down replica set web-6d4b to 0",
            ctrl,
            None,
            1,
            86380,
        );
        // db: one revision.
        let d = self.seed_deployment(
            "db",
            "pg",
            1,
            template("pg", "postgres:16", 5432),
            15 * 86400,
        );
        let rs = self.seed_rs(
            &d,
            "5c8d",
            1,
            template("pg", "postgres:16", 5432),
            1,
            15 * 86400,
        );
        self.seed_pod(&rs, "pg-5c8d-qrstu", 15 * 86400);
    }

    fn seed_deployment(
        &mut self,
        ns: &str,
        name: &str,
        revision: u64,
        tpl: Value,
        age: u64,
    ) -> Value {
        let replicas = if name == "web" { 2 } else { 1 };
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "generation": revision, "labels": {"app": name},
                "annotations": {REVISION: revision.to_string()}},
            "spec": deployment_spec_defaults(json!({"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": tpl}))});
        self.new_meta(&mut d, ns, age);
        let rs_name = format!("{name}-{}", if name == "web" { "7f9c" } else { "5c8d" });
        d["status"] = deployment_status(revision, replicas, true, &rs_name, &self.ago(age));
        self.put("deployments", ns, d.clone());
        d
    }

    fn seed_rs(
        &mut self,
        d: &Value,
        hash: &str,
        revision: u64,
        tpl: Value,
        replicas: u64,
        age: u64,
    ) -> Value {
        let mut rs = replica_set(d, hash, revision, tpl, replicas);
        let ns = d["metadata"]["namespace"].as_str().unwrap().to_string();
        self.new_meta(&mut rs, &ns, age);
        self.put("replicasets", &ns, rs.clone());
        rs
    }

    fn seed_pod(&mut self, rs: &Value, name: &str, age: u64) -> Value {
        let ns = rs["metadata"]["namespace"].as_str().unwrap().to_string();
        let ip = format!("10.244.0.{}", 10 + self.serial % 200);
        let start = self.ago(age);
        let mut p = pod(rs, name, &ip, &start);
        self.new_meta(&mut p, &ns, age);
        self.put("pods", &ns, p.clone());
        p
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        ns: &str,
        about: &Value,
        ty: &str,
        reason: &str,
        message: &str,
        source: Value,
        field_path: Option<&str>,
        count: u64,
        age: u64,
    ) {
        // As the kubelet names them: the object, then the time in hex.
        let nanos = self.now.saturating_sub(age) * 1_000_000_000 + self.next_serial();
        let name = format!(
            "{}.{nanos:x}",
            about["metadata"]["name"].as_str().unwrap_or("")
        );
        let mut involved = json!({
            "kind": about["kind"], "namespace": ns, "name": about["metadata"]["name"],
            "uid": about["metadata"]["uid"], "apiVersion": about["apiVersion"],
            "resourceVersion": about["metadata"]["resourceVersion"],
        });
        if let Some(f) = field_path {
            involved["fieldPath"] = json!(f);
        }
        let first = self.ago(age + if count > 1 { 600 } else { 0 });
        let last = self.ago(age);
        let mut e = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": involved, "reason": reason, "message": message, "source": source,
            "firstTimestamp": first, "lastTimestamp": last, "count": count, "type": ty,
            "eventTime": null, "reportingComponent": "", "reportingInstance": ""});
        self.new_meta(&mut e, ns, age);
        self.put("events", ns, e);
    }

    /// The deployment controller and replica set controller in one step:
    /// the replica set whose template matches the deployment's becomes the
    /// newest revision (a new one is made when none does), it gets
    /// `spec.replicas` pods and every older one none.
    fn reconcile(&mut self, ns: &str, name: &str) {
        let Some(mut d) = self.get("deployments", ns, name).cloned() else {
            return;
        };
        let duid = d["metadata"]["uid"].clone();
        let key = tpl_key(&d["spec"]["template"]);
        let mut rss: Vec<Value> = self
            .list("replicasets", Some(ns))
            .into_iter()
            .filter(|rs| controller_uid(rs) == duid)
            .collect();
        let max_rev = rss.iter().map(revision).max().unwrap_or(0);
        let mut rolled = false;
        let cur = match rss
            .iter()
            .position(|rs| tpl_key(&rs["spec"]["template"]) == key)
        {
            Some(i) => {
                if revision(&rss[i]) != max_rev {
                    rss[i]["metadata"]["annotations"][REVISION] = json!((max_rev + 1).to_string());
                    rolled = true;
                }
                i
            }
            None => {
                let hash = alnum(fnv(&key.to_string()), 9);
                let mut rs = replica_set(&d, &hash, max_rev + 1, d["spec"]["template"].clone(), 0);
                self.new_meta(&mut rs, ns, 0);
                rolled = max_rev > 0;
                rss.push(rs);
                rss.len() - 1
            }
        };
        if let Some(cause) = d["metadata"]["annotations"]
            .get("kubernetes.io/change-cause")
            .cloned()
        {
            rss[cur]["metadata"]["annotations"]["kubernetes.io/change-cause"] = cause;
        }
        let desired = d["spec"]["replicas"].as_u64().unwrap_or(1);
        let cur_name = rss[cur]["metadata"]["name"].as_str().unwrap().to_string();
        let cur_rev = revision(&rss[cur]);
        let ctrl = json!({"component": "deployment-controller"});
        for (i, mut rs) in rss.into_iter().enumerate() {
            let want = if i == cur { desired } else { 0 };
            let rs_name = rs["metadata"]["name"].as_str().unwrap().to_string();
            let had = rs["spec"]["replicas"].as_u64().unwrap_or(0);
            if had != want {
                let verb = if want > had { "up" } else { "down" };
                self.event(
                    ns,
                    &d,
                    "Normal",
                    "ScalingReplicaSet",
                    &format!("Scaled {verb} replica set {rs_name} to {want}"),
                    ctrl.clone(),
                    None,
                    1,
                    0,
                );
            }
            rs["spec"]["replicas"] = json!(want);
            rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                json!(desired.to_string());
            rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] =
                json!((desired + desired.div_ceil(4)).to_string());
            rs["status"] = json!({"replicas": want, "fullyLabeledReplicas": want, "readyReplicas": want,
                "availableReplicas": want, "observedGeneration": rs["metadata"]["generation"]});
            rs["metadata"]["resourceVersion"] = json!(self.next_rv());
            let rs_uid = rs["metadata"]["uid"].clone();
            let mut pods: Vec<String> = self
                .list("pods", Some(ns))
                .into_iter()
                .filter(|p| controller_uid(p) == rs_uid)
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
            while pods.len() as u64 > want {
                let p = pods.pop().unwrap();
                self.remove("pods", ns, &p);
            }
            self.put("replicasets", ns, rs.clone());
            while (pods.len() as u64) < want {
                let pname = format!("{rs_name}-{}", self.suffix());
                let p = self.seed_pod(&rs, &pname, 0);
                let kubelet = json!({"component": "kubelet", "host": "node-1"});
                self.event(
                    ns,
                    &p,
                    "Normal",
                    "Started",
                    "Started container",
                    kubelet,
                    None,
                    1,
                    0,
                );
                pods.push(pname);
            }
        }
        let created = d["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("")
            .to_string();
        d["metadata"]["annotations"][REVISION] = json!(cur_rev.to_string());
        d["status"] = deployment_status(
            d["metadata"]["generation"].as_u64().unwrap_or(1),
            desired,
            !rolled,
            &cur_name,
            &created,
        );
        d["metadata"]["resourceVersion"] = json!(self.next_rv());
        if rolled {
            self.pending.insert((ns.into(), name.into()));
        }
        self.put("deployments", ns, d);
    }

    /// Finishes a pending rollout: every new replica updated and available.
    fn complete_rollout(&mut self, ns: &str, name: &str) -> Option<Value> {
        self.pending.remove(&(ns.to_string(), name.to_string()));
        let mut d = self.get("deployments", ns, name).cloned()?;
        let desired = d["spec"]["replicas"].as_u64().unwrap_or(1);
        let rs_name = d["status"]["conditions"][1]["message"]
            .as_str()
            .and_then(|m| m.split('"').nth(1))
            .unwrap_or("")
            .to_string();
        let created = d["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or("")
            .to_string();
        d["status"] = deployment_status(
            d["metadata"]["generation"].as_u64().unwrap_or(1),
            desired,
            true,
            &rs_name,
            &created,
        );
        d["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.put("deployments", ns, d.clone());
        Some(d)
    }
}

fn template(app: &str, image: &str, port: u64) -> Value {
    json!({"metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": app, "image": image,
            "ports": [{"containerPort": port, "protocol": "TCP"}],
            "resources": {}, "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "securityContext": {}, "schedulerName": "default-scheduler"}})
}

fn deployment_spec_defaults(mut spec: Value) -> Value {
    let s = spec.as_object_mut().unwrap();
    s.entry("replicas").or_insert(json!(1));
    s.entry("strategy")
        .or_insert(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
    s.entry("revisionHistoryLimit").or_insert(json!(10));
    s.entry("progressDeadlineSeconds").or_insert(json!(600));
    spec
}

fn deployment_status(
    generation: u64,
    replicas: u64,
    complete: bool,
    rs: &str,
    since: &str,
) -> Value {
    let (updated, total, progressing) = if complete {
        (
            replicas,
            replicas,
            json!({"type": "Progressing", "status": "True", "lastUpdateTime": since, "lastTransitionTime": since,
            "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{rs}\" has successfully progressed.")}),
        )
    } else {
        (
            replicas.min(1),
            replicas + 1,
            json!({"type": "Progressing", "status": "True", "lastUpdateTime": since, "lastTransitionTime": since,
            "reason": "ReplicaSetUpdated", "message": format!("ReplicaSet \"{rs}\" is progressing.")}),
        )
    };
    json!({"observedGeneration": generation, "replicas": total, "updatedReplicas": updated,
        "readyReplicas": replicas, "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "lastUpdateTime": since, "lastTransitionTime": since,
             "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
            progressing]})
}

fn replica_set(d: &Value, hash: &str, revision: u64, mut tpl: Value, replicas: u64) -> Value {
    let dname = d["metadata"]["name"].as_str().unwrap();
    let mut labels = d["spec"]["selector"]["matchLabels"].clone();
    labels[HASH] = json!(hash);
    tpl["metadata"]["labels"][HASH] = json!(hash);
    let mut sel = d["spec"]["selector"].clone();
    sel["matchLabels"][HASH] = json!(hash);
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("{dname}-{hash}"), "generation": 1, "labels": labels,
            "annotations": {REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": d["spec"]["replicas"].as_u64().unwrap_or(1).to_string(),
                "deployment.kubernetes.io/max-replicas": "3"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": dname,
                "uid": d["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": replicas, "selector": sel, "template": tpl},
        "status": {"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "observedGeneration": 1}})
}

fn pod(rs: &Value, name: &str, ip: &str, start: &str) -> Value {
    let tpl = &rs["spec"]["template"];
    let mut spec = tpl["spec"].clone();
    spec["nodeName"] = json!("node-1");
    spec["serviceAccountName"] = json!("default");
    spec["serviceAccount"] = json!("default");
    spec["priority"] = json!(0);
    spec["enableServiceLinks"] = json!(true);
    spec["preemptionPolicy"] = json!("PreemptLowerPriority");
    spec["tolerations"] = json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]);
    let statuses: Vec<Value> = spec["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let image = c["image"].as_str().unwrap_or("");
            json!({"name": c["name"], "ready": true, "started": true, "restartCount": 0,
                "image": format!("docker.io/library/{image}"),
                "imageID": format!("docker.io/library/{image}@sha256:{:064x}", fnv(image)),
                "containerID": format!("containerd://{:064x}", fnv(name)),
                "state": {"running": {"startedAt": start}}, "lastState": {}})
        })
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": start});
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "generateName": format!("{}-", rs["metadata"]["name"].as_str().unwrap()),
            "labels": tpl["metadata"]["labels"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"],
                "uid": rs["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
        "spec": spec,
        "status": {"phase": "Running", "hostIP": "192.168.49.2", "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": start, "qosClass": "BestEffort", "containerStatuses": statuses,
            "conditions": [cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")]}})
}

fn controller_uid(o: &Value) -> Value {
    o["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
        .map(|r| r["uid"].clone())
        .unwrap_or(Value::Null)
}

fn revision(rs: &Value) -> u64 {
    rs["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A pod template as the controllers compare it: without the hash label,
/// nulls and empty maps or lists (what a typed round trip drops).
fn tpl_key(tpl: &Value) -> Value {
    let mut t = tpl.clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove(HASH);
    }
    if let Some(m) = t["metadata"].as_object_mut() {
        m.remove("creationTimestamp");
    }
    prune(&t)
}

fn prune(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), prune(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(prune).collect()),
        _ => v.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// HTTP

fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    if let Some(d) = details {
        body["details"] = d;
    }
    json_response(StatusCode::from_u16(code).unwrap(), &body)
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, [("content-type", "application/json")], v.to_string()).into_response()
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

fn no_resource() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn not_found(r: &Res, name: &str) -> Response {
    let mut details = json!({"name": name, "kind": r.plural});
    if !r.group.is_empty() {
        details["group"] = json!(r.group);
    }
    status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", r.qualified()),
        Some(details),
    )
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

struct Req {
    method: Method,
    params: Vec<(String, String)>,
    accept: String,
    content_type: String,
    body: Bytes,
}

impl Req {
    fn param(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
            || serde_json::from_slice::<Value>(&self.body)
                .ok()
                .and_then(|b| b.get("dryRun").cloned())
                .is_some_and(|d| d.as_array().is_some_and(|a| a.iter().any(|x| x == "All")))
    }
    fn table(&self) -> bool {
        self.accept.contains("as=Table")
    }
}

async fn handle(
    State(s): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hdr = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    s.world.lock().unwrap().requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        accept: hdr("accept").unwrap_or_default(),
        content_type: hdr("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if hdr("authorization").as_deref() != Some(format!("Bearer {}", s.token).as_str()) {
        return status(401, "Unauthorized", "Unauthorized", None);
    }
    let segs: Vec<&str> = path.split('/').filter(|x| !x.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => {
            return json_response(
                StatusCode::OK,
                &json!({"major": "1", "minor": "20", "gitVersion": "v1.20.2",
                "gitCommit": "faecb196815e248d3ecfb03c680a4507229c2a56", "gitTreeState": "clean",
                "buildDate": "2021-01-13T13:20:00Z", "goVersion": "go1.15.5", "compiler": "gc", "platform": "linux/amd64"}),
            )
        }
        ["api"] => {
            return json_response(
                StatusCode::OK,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": uri.authority().map(|a| a.to_string()).unwrap_or_default()}]}),
            )
        }
        ["apis"] => {
            let gv = json!({"groupVersion": "apps/v1", "version": "v1"});
            return json_response(
                StatusCode::OK,
                &json!({"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{"name": "apps", "versions": [gv], "preferredVersion": gv}]}),
            );
        }
        ["api", "v1"] => return json_response(StatusCode::OK, &resource_list("")),
        ["apis", "apps", "v1"] => return json_response(StatusCode::OK, &resource_list("apps")),
        ["openapi", "v2"] => {
            return (
                StatusCode::OK,
                [("content-type", "application/octet-stream")],
                openapi_pb(),
            )
                .into_response()
        }
        _ => {}
    }
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", "apps", "v1", rest @ ..] if !rest.is_empty() => ("apps", rest),
        _ => return no_resource(),
    };
    let (ns, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => (
            Some(*ns),
            *plural,
            tail.first().copied(),
            tail.get(1).copied(),
        ),
        [plural, tail @ ..] if tail.len() <= 2 => {
            (None, *plural, tail.first().copied(), tail.get(1).copied())
        }
        _ => return no_resource(),
    };
    let Some(res) = RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
    else {
        return no_resource();
    };
    if !res.namespaced && ns.is_some() {
        return no_resource();
    }
    if let Some(sub) = sub {
        if !SUBRESOURCES.iter().any(|s| s.0 == plural && s.1 == sub) {
            return no_resource();
        }
    }
    {
        let mut w = s.world.lock().unwrap();
        if let Some((code, n)) = w.fail {
            w.fail = (n > 1).then_some((code, n - 1));
            if n > 0 {
                return status(
                    code,
                    reason_for(code),
                    "fake apiserver: injected failure",
                    None,
                );
            }
        }
    }
    let req = Req {
        method,
        params: parse_query(&query),
        accept: hdr("accept").unwrap_or_default(),
        content_type: hdr("content-type").unwrap_or_default(),
        body,
    };
    let ns = ns.unwrap_or("");
    if req.method == Method::GET
        && name.is_none()
        && req.param("watch").is_some_and(|w| w == "true" || w == "1")
    {
        return watch(s, res, ns, &req).await;
    }
    let mut w = s.world.lock().unwrap();
    match (&req.method, name, sub) {
        (&Method::GET, None, None) => list(&w, res, ns, &req),
        (&Method::GET, Some(name), None | Some("status")) => match w.get(res.plural, ns, name) {
            Some(o) if req.table() => json_response(
                StatusCode::OK,
                &table(res, std::slice::from_ref(o), &req, w.rv),
            ),
            Some(o) => json_response(StatusCode::OK, o),
            None => not_found(res, name),
        },
        (&Method::GET, Some(name), Some("log")) => logs(&w, res, ns, name, &req),
        (&Method::GET, Some(name), Some("scale")) => match w.get(res.plural, ns, name) {
            Some(o) => json_response(StatusCode::OK, &scale_of(o)),
            None => not_found(res, name),
        },
        (&Method::POST, None, None) => create(&mut w, res, ns, &req),
        (&Method::PUT | &Method::PATCH, Some(name), None | Some("scale") | Some("status")) => {
            write(&mut w, res, ns, name, sub, &req)
        }
        (&Method::DELETE, Some(name), None) => delete(&mut w, res, ns, name, &req),
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        ),
    }
}

// ---------------------------------------------------------------------------
// Reads

fn selected(o: &Value, req: &Req) -> bool {
    let labels = &o["metadata"]["labels"];
    let label_ok = req.param("labelSelector").is_none_or(|sel| {
        split_selector(sel).iter().all(|term| {
            let t = term.trim();
            if let Some(k) = t.strip_prefix('!') {
                return labels.get(k).is_none();
            }
            if let Some((k, set)) = t.split_once(" notin ") {
                let v = labels.get(k.trim()).and_then(Value::as_str);
                return v.is_none_or(|v| !set_members(set).contains(&v));
            }
            if let Some((k, set)) = t.split_once(" in ") {
                let v = labels.get(k.trim()).and_then(Value::as_str);
                return v.is_some_and(|v| set_members(set).contains(&v));
            }
            match split_op(t) {
                Some((k, true, v)) => labels.get(k).and_then(Value::as_str) == Some(v),
                Some((k, false, v)) => labels.get(k).and_then(Value::as_str) != Some(v),
                None => labels.get(t).is_some(),
            }
        })
    });
    let field_ok = req.param("fieldSelector").is_none_or(|sel| {
        sel.split(',')
            .filter(|t| !t.is_empty())
            .all(|t| match split_op(t) {
                Some((k, eq, v)) => {
                    let mut cur = o;
                    for part in k.split('.') {
                        cur = &cur[part];
                    }
                    let actual = match cur {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (actual == v) == eq
                }
                None => true,
            })
    });
    label_ok && field_ok
}

fn split_selector(sel: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0;
    for c in sel.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        out.last_mut().unwrap().push(c);
    }
    out.into_iter().filter(|t| !t.trim().is_empty()).collect()
}

fn set_members(set: &str) -> Vec<&str> {
    set.trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .collect()
}

/// `k=v`, `k==v` -> (k, true, v); `k!=v` -> (k, false, v).
fn split_op(t: &str) -> Option<(&str, bool, &str)> {
    if let Some((k, v)) = t.split_once("!=") {
        return Some((k.trim(), false, v.trim()));
    }
    if let Some((k, v)) = t.split_once("==") {
        return Some((k.trim(), true, v.trim()));
    }
    t.split_once('=').map(|(k, v)| (k.trim(), true, v.trim()))
}

fn list(w: &World, res: &Res, ns: &str, req: &Req) -> Response {
    let ns = (!ns.is_empty()).then_some(ns);
    let items: Vec<Value> = w
        .list(res.plural, ns)
        .into_iter()
        .filter(|o| selected(o, req))
        .collect();
    if req.table() {
        return json_response(StatusCode::OK, &table(res, &items, req, w.rv));
    }
    json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": w.rv.to_string()}, "items": items}),
    )
}

async fn watch(s: Arc<Inner>, res: &Res, ns: &str, req: &Req) -> Response {
    // A pending rollout of a watched deployment finishes now; the watch
    // reports it and ends (kubectl's reflector watches again if it wants).
    let targets: Vec<(String, String)> = {
        let w = s.world.lock().unwrap();
        if res.plural != "deployments" {
            Vec::new()
        } else {
            w.pending
                .iter()
                .filter(|(pns, pname)| {
                    (ns.is_empty() || ns == pns)
                        && w.get("deployments", pns, pname)
                            .is_some_and(|d| selected(d, req))
                })
                .cloned()
                .collect()
        }
    };
    let hold = req
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1)
        .min(1);
    let stream = async_stream::stream! {
        for (ns, name) in targets {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let done = s.world.lock().unwrap().complete_rollout(&ns, &name);
            if let Some(d) = done {
                yield Ok::<Bytes, std::io::Error>(Bytes::from(format!("{}\n", json!({"type": "MODIFIED", "object": d}))));
            }
        }
        tokio::time::sleep(Duration::from_secs(hold)).await;
    };
    Response::builder()
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn logs(w: &World, res: &Res, ns: &str, name: &str, req: &Req) -> Response {
    let Some(pod) = w.get(res.plural, ns, name) else {
        return not_found(res, name);
    };
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let container = match req.param("container") {
        Some(c) => c.to_string(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            return status(
                400,
                "BadRequest",
                &format!(
                "a container name must be specified for pod {name}, choose one of: {containers:?}"
            ),
                None,
            )
        }
    };
    if !containers.contains(&container) {
        return status(
            400,
            "BadRequest",
            &format!("container {container} is not valid for pod {name}"),
            None,
        );
    }
    let restarts = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container.as_str())
        .and_then(|c| c["restartCount"].as_u64())
        .unwrap_or(0);
    if req.param("previous") == Some("true") && restarts == 0 {
        return status(
            400,
            "BadRequest",
            &format!("previous terminated container \"{container}\" in pod \"{name}\" not found"),
            None,
        );
    }
    let lines = log_lines(pod, &container);
    let tail = req
        .param("tailLines")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(lines.len())
        .min(lines.len());
    let text: String = lines[lines.len() - tail..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    (StatusCode::OK, [("content-type", "text/plain")], text).into_response()
}

/// The fixed log of a container: 60 lines, so `--tail` visibly cuts it.
pub fn log_lines(pod: &Value, container: &str) -> Vec<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let image = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container)
        .and_then(|c| c["image"].as_str())
        .unwrap_or("");
    let mut lines = vec![
        format!("{container}: starting {image} in pod {name}"),
        format!("{container}: configuration complete; ready for start up"),
    ];
    for i in 1..=57 {
        lines.push(format!(
            "10.244.0.1 - - \"GET /item/{i} HTTP/1.1\" 200 615 \"-\" \"kube-probe/1.20\""
        ));
    }
    lines.push(format!("{container}: last line of {name}"));
    lines
}

fn scale_of(o: &Value) -> Value {
    let m = &o["metadata"];
    let selector: Vec<String> = o["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": o["spec"]["replicas"]},
        "status": {"replicas": o["status"]["replicas"], "selector": selector.join(",")}})
}

// ---------------------------------------------------------------------------
// Writes

/// The JSON body, or the 400 the apiserver answers for another.
fn body_json(req: &Req) -> Result<Value, Box<Response>> {
    serde_json::from_slice(&req.body).map_err(|e| {
        Box::new(status(
            400,
            "BadRequest",
            &format!("the body of the request was in an unknown format: {e}"),
            None,
        ))
    })
}

fn create(w: &mut World, res: &Res, ns: &str, req: &Req) -> Response {
    let mut obj = match body_json(req) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    if obj["kind"] != res.kind {
        return status(
            400,
            "BadRequest",
            &format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                obj["apiVersion"],
                res.api_version()
            ),
            None,
        );
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let mut name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        match obj["metadata"]["generateName"].as_str() {
            Some(g) => name = format!("{g}{}", w.suffix()),
            None => return status(422, "Invalid", &format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", res.kind), None),
        }
        obj["metadata"]["name"] = json!(name);
    }
    if res.namespaced && w.get("namespaces", "", ns).is_none() {
        return status(
            404,
            "NotFound",
            &format!("namespaces \"{ns}\" not found"),
            Some(json!({"name": ns, "kind": "namespaces"})),
        );
    }
    if w.get(res.plural, ns, &name).is_some() {
        let mut details = json!({"name": name, "kind": res.plural});
        if !res.group.is_empty() {
            details["group"] = json!(res.group);
        }
        return status(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", res.qualified()),
            Some(details),
        );
    }
    obj["apiVersion"] = json!(res.api_version());
    if res.plural == "deployments" {
        obj["spec"] = deployment_spec_defaults(obj["spec"].take());
        obj["metadata"]["generation"] = json!(1);
        let replicas = obj["spec"]["replicas"].as_u64().unwrap_or(1);
        obj["status"] = deployment_status(1, replicas, true, "", "");
    }
    if req.dry_run() {
        let ts = w.now_ts();
        let m = obj["metadata"].as_object_mut().unwrap();
        m.insert(
            "uid".into(),
            json!(format!("{:08x}-0000-4000-8000-000000000000", fnv(&name))),
        );
        m.insert("creationTimestamp".into(), json!(ts));
        if !ns.is_empty() {
            m.insert("namespace".into(), json!(ns));
        }
        return json_response(StatusCode::CREATED, &obj);
    }
    w.new_meta(&mut obj, ns, 0);
    w.put(res.plural, ns, obj);
    if res.plural == "deployments" {
        w.reconcile(ns, &name);
    }
    json_response(StatusCode::CREATED, w.get(res.plural, ns, &name).unwrap())
}

fn write(w: &mut World, res: &Res, ns: &str, name: &str, sub: Option<&str>, req: &Req) -> Response {
    let Some(old) = w.get(res.plural, ns, name).cloned() else {
        return not_found(res, name);
    };
    let body = match body_json(req) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let scale = sub == Some("scale");
    let current = if scale { scale_of(&old) } else { old.clone() };
    let mut new = if req.method == Method::PUT {
        let want = body["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if !want.is_empty()
            && want
                != current["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
        {
            return status(409, "Conflict", &format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", res.qualified()), None);
        }
        body
    } else {
        let ct = req.content_type.split(';').next().unwrap_or("").trim();
        let mut target = current.clone();
        let patched = match ct {
            "application/strategic-merge-patch+json" => {
                strategic_merge(&mut target, &body);
                Ok(())
            }
            "application/merge-patch+json" => {
                merge_patch(&mut target, &body);
                Ok(())
            }
            "application/json-patch+json" => json_patch(&mut target, &body),
            other => {
                return status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"), None)
            }
        };
        if let Err(e) = patched {
            return status(
                422,
                "Invalid",
                &format!("the server rejected our request due to an error in our request: {e}"),
                None,
            );
        }
        target
    };
    // What a write may not change.
    let obj = if scale {
        let mut o = old.clone();
        o["spec"]["replicas"] = new["spec"]["replicas"].clone();
        o
    } else {
        for k in ["name", "namespace", "uid", "creationTimestamp"] {
            new["metadata"][k] = old["metadata"][k].clone();
        }
        if sub != Some("status") {
            new["status"] = old["status"].clone();
        }
        new
    };
    let mut obj = obj;
    if res.plural == "deployments" || res.plural == "replicasets" {
        if prune(&obj["spec"]) != prune(&old["spec"]) {
            let g = old["metadata"]["generation"].as_u64().unwrap_or(1) + 1;
            obj["metadata"]["generation"] = json!(g);
        }
        if res.plural == "deployments" {
            obj["spec"] = deployment_spec_defaults(obj["spec"].take());
        }
    }
    let answer =
        |o: &Value| json_response(StatusCode::OK, &if scale { scale_of(o) } else { o.clone() });
    if req.dry_run() {
        return answer(&obj);
    }
    obj["metadata"]["resourceVersion"] = json!(w.next_rv());
    w.put(res.plural, ns, obj);
    if res.plural == "deployments" {
        w.reconcile(ns, name);
    }
    answer(w.get(res.plural, ns, name).unwrap())
}

fn delete(w: &mut World, res: &Res, ns: &str, name: &str, req: &Req) -> Response {
    let Some(mut obj) = w.get(res.plural, ns, name).cloned() else {
        return not_found(res, name);
    };
    obj["metadata"]["deletionTimestamp"] = json!(w.now_ts());
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    if req.dry_run() {
        return json_response(StatusCode::OK, &obj);
    }
    w.remove(res.plural, ns, name);
    let uid = obj["metadata"]["uid"].clone();
    match res.plural {
        "deployments" => {
            for rs in w
                .list("replicasets", Some(ns))
                .into_iter()
                .filter(|rs| controller_uid(rs) == uid)
            {
                let rs_uid = rs["metadata"]["uid"].clone();
                w.remove("replicasets", ns, rs["metadata"]["name"].as_str().unwrap());
                for p in w
                    .list("pods", Some(ns))
                    .into_iter()
                    .filter(|p| controller_uid(p) == rs_uid)
                {
                    w.remove("pods", ns, p["metadata"]["name"].as_str().unwrap());
                }
            }
            w.pending.remove(&(ns.to_string(), name.to_string()));
        }
        "pods" => {
            // Its replica set replaces it, as the real controller would.
            let owner = w
                .list("replicasets", Some(ns))
                .into_iter()
                .find(|rs| rs["metadata"]["uid"] == controller_uid(&obj));
            if let Some(rs) = owner {
                let d = w
                    .list("deployments", Some(ns))
                    .into_iter()
                    .find(|d| d["metadata"]["uid"] == controller_uid(&rs));
                if let Some(d) = d {
                    w.reconcile(ns, d["metadata"]["name"].as_str().unwrap());
                }
            }
        }
        "namespaces" => {
            let doomed: Vec<_> = w
                .objects
                .keys()
                .filter(|(_, n, _)| n == name)
                .cloned()
                .collect();
            for k in doomed {
                w.objects.remove(&k);
            }
        }
        _ => {}
    }
    w.rv += 1;
    json_response(StatusCode::OK, &obj)
}

/// Kubernetes' strategic merge patch, the parts kubectl sends: maps merge,
/// `null` deletes, lists of named things merge by their key, `$patch`,
/// `$retainKeys` and `$deleteFromPrimitiveList/` directives,
/// `$setElementOrder/` ignored.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut v = patch.clone();
        v.as_object_mut().unwrap().remove("$patch");
        *target = v;
        return;
    }
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(del)) = (t.get_mut(list), v.as_array()) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(o) if o.get("$patch").and_then(Value::as_str) == Some("delete") => {
                t.remove(k);
            }
            Value::Object(_) => strategic_merge(t.entry(k.clone()).or_insert(json!({})), v),
            Value::Array(items) => match merge_key(k, items) {
                Some(mk) => {
                    let cur = t.entry(k.clone()).or_insert(json!([]));
                    if !cur.is_array() {
                        *cur = json!([]);
                    }
                    let cur = cur.as_array_mut().unwrap();
                    for item in items {
                        let key = &item[mk];
                        let pos = cur.iter().position(|c| &c[mk] == key);
                        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                            if let Some(i) = pos {
                                cur.remove(i);
                            }
                            continue;
                        }
                        match pos {
                            Some(i) => strategic_merge(&mut cur[i], item),
                            None => {
                                let mut fresh = json!({});
                                strategic_merge(&mut fresh, item);
                                cur.push(fresh);
                            }
                        }
                    }
                }
                None => {
                    t.insert(k.clone(), v.clone());
                }
            },
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        t.retain(|k, _| keep.iter().any(|x| x == k));
    }
}

/// The patch merge key of list `field` (from the Kubernetes types' tags).
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// RFC 6902 JSON patch: add, remove, replace, test.
fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    for op in patch.as_array().ok_or("a JSON patch must be a list")? {
        let path = op["path"].as_str().ok_or("a JSON patch op needs a path")?;
        let (parent_path, last) = path.rsplit_once('/').ok_or("bad JSON pointer")?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let value = op["value"].clone();
        match op["op"].as_str().unwrap_or("") {
            "test" => {
                if target.pointer(path) != Some(&value) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            kind @ ("add" | "replace" | "remove") => {
                let parent = target
                    .pointer_mut(parent_path)
                    .ok_or_else(|| format!("doc is missing path: {path}"))?;
                match parent {
                    Value::Object(m) => {
                        if kind == "remove" {
                            m.remove(&last)
                                .ok_or_else(|| format!("doc is missing path: {path}"))?;
                        } else {
                            if kind == "replace" && !m.contains_key(&last) {
                                return Err(format!("doc is missing key: {path}"));
                            }
                            m.insert(last, value);
                        }
                    }
                    Value::Array(a) => {
                        let i = if last == "-" {
                            a.len()
                        } else {
                            last.parse::<usize>().map_err(|e| e.to_string())?
                        };
                        match kind {
                            "add" if i <= a.len() => a.insert(i, value),
                            "replace" if i < a.len() => a[i] = value,
                            "remove" if i < a.len() => {
                                a.remove(i);
                            }
                            _ => return Err(format!("index out of range: {path}")),
                        }
                    }
                    _ => return Err(format!("doc is missing path: {path}")),
                }
            }
            other => return Err(format!("unsupported JSON patch op {other:?}")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tables (what `kubectl get` prints, computed server-side as the real
// apiserver does)

/// A table column: name, type, priority (1: only with `-o wide`).
type Column = (&'static str, &'static str, u8);
/// A row's cells from its object.
type Cells<'a> = Box<dyn Fn(&Value) -> Vec<Value> + 'a>;

fn table(res: &Res, items: &[Value], req: &Req, rv: u64) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let age = |o: &Value, f: &str| {
        o.pointer(f)
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .map(|t| human_duration(now.saturating_sub(t)))
            .unwrap_or_else(|| "<unknown>".into())
    };
    let created = |o: &Value| age(o, "/metadata/creationTimestamp");
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let joined = |o: &Value, f: &str| {
        o.pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| s(&c[f]))
            .collect::<Vec<_>>()
            .join(",")
    };
    let selector = |m: &Value| {
        let v: Vec<String> = m
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", s(v)))
            .collect();
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.join(",")
        }
    };
    // (name, type, priority)
    let (cols, cells): (Vec<Column>, Cells) = match res.plural {
        "pods" => (
            vec![
                ("Name", "string", 0),
                ("Ready", "string", 0),
                ("Status", "string", 0),
                ("Restarts", "integer", 0),
                ("Age", "string", 0),
                ("IP", "string", 1),
                ("Node", "string", 1),
                ("Nominated Node", "string", 1),
                ("Readiness Gates", "string", 1),
            ],
            Box::new(move |o| {
                let st = o["status"]["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let ready = st.iter().filter(|c| c["ready"] == true).count();
                let restarts: u64 = st.iter().map(|c| n(&c["restartCount"])).sum();
                let phase = if o["metadata"]["deletionTimestamp"].is_string() {
                    "Terminating".into()
                } else {
                    s(&o["status"]["phase"])
                };
                vec![
                    json!(o["metadata"]["name"]),
                    json!(format!("{ready}/{}", st.len())),
                    json!(phase),
                    json!(restarts),
                    json!(created(o)),
                    json!(o["status"]["podIP"].as_str().unwrap_or("<none>")),
                    json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                    json!("<none>"),
                    json!("<none>"),
                ]
            }),
        ),
        "deployments" => (
            vec![
                ("Name", "string", 0),
                ("Ready", "string", 0),
                ("Up-to-date", "string", 0),
                ("Available", "string", 0),
                ("Age", "string", 0),
                ("Containers", "string", 1),
                ("Images", "string", 1),
                ("Selector", "string", 1),
            ],
            Box::new(move |o| {
                vec![
                    json!(o["metadata"]["name"]),
                    json!(format!(
                        "{}/{}",
                        n(&o["status"]["readyReplicas"]),
                        n(&o["spec"]["replicas"])
                    )),
                    json!(n(&o["status"]["updatedReplicas"])),
                    json!(n(&o["status"]["availableReplicas"])),
                    json!(created(o)),
                    json!(joined(o, "name")),
                    json!(joined(o, "image")),
                    json!(selector(&o["spec"]["selector"]["matchLabels"])),
                ]
            }),
        ),
        "replicasets" => (
            vec![
                ("Name", "string", 0),
                ("Desired", "integer", 0),
                ("Current", "integer", 0),
                ("Ready", "integer", 0),
                ("Age", "string", 0),
                ("Containers", "string", 1),
                ("Images", "string", 1),
                ("Selector", "string", 1),
            ],
            Box::new(move |o| {
                vec![
                    json!(o["metadata"]["name"]),
                    json!(n(&o["spec"]["replicas"])),
                    json!(n(&o["status"]["replicas"])),
                    json!(n(&o["status"]["readyReplicas"])),
                    json!(created(o)),
                    json!(joined(o, "name")),
                    json!(joined(o, "image")),
                    json!(selector(&o["spec"]["selector"]["matchLabels"])),
                ]
            }),
        ),
        "services" => (
            vec![
                ("Name", "string", 0),
                ("Type", "string", 0),
                ("Cluster-IP", "string", 0),
                ("External-IP", "string", 0),
                ("Port(s)", "string", 0),
                ("Age", "string", 0),
                ("Selector", "string", 1),
            ],
            Box::new(move |o| {
                let ports: Vec<String> = o["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                    .collect();
                vec![
                    json!(o["metadata"]["name"]),
                    json!(o["spec"]["type"]),
                    json!(o["spec"]["clusterIP"]),
                    json!("<none>"),
                    json!(ports.join(",")),
                    json!(created(o)),
                    json!(selector(&o["spec"]["selector"])),
                ]
            }),
        ),
        "events" => (
            vec![
                ("Last Seen", "string", 0),
                ("Type", "string", 0),
                ("Reason", "string", 0),
                ("Object", "string", 0),
                ("Subobject", "string", 1),
                ("Source", "string", 1),
                ("Message", "string", 0),
                ("First Seen", "string", 1),
                ("Count", "string", 1),
                ("Name", "string", 1),
            ],
            Box::new(move |o| {
                let io = &o["involvedObject"];
                let src = match o["source"]["host"].as_str() {
                    Some(h) => format!("{}, {h}", s(&o["source"]["component"])),
                    None => s(&o["source"]["component"]),
                };
                vec![
                    json!(age(o, "/lastTimestamp")),
                    json!(o["type"]),
                    json!(o["reason"]),
                    json!(format!(
                        "{}/{}",
                        s(&io["kind"]).to_lowercase(),
                        s(&io["name"])
                    )),
                    json!(s(&io["fieldPath"])),
                    json!(src),
                    json!(o["message"]),
                    json!(age(o, "/firstTimestamp")),
                    json!(n(&o["count"])),
                    json!(o["metadata"]["name"]),
                ]
            }),
        ),
        "namespaces" => (
            vec![
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Age", "string", 0),
            ],
            Box::new(move |o| {
                vec![
                    json!(o["metadata"]["name"]),
                    json!(o["status"]["phase"]),
                    json!(created(o)),
                ]
            }),
        ),
        "configmaps" => (
            vec![
                ("Name", "string", 0),
                ("Data", "integer", 0),
                ("Age", "string", 0),
            ],
            Box::new(move |o| {
                let data = o["data"].as_object().map_or(0, |m| m.len())
                    + o["binaryData"].as_object().map_or(0, |m| m.len());
                vec![json!(o["metadata"]["name"]), json!(data), json!(created(o))]
            }),
        ),
        _ => (
            vec![("Name", "string", 0), ("Age", "string", 0)],
            Box::new(move |o| vec![json!(o["metadata"]["name"]), json!(created(o))]),
        ),
    };
    let defs: Vec<Value> = cols
        .iter()
        .map(|(name, ty, prio)| {
            json!({"name": name, "type": ty, "format": if *name == "Name" { "name" } else { "" },
                "description": format!("{name} of the {}", res.singular), "priority": prio})
        })
        .collect();
    let include = req.param("includeObject").unwrap_or("Metadata");
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(o)});
            match include {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]})
                }
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": defs, "rows": rows})
}

/// Kubernetes' `duration.HumanDuration`, which AGE and LAST SEEN use.
fn human_duration(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            mm => format!("{h}h{mm}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        match h % 24 {
            0 => format!("{d}d"),
            hh => format!("{d}d{hh}h"),
        }
    } else if d < 730 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn days_to_civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn civil_to_days(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn rfc3339(secs: u64) -> String {
    let (y, mo, d) = days_to_civil((secs / 86400) as i64);
    let t = secs % 86400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (dp.next()??, dp.next()??, dp.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['.', '+']).next()?;
    let mut tp = time.split(':').map(|x| x.parse::<u64>().ok());
    let (h, mi, se) = (tp.next()??, tp.next()??, tp.next()??);
    let days = civil_to_days(y, mo as u32, d as u32);
    Some(days as u64 * 86400 + h * 3600 + mi * 60 + se)
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `n` characters of Kubernetes' safe alphabet (no vowels), from `h`.
fn alnum(h: u32, n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = u64::from(h) | (u64::from(h.rotate_left(13)) << 32);
    (0..n)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

// ---------------------------------------------------------------------------
// /openapi/v2: kubectl 1.20 fetches it as protobuf (gnostic's
// openapi_v2.Document) to validate manifests and to check that a kind
// supports server dry run (a PATCH operation with the kind's
// x-kubernetes-group-version-kind and a `dryRun` query parameter). No
// definitions: validation then skips every kind.

fn pb_varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn pb_bytes(field: u64, data: &[u8], out: &mut Vec<u8>) {
    pb_varint(field << 3 | 2, out);
    pb_varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn pb_msg(fields: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (f, d) in fields {
        pb_bytes(*f, d, &mut out);
    }
    out
}

fn openapi_pb() -> Vec<u8> {
    let mut paths = Vec::new();
    for r in RESOURCES {
        let prefix = if r.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/v1", r.group)
        };
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        // QueryParameterSubSchema{in=2, name=4, type=6} in NonBodyParameter(3)
        // in Parameter(2) in ParametersItem(1).
        let query = pb_msg(&[
            (2, b"query".to_vec()),
            (4, b"dryRun".to_vec()),
            (6, b"string".to_vec()),
        ]);
        let param = pb_msg(&[(1, pb_msg(&[(2, pb_msg(&[(3, query)]))]))]);
        // NamedAny{name=1, value=2: Any{yaml=2}}
        let gvk = format!("group: \"{}\"\nkind: {}\nversion: v1\n", r.group, r.kind);
        let ext = pb_msg(&[
            (1, b"x-kubernetes-group-version-kind".to_vec()),
            (2, pb_msg(&[(2, gvk.into_bytes())])),
        ]);
        // Operation{operation_id=5, parameters=8, vendor_extension=13}
        let op = pb_msg(&[
            (5, format!("patch{}", r.kind).into_bytes()),
            (8, param),
            (13, ext),
        ]);
        // PathItem{patch=8} in NamedPathItem{name=1, value=2}
        paths.push((
            2,
            pb_msg(&[(1, path.into_bytes()), (2, pb_msg(&[(8, op)]))]),
        ));
    }
    pb_msg(&[
        (1, b"2.0".to_vec()),
        (
            2,
            pb_msg(&[(1, b"Kubernetes".to_vec()), (2, b"v1.20.2".to_vec())]),
        ),
        (8, pb_msg(&paths)),
    ])
}
