//! Bearer-token authentication for every endpoint but health and metrics.
//!
//! Tokens are never compared as strings: each configured token is stored as
//! its SHA-256 digest and a presented token is hashed and looked up, then the
//! digests are compared in constant time. Timing therefore reveals nothing
//! about any secret's prefix, however many keys there are.

use crate::error::ApiError;
use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

/// SHA-256 of a token: what is kept in memory instead of the token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Digest of a plain token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Parses a hex digest, for key files that store hashes, not secrets.
    pub fn from_hex(hex_digest: &str) -> Option<Self> {
        let bytes = hex::decode(hex_digest.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

/// Who a valid token belongs to, in whatever shape a daemon needs.
#[derive(Clone)]
pub struct KeyTable<P> {
    by_digest: HashMap<TokenDigest, P>,
    anonymous: Option<P>,
}

impl<P: Clone> KeyTable<P> {
    /// An empty table: every request is refused until keys are added.
    pub fn new() -> Self {
        Self {
            by_digest: HashMap::new(),
            anonymous: None,
        }
    }

    /// Adds a key; returns false if the same token was already present.
    pub fn insert(&mut self, digest: TokenDigest, principal: P) -> bool {
        self.by_digest.insert(digest, principal).is_none()
    }

    /// Lets requests without an `Authorization` header in, as `principal`
    /// (for loopback-only development setups; a wrong token is still refused).
    pub fn allow_anonymous(&mut self, principal: P) {
        self.anonymous = Some(principal);
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The principal for a presented token, if any.
    pub fn lookup(&self, token: &str) -> Option<&P> {
        let presented = TokenDigest::of(token);
        let (stored, principal) = self.by_digest.get_key_value(&presented)?;
        bool::from(stored.0.ct_eq(&presented.0)).then_some(principal)
    }

    /// Resolves the request's credentials, or says what is wrong with them.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<P, ApiError> {
        let Some(value) = authorization else {
            return self.anonymous.clone().ok_or_else(|| {
                ApiError::unauthorized(
                    "missing API key: send `Authorization: Bearer <key>` (keys are listed in the daemon's keys file)",
                )
            });
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("malformed Authorization header: expected `Bearer <key>`")
            })?;
        self.lookup(token)
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("invalid API key: it matches no configured key"))
    }
}

impl<P> std::fmt::Debug for KeyTable<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyTable")
            .field("keys", &self.by_digest.len())
            .field("anonymous", &self.anonymous.is_some())
            .finish()
    }
}

impl<P: Clone> Default for KeyTable<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// The key table in force, replaceable while serving (a reload on SIGHUP
/// rotates keys without dropping connections); each request takes a cheap
/// `Arc` of the table current when it arrived.
pub struct KeyRing<P> {
    current: RwLock<Arc<KeyTable<P>>>,
}

impl<P> KeyRing<P> {
    /// A ring holding `table`.
    pub fn new(table: KeyTable<P>) -> Self {
        Self {
            current: RwLock::new(Arc::new(table)),
        }
    }

    /// The table in force now.
    pub fn current(&self) -> Arc<KeyTable<P>> {
        crate::sync::read(&self.current).clone()
    }

    /// Puts `table` in force for the requests that arrive from now on.
    pub fn replace(&self, table: KeyTable<P>) {
        *crate::sync::write(&self.current) = Arc::new(table);
    }

    /// The SIGHUP hook of every daemon: puts what `load` reads in force, or,
    /// when it fails, keeps the table in force (a typo in a file must never
    /// lock every client out), and logs which, naming the keys `what`
    /// ("keys", "auth tokens"). Returns the number of keys now in force.
    pub fn reload_logged<E: std::fmt::Display>(
        &self,
        what: &str,
        load: impl FnOnce() -> Result<KeyTable<P>, E>,
    ) -> usize
    where
        P: Clone,
    {
        match load() {
            Ok(table) => {
                let n = table.len();
                self.replace(table);
                tracing::info!(count = n, "{what} reloaded");
                n
            }
            Err(e) => {
                tracing::error!(error = %e, "{what} not reloaded; keeping the {what} in force");
                self.current().len()
            }
        }
    }
}

/// What a caller may do. Ordered: each role includes the ones before it
/// (an approver may also request; an admin may do everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads status and results.
    Reader,
    /// Asks for work (an agent job, an MCP tool call).
    Requester,
    /// Approves or denies what others asked for.
    Approver,
    /// Everything, including configuration-changing endpoints.
    Admin,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Reader => "reader",
            Role::Requester => "requester",
            Role::Approver => "approver",
            Role::Admin => "admin",
        })
    }
}

/// Who a token from `[auth]` belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// A name for logs and audit records (never the token).
    pub name: String,
    /// What the caller may do.
    pub role: Role,
    /// The named resources (MCP servers, say) the caller may use; `None`
    /// means all of them.
    pub scopes: Option<Vec<String>>,
}

