//! Bearer-token authentication for every endpoint but health and metrics.
//!
//! Tokens are never compared as strings: each configured token is stored as
//! its SHA-256 digest and a presented token is hashed and looked up, then the
//! digests are compared in constant time. Timing therefore reveals nothing
//! about any secret's prefix, however many keys there are.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use subtle::ConstantTimeEq;

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
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `table` in force for the requests that arrive from now on.
    pub fn replace(&self, table: KeyTable<P>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }
}

/// Bearer tokens from files (one token per file, relative paths under
/// `$CREDENTIALS_DIRECTORY`) for daemons whose callers are all equal; with
/// no files, requests without a token are let in (a loopback default).
pub fn token_table(files: &[PathBuf]) -> Result<KeyTable<()>, crate::secret::SecretError> {
    let mut table = KeyTable::new();
    for f in files {
        table.insert(TokenDigest::of(crate::secret::read_secret(f)?.expose()), ());
    }
    if table.is_empty() {
        table.allow_anonymous(());
    }
    Ok(table)
}

/// axum middleware: authenticates against the ring's current table and
/// puts the principal into the request's extensions for handlers to take.
pub async fn require_bearer<P>(
    State(ring): State<Arc<KeyRing<P>>>,
    mut req: Request,
    next: Next,
) -> Response
where
    P: Clone + Send + Sync + 'static,
{
    let table = ring.current();
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    match table.authenticate(header) {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => e.into_response(),
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

    #[test]
    fn anonymous_only_without_header() {
        let mut t = table();
        t.allow_anonymous("anon");
        assert_eq!(t.authenticate(None).unwrap(), "anon");
        assert!(t.authenticate(Some("Bearer wrong")).is_err());
    }
}
