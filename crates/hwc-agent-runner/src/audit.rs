//! The tamper-evident audit: append-only, hash-chained records in the
//! store, with signed checkpoints.
//!
//! Each record is canonical JSON (sorted keys) carrying its `seq` and the
//! previous record's hash; its own hash is the SHA-256 of that text. An
//! edit breaks the record's hash, an insertion, deletion or reordering
//! breaks the chain, and rewriting the whole tail is caught by a
//! checkpoint: every `checkpoint_every` records (and on shutdown) the
//! chain head is signed with an Ed25519 key as a C2SP signed note
//! (`origin`, size, base64 head hash, then `— name base64(keyid ‖ sig)`).
//! The head is a hash-chain head, not a Merkle root: proving one record's
//! inclusion needs the records before it, which the verifier reads anyway.
//!
//! [`Audit::append`] returns after the record's transaction commits (WAL
//! fsync with SQLite), so a caller that waits for it before acting, and
//! acknowledges only after, never loses an acknowledged record to a crash.
//! [`verify`] walks the chain and says where it breaks.

use crate::approval::canonical_json;
use crate::policy::Risk;
use crate::store::{db_err, Store, StoreError};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::path::Path;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller records; [`Audit::append`] adds seq, time and chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// What happened: `job_created`, `decision`, `approval`, `refusal`,
    /// `action_started`, `action_finished`, `action_interrupted`, …
    pub kind: String,
    /// The job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The chat session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The model alias the agent ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The person behind it (token name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Its arguments, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// The action's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// The verdict (`allow`, `needs_approval`, `deny`) or the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The rule that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Who approved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// The exit code of what ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// How long it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// SHA-256 of the whole output (the output itself is not kept here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_hash: Option<String>,
    /// A sentence for people: the reason, the refusal, the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A record as stored: the entry, where it sits in the chain, and who wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1, 2, 3, … with no gaps.
    pub seq: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The runner instance that wrote it (`hwc-agent-runner@host`).
    pub agent: String,
    /// The host it ran on.
    pub host: String,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// What happened.
    #[serde(flatten)]
    pub entry: Entry,
}