impl Principal {
    /// Ok when the caller has at least `role`; a 403 naming both roles otherwise.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "insufficient_role",
            format!(
                "`{}` has role {}, and this needs {role}; use a token whose [[auth.tokens]] entry has role = \"{role}\"",
                self.name, self.role
            ),
        ))
    }

    /// Ok when the caller's scopes include `scope`; a 403 naming it otherwise.
    pub fn require_scope(&self, scope: &str) -> Result<(), ApiError> {
        match &self.scopes {
            Some(s) if !s.iter().any(|x| x == scope) => Err(ApiError::forbidden(
                "out_of_scope",
                format!(
                    "`{}` may not use `{scope}`; its scopes are [{}]",
                    self.name,
                    s.join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// One named token in `[[auth.tokens]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The file holding the token (relative: under `$CREDENTIALS_DIRECTORY`).
    pub file: PathBuf,
    /// Name in logs and audit records; defaults to the file's name.
    #[serde(default)]
    pub name: Option<String>,
    /// What its holder may do.
    pub role: Role,
    /// What its holder may use (MCP server names, say); all when absent.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// The `[auth]` section every daemon shares: bearer tokens from files
/// (systemd `LoadCredential`), never from the TOML itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Files each holding one token whose holder is an admin.
    pub token_files: Vec<PathBuf>,
    /// Tokens with a name, a role and scopes.
    pub tokens: Vec<TokenEntry>,
}

impl AuthConfig {
    /// The key table from the files: every file read now. With no token
    /// configured, requests without a token are let in as `anonymous` when
    /// it is `Some` (a loopback default for read-mostly daemons) and
    /// refused when it is `None`.
    pub fn key_table(
        &self,
        anonymous: Option<Role>,
    ) -> Result<KeyTable<Principal>, crate::secret::SecretError> {
        let mut table = KeyTable::new();
        let entries = self
            .token_files
            .iter()
            .map(|f| (f, None, Role::Admin, None))
            .chain(
                self.tokens
                    .iter()
                    .map(|t| (&t.file, t.name.clone(), t.role, t.scopes.clone())),
            );
        for (file, name, role, scopes) in entries {
            let secret = crate::secret::read_secret(file)?;
            let name = name.unwrap_or_else(|| {
                file.file_name().map_or_else(
                    || file.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
            });
            table.insert(
                TokenDigest::of(secret.expose()),
                Principal { name, role, scopes },
            );
        }
        if table.is_empty() {
            if let Some(role) = anonymous {
                table.allow_anonymous(Principal {
                    name: "anonymous".into(),
                    role,
                    scopes: None,
                });
            }
        }
        Ok(table)
    }
}

/// A daemon's `[auth]` in force: the ring its [`RequireBearer`] reads and the
/// config to re-read on SIGHUP, so every daemon rotates tokens the same way.
pub struct TokenAuth {
    config: AuthConfig,
    anonymous: Option<Role>,
    ring: Arc<KeyRing<Principal>>,
}

impl TokenAuth {
    /// Reads every token file now (a missing one stops the start, naming it).
    pub fn load(
        config: &AuthConfig,
        anonymous: Option<Role>,
    ) -> Result<Arc<Self>, crate::secret::SecretError> {
        let table = config.key_table(anonymous)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            anonymous,
            ring: Arc::new(KeyRing::new(table)),
        }))
    }

    /// `api` behind bearer auth; handlers take `Extension<Principal>`.
    pub fn protect(&self, api: axum::Router) -> axum::Router {
        api.layer(RequireBearer::new(self.ring.clone()))
    }

    /// Re-reads the token files; a file that can't be read is refused and
    /// the tokens in force stay. Returns the number of tokens now in force.
    pub fn reload(&self) -> Result<usize, crate::secret::SecretError> {
        let table = self.config.key_table(self.anonymous)?;
        let n = table.len();
        self.ring.replace(table);
        Ok(n)
    }

    /// [`TokenAuth::reload`] with the outcome logged: the SIGHUP hook.
    pub fn reload_logged(&self) {
        self.ring
            .reload_logged("auth tokens", || self.config.key_table(self.anonymous));
    }
}

/// Bearer auth in front of a router (`Router::layer`): authenticates each
/// request against the ring's current table and puts the principal into
/// its extensions for handlers to take, or answers 401 itself. A tower
/// layer rather than an axum `from_fn` middleware, which boxes a future and
/// clones the service behind it on every request (docs/benchmarks.md).
pub struct RequireBearer<P> {
    ring: Arc<KeyRing<P>>,
}

impl<P> RequireBearer<P> {
    /// The layer for the tokens in `ring`.
    pub fn new(ring: Arc<KeyRing<P>>) -> Self {
        Self { ring }
    }
}

impl<P> Clone for RequireBearer<P> {
    fn clone(&self) -> Self {
        Self {
            ring: self.ring.clone(),
        }
    }
}

impl<S, P> Layer<S> for RequireBearer<P> {
    type Service = Bearer<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Bearer {
            inner,
            ring: self.ring.clone(),
        }
    }
}

/// The service [`RequireBearer`] wraps a route in.
pub struct Bearer<S, P> {
    inner: S,
    ring: Arc<KeyRing<P>>,
}

impl<S: Clone, P> Clone for Bearer<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ring: self.ring.clone(),
        }
    }
}