impl Record {
    /// The text that is stored and hashed.
    pub fn canonical(&self) -> String {
        canonical_json(&serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

/// SHA-256 hex of `text`.
pub fn sha256_hex(text: &[u8]) -> String {
    hex::encode(Sha256::digest(text))
}

/// The signing side of checkpoints.
pub struct CheckpointKey {
    /// The key.
    pub signing: SigningKey,
    /// The name in the note's signature line.
    pub name: String,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("name", &self.name)
            .field(
                "public",
                &hex::encode(self.signing.verifying_key().as_bytes()),
            )
            .finish()
    }
}

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
#[error("audit signing key {path}: {message}")]
pub struct KeyError {
    /// The file.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl CheckpointKey {
    /// Reads a 32-byte Ed25519 seed: raw, 64 hex digits or base64.
    pub fn load(path: &Path, name: &str) -> Result<Self, KeyError> {
        let fail = |message: String| KeyError {
            path: path.display().to_string(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        let seed: Vec<u8> = if bytes.len() == 32 {
            bytes
        } else if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(&text).map_err(|e| fail(e.to_string()))?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(&text)
                .map_err(|_| {
                    fail("not a 32-byte Ed25519 seed (raw, 64 hex digits or base64); `hwc-agent-runner audit keygen FILE` writes one".into())
                })?
        };
        let seed: [u8; 32] = seed.try_into().map_err(|_| {
            fail(
                "the seed must be 32 bytes; `hwc-agent-runner audit keygen FILE` writes one".into(),
            )
        })?;
        Ok(Self {
            signing: SigningKey::from_bytes(&seed),
            name: name.into(),
        })
    }

    /// A new random key.
    pub fn generate(name: &str) -> Self {
        let mut seed = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut seed);
        Self {
            signing: SigningKey::from_bytes(&seed),
            name: name.into(),
        }
    }

    /// The seed as hex, for a key file.
    pub fn seed_hex(&self) -> String {
        hex::encode(self.signing.to_bytes())
    }

    /// The public key as hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.signing.verifying_key().as_bytes())
    }
}

/// C2SP key id: the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ key).
fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x01");
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The signed note for a chain of `size` records whose head is `head`.
pub fn checkpoint_note(origin: &str, size: i64, head: &str, key: &CheckpointKey) -> String {
    let head_b64 =
        base64::engine::general_purpose::STANDARD.encode(hex::decode(head).unwrap_or_default());
    let body = format!("{origin}\n{size}\n{head_b64}\n");
    let sig = key.signing.sign(body.as_bytes());
    let mut blob = key_id(&key.name, &key.signing.verifying_key()).to_vec();
    blob.extend_from_slice(&sig.to_bytes());
    format!(
        "{body}\n\u{2014} {} {}\n",
        key.name,
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// A checkpoint read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Records covered.
    pub size: i64,
    /// Head hash (hex).
    pub head: String,
}

/// Checks a note's signature by `public`, returning what it covers.
pub fn open_note(note: &str, public: &VerifyingKey) -> Result<Checkpoint, String> {
    let (body, sigs) = note
        .split_once("\n\n")
        .ok_or("no blank line between the body and the signatures")?;
    let body = format!("{body}\n");
    let mut lines = body.lines();
    let _origin = lines.next().ok_or("no origin line")?;
    let size: i64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("no size line")?;
    let head = lines
        .next()
        .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
        .map(hex::encode)
        .ok_or("no head hash line")?;
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((name, blob)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(blob) else {
            continue;
        };
        if blob.len() != 68 || blob[..4] != key_id(name, public) {
            continue;
        }
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&blob[4..]) else {
            continue;
        };
        if public.verify(body.as_bytes(), &sig).is_ok() {
            return Ok(Checkpoint { size, head });
        }
        return Err(format!("the signature by `{name}` does not verify"));
    }
    Err("no signature by the given key".into())
}

/// The chain writer.
pub struct Audit {
    store: Store,
    agent: String,
    host: String,
    key: Option<CheckpointKey>,
    checkpoint_every: i64,
    writer: tokio::sync::Mutex<()>,
}

/// What [`Audit::append`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

impl Audit {
    /// A writer on `store`, signing a checkpoint every `checkpoint_every`
    /// records when `key` is given.
    pub fn new(
        store: Store,
        host: &str,
        key: Option<CheckpointKey>,
        checkpoint_every: i64,
    ) -> Self {
        Self {
            store,
            agent: format!("{}@{host}", crate::NAME),
            host: host.into(),
            key,
            checkpoint_every: checkpoint_every.max(1),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// The checkpoint key's public half, hex.
    pub fn public_key(&self) -> Option<String> {
        self.key.as_ref().map(CheckpointKey::public_hex)
    }

    /// Appends `entry` and returns once it is committed. Several runners on
    /// one PostgreSQL race for the next `seq`; the loser retries on the
    /// primary-key conflict, so the chain never forks.
    pub async fn append(&self, entry: Entry, at_ms: i64) -> Result<Appended, StoreError> {
        let _one_writer_here = self.writer.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_append(&entry, at_ms).await {
                Ok(a) => {
                    if a.seq % self.checkpoint_every == 0 {
                        self.write_checkpoint(a.seq, &a.hash, at_ms).await?;
                    }
                    return Ok(a);
                }
                Err(e) if attempt < 20 && is_conflict(&e.source) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_append(&self, entry: &Entry, at_ms: i64) -> Result<Appended, StoreError> {
        let mut tx = self
            .store
            .pool
            .begin()
            .await
            .map_err(db_err("audit: begin"))?;
        let (seq, prev_hash) = match head(&mut *tx).await? {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_string()),
        };
        let record = Record {
            seq,
            at_ms,
            agent: self.agent.clone(),
            host: self.host.clone(),
            prev_hash: prev_hash.clone(),
            entry: entry.clone(),
        };
        let text = record.canonical();
        let hash = sha256_hex(text.as_bytes());
        sqlx::query(
            "INSERT INTO audit (seq, at, job_id, kind, record, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(seq)
        .bind(at_ms)
        .bind(entry.job.clone())
        .bind(entry.kind.clone())
        .bind(text)
        .bind(prev_hash)
        .bind(hash.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_err("audit: append"))?;
        tx.commit().await.map_err(db_err("audit: commit"))?;
        Ok(Appended { seq, hash })
    }

    /// Signs the current head now (on shutdown, or on a timer), if there is
    /// a key and anything new since the last checkpoint.
    pub async fn checkpoint_now(&self, at_ms: i64) -> Result<Option<i64>, StoreError> {
        let _one_writer_here = self.writer.lock().await;
        if self.key.is_none() {
            return Ok(None);
        }
        let Some((seq, hash)) = head(&self.store.pool).await? else {
            return Ok(None);
        };
        if checkpointed(&self.store).await?.is_some_and(|d| d >= seq) {
            return Ok(None);
        }
        self.write_checkpoint(seq, &hash, at_ms).await?;
        Ok(Some(seq))
    }

    async fn write_checkpoint(&self, size: i64, head: &str, at_ms: i64) -> Result<(), StoreError> {
        let Some(key) = &self.key else { return Ok(()) };
        let note = checkpoint_note(
            &format!("hwc-ai/agent-runner/{}", self.host),
            size,
            head,
            key,
        );
        sqlx::query("INSERT INTO checkpoints (size, at, note) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING")
            .bind(size)
            .bind(at_ms)
            .bind(note)
            .execute(&self.store.pool)
            .await
            .map_err(db_err("audit: write a checkpoint"))?;
        Ok(())
    }
}

/// The last record's `(seq, hash)`, through the pool or a transaction.
pub async fn head<'e, E>(exec: E) -> Result<Option<(i64, String)>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .fetch_optional(exec)
        .await
        .map_err(db_err("audit: read the chain head"))?;
    row.map(|row| {
        Ok((
            row.try_get::<i64, _>(0).map_err(db_err("audit: seq"))?,
            row.try_get::<String, _>(1).map_err(db_err("audit: hash"))?,
        ))
    })
    .transpose()
}

/// Records covered by the last signed checkpoint.
pub async fn checkpointed(store: &Store) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT MAX(size) FROM checkpoints")
        .fetch_one(&store.pool)
        .await
        .map_err(db_err("audit: read checkpoints"))
}

/// When the last checkpoint was signed (unix ms), if there is one.
pub async fn last_checkpoint_at(store: &Store) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT MAX(at) FROM checkpoints")
        .fetch_one(&store.pool)
        .await
        .map_err(db_err("audit: read checkpoints"))
}

fn is_conflict(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation()
                || d.code()
                    .is_some_and(|c| c == "40001" || c == "5" || c == "517")
        }
        _ => false,
    }
}