impl<S, P> Service<Request> for Bearer<S, P>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    P: Clone + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let table = self.ring.current();
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        match table.authenticate(header) {
            Ok(principal) => {
                req.extensions_mut().insert(principal);
                Either::Right(self.inner.call(req))
            }
            Err(e) => Either::Left(ready(Ok(e.into_response()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> KeyTable<&'static str> {
        let mut t = KeyTable::new();
        t.insert(TokenDigest::of("sk-alice"), "alice");
        t.insert(
            TokenDigest::from_hex(&hex::encode(Sha256::digest(b"sk-bob"))).unwrap(),
            "bob",
        );
        t
    }

    #[test]
    fn accepts_plain_and_hashed_keys() {
        let t = table();
        assert_eq!(t.authenticate(Some("Bearer sk-alice")).unwrap(), "alice");
        assert_eq!(t.authenticate(Some("Bearer sk-bob")).unwrap(), "bob");
    }

    #[test]
    fn refuses_missing_malformed_and_wrong() {
        let t = table();
        assert!(t
            .authenticate(None)
            .unwrap_err()
            .message
            .contains("missing API key"));
        assert!(t
            .authenticate(Some("sk-alice"))
            .unwrap_err()
            .message
            .contains("malformed"));
        assert!(t
            .authenticate(Some("Bearer sk-eve"))
            .unwrap_err()
            .message
            .contains("invalid"));
    }

    fn write_token(dir: &std::path::Path, name: &str, token: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("{token}\n")).unwrap();
        p
    }

    #[test]
    fn auth_config_names_roles_and_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuthConfig {
            token_files: vec![write_token(dir.path(), "ops-admin", "sk-admin")],
            tokens: vec![TokenEntry {
                file: write_token(dir.path(), "t2", "sk-webui"),
                name: Some("open-webui".into()),
                role: Role::Requester,
                scopes: Some(vec!["git".into()]),
            }],
        };
        let t = cfg.key_table(Some(Role::Reader)).unwrap();
        let admin = t.authenticate(Some("Bearer sk-admin")).unwrap();
        assert_eq!(
            (admin.name.as_str(), admin.role),
            ("ops-admin", Role::Admin)
        );
        let webui = t.authenticate(Some("Bearer sk-webui")).unwrap();
        assert!(webui.require(Role::Requester).is_ok());
        let e = webui.require(Role::Approver).unwrap_err();
        assert_eq!(e.status, 403);
        assert!(
            e.message
                .contains("role requester, and this needs approver"),
            "{}",
            e.message
        );
        assert!(webui.require_scope("git").is_ok());
        assert!(webui
            .require_scope("filesystem")
            .unwrap_err()
            .message
            .contains("[git]"));
        assert!(
            t.authenticate(None).is_err(),
            "tokens configured: no anonymous"
        );
    }

    #[test]
    fn no_tokens_means_anonymous_only_when_asked() {
        let cfg = AuthConfig::default();
        let open = cfg.key_table(Some(Role::Admin)).unwrap();
        assert_eq!(open.authenticate(None).unwrap().name, "anonymous");
        let closed = cfg.key_table(None).unwrap();
        assert!(closed.authenticate(None).is_err());
        let missing = AuthConfig {
            token_files: vec!["/nonexistent/token".into()],
            tokens: vec![],
        };
        let e = missing.key_table(None).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/token"), "{e}");
    }

    #[test]
    fn reload_keeps_the_tokens_in_force_when_a_file_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let f = write_token(dir.path(), "a", "sk-one");
        let auth = TokenAuth::load(
            &AuthConfig {
                token_files: vec![f.clone()],
                tokens: vec![],
            },
            None,
        )
        .unwrap();
        write_token(dir.path(), "a", "sk-two");
        assert_eq!(auth.reload().unwrap(), 1);
        assert!(auth.ring.current().lookup("sk-two").is_some());
        std::fs::remove_file(&f).unwrap();
        assert!(auth.reload().is_err());
        assert!(auth.ring.current().lookup("sk-two").is_some());
    }

    #[test]
    fn anonymous_only_without_header() {
        let mut t = table();
        t.allow_anonymous("anon");
        assert_eq!(t.authenticate(None).unwrap(), "anon");
        assert!(t.authenticate(Some("Bearer wrong")).is_err());
    }
}