/// One place the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The record where it shows.
    pub seq: i64,
    /// What is wrong there.
    pub problem: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Records read.
    pub records: i64,
    /// The last record's hash.
    pub head: String,
    /// Checkpoints whose signature and head were checked.
    pub checkpoints: i64,
    /// Every break found, in order (at most 100).
    pub breaks: Vec<Break>,
}

impl Verification {
    /// Whether the chain is whole.
    pub fn ok(&self) -> bool {
        self.breaks.is_empty()
    }
}

/// Walks the whole chain, and checks every checkpoint against it when
/// `public` is given.
pub async fn verify(
    store: &Store,
    public: Option<&VerifyingKey>,
) -> Result<Verification, StoreError> {
    let rows = sqlx::query("SELECT seq, record, prev_hash, hash FROM audit ORDER BY seq")
        .fetch_all(&store.pool)
        .await
        .map_err(db_err("audit: read the chain"))?;
    let mut breaks = Vec::new();
    let mut push = |seq: i64, problem: String| {
        if breaks.len() < 100 {
            breaks.push(Break { seq, problem });
        }
    };
    let mut expected = 1i64;
    let mut prev = GENESIS.to_string();
    let mut hashes = std::collections::BTreeMap::new();
    for row in &rows {
        let seq: i64 = row.try_get(0).map_err(db_err("audit: seq"))?;
        let text: String = row.try_get(1).map_err(db_err("audit: record"))?;
        let prev_col: String = row.try_get(2).map_err(db_err("audit: prev_hash"))?;
        let hash: String = row.try_get(3).map_err(db_err("audit: hash"))?;
        if seq > expected {
            push(
                seq,
                if seq == expected + 1 {
                    format!("record {expected} is missing (deleted)")
                } else {
                    format!("records {expected}..{} are missing (deleted)", seq - 1)
                },
            );
        }
        if sha256_hex(text.as_bytes()) != hash {
            push(seq, "its content does not match its hash (edited)".into());
        }
        match serde_json::from_str::<Record>(&text) {
            Ok(r) => {
                if r.seq != seq {
                    push(
                        seq,
                        format!("its content says seq {} (moved or reordered)", r.seq),
                    );
                }
                if r.canonical() != text {
                    push(seq, "its text is not in canonical form (edited)".into());
                }
                if r.prev_hash != prev_col {
                    push(
                        seq,
                        "its prev_hash column differs from its content (edited)".into(),
                    );
                }
                if r.prev_hash != prev {
                    push(
                        seq,
                        format!(
                            "it does not follow record {} (a record was inserted, removed or reordered before it, or that one was edited)",
                            seq - 1
                        ),
                    );
                }
            }
            Err(e) => push(seq, format!("its content is not a record ({e}) (edited)")),
        }
        hashes.insert(seq, hash.clone());
        prev = hash;
        expected = seq + 1;
    }
    let records = rows.len() as i64;
    let mut checked = 0;
    if let Some(public) = public {
        let notes = sqlx::query("SELECT size, note FROM checkpoints ORDER BY size")
            .fetch_all(&store.pool)
            .await
            .map_err(db_err("audit: read checkpoints"))?;
        for row in notes {
            let size: i64 = row.try_get(0).map_err(db_err("audit: size"))?;
            let note: String = row.try_get(1).map_err(db_err("audit: note"))?;
            match open_note(&note, public) {
                Err(e) => push(size, format!("checkpoint at size {size}: {e}")),
                Ok(c) if c.size != size => {
                    push(size, format!("checkpoint filed at size {size} signs size {}", c.size))
                }
                Ok(c) => match hashes.get(&c.size) {
                    None => push(
                        c.size,
                        format!(
                            "a signed checkpoint covers {} records but the chain ends at {} (records after it were deleted)",
                            c.size,
                            hashes.keys().next_back().copied().unwrap_or(0)
                        ),
                    ),
                    Some(h) if *h != c.head => push(
                        c.size,
                        "the signed checkpoint's head differs from this record's hash (the chain was rewritten)".into(),
                    ),
                    Some(_) => checked += 1,
                },
            }
        }
    }
    Ok(Verification {
        records,
        head: prev,
        checkpoints: checked,
        breaks,
    })
}
