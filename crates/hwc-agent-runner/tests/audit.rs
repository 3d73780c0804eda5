//! The audit chain against every way to tamper with it: each edit,
//! deletion, insertion, reordering and rewrite made directly in the
//! database is found and located by `verify`.

use hwc_agent_runner::audit::{sha256_hex, verify, Audit, CheckpointKey, Entry, Record};
use hwc_agent_runner::store::{sqlite_url, Store};
use sqlx::Row;

struct Chain {
    _dir: tempfile::TempDir,
    store: Store,
    key: ed25519_dalek::VerifyingKey,
}

async fn chain(records: i64, checkpoint_every: i64) -> Chain {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&sqlite_url(&dir.path().join("a.db")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let key = CheckpointKey::generate("test-runner");
    let public = key.signing.verifying_key();
    let audit = Audit::new(store.clone(), "host-a", Some(key), checkpoint_every);
    for i in 0..records {
        audit
            .append(
                Entry {
                    kind: "decision".into(),
                    job: Some(format!("job-{}", i % 3)),
                    tool: Some("shell".into()),
                    arguments: Some(serde_json::json!({"command": format!("ls /tmp/{i}")})),
                    detail: Some(format!("record {i}")),
                    ..Entry::default()
                },
                1_700_000_000_000 + i,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    Chain {
        _dir: dir,
        store,
        key: public,
    }
}

async fn exec(c: &Chain, sql: &str) {
    sqlx::query(sql)
        .execute(&c.store.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn problems(c: &Chain) -> Vec<(i64, String)> {
    let v = verify(&c.store, Some(&c.key))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    v.breaks.into_iter().map(|b| (b.seq, b.problem)).collect()
}

fn first(p: &[(i64, String)]) -> (i64, &str) {
    let (seq, what) = p.first().unwrap_or_else(|| panic!("no break found"));
    (*seq, what.as_str())
}

/// Rewrites records `from..` so each is internally consistent again, as an
/// attacker with write access to the database would.
async fn rechain_from(c: &Chain, from: i64) {
    let rows = sqlx::query("SELECT seq, record FROM audit WHERE seq >= $1 ORDER BY seq")
        .bind(from)
        .fetch_all(&c.store.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut prev: String = sqlx::query_scalar("SELECT hash FROM audit WHERE seq = $1")
        .bind(from - 1)
        .fetch_one(&c.store.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for row in rows {
        let seq: i64 = row.get(0);
        let text: String = row.get(1);
        let mut r: Record = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        r.prev_hash = prev.clone();
        let text = r.canonical();
        let hash = sha256_hex(text.as_bytes());
        sqlx::query("UPDATE audit SET record = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(&text)
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(&c.store.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        prev = hash;
    }
}

#[tokio::test]
async fn an_untouched_chain_verifies_with_its_checkpoints() {
    let c = chain(25, 10).await;
    let v = verify(&c.store, Some(&c.key))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(v.ok(), "{:?}", v.breaks);
    assert_eq!((v.records, v.checkpoints), (25, 2));
}

#[tokio::test]
async fn an_edited_record_is_found() {
    let c = chain(12, 100).await;
    exec(
        &c,
        "UPDATE audit SET record = replace(record, 'ls /tmp/4', 'rm -rf /') WHERE seq = 5",
    )
    .await;
    let p = problems(&c).await;
    assert_eq!(
        first(&p),
        (5, "its content does not match its hash (edited)")
    );
}

#[tokio::test]
async fn an_edit_with_its_hash_recomputed_breaks_the_next_link() {
    let c = chain(12, 100).await;
    exec(
        &c,
        "UPDATE audit SET record = replace(record, 'ls /tmp/4', 'rm -rf /') WHERE seq = 5",
    )
    .await;
    let text: String = sqlx::query_scalar("SELECT record FROM audit WHERE seq = 5")
        .fetch_one(&c.store.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("UPDATE audit SET hash = $1 WHERE seq = 5")
        .bind(sha256_hex(text.as_bytes()))
        .execute(&c.store.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = problems(&c).await;
    let (seq, what) = first(&p);
    assert_eq!(seq, 6);
    assert!(what.starts_with("it does not follow record 5"), "{what}");
}

#[tokio::test]
async fn a_deleted_record_is_found() {
    let c = chain(12, 100).await;
    exec(&c, "DELETE FROM audit WHERE seq = 7").await;
    let p = problems(&c).await;
    assert_eq!(first(&p), (8, "record 7 is missing (deleted)"));
}

#[tokio::test]
async fn reordered_records_are_found() {
    let c = chain(12, 100).await;
    exec(&c, "UPDATE audit SET seq = -1 WHERE seq = 3").await;
    exec(&c, "UPDATE audit SET seq = 3 WHERE seq = 4").await;
    exec(&c, "UPDATE audit SET seq = 4 WHERE seq = -1").await;
    let p = problems(&c).await;
    let (seq, what) = first(&p);
    assert_eq!(seq, 3);
    assert!(what.contains("moved or reordered"), "{what}");
}

#[tokio::test]
async fn an_inserted_record_is_found() {
    let c = chain(12, 100).await;
    // Shift 6.. up by one and put a forged record at 6, chained to 5.
    exec(&c, "UPDATE audit SET seq = seq + 1000 WHERE seq >= 6").await;
    exec(&c, "UPDATE audit SET seq = seq - 999 WHERE seq >= 1006").await;
    let prev: String = sqlx::query_scalar("SELECT hash FROM audit WHERE seq = 5")
        .fetch_one(&c.store.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let forged = Record {
        seq: 6,
        at_ms: 1,
        agent: "hwc-agent-runner@host-a".into(),
        host: "host-a".into(),
        prev_hash: prev.clone(),
        entry: Entry {
            kind: "approval".into(),
            ..Entry::default()
        },
    };
    let text = forged.canonical();
    sqlx::query("INSERT INTO audit (seq, at, job_id, kind, record, prev_hash, hash) VALUES (6, 1, NULL, 'approval', $1, $2, $3)")
        .bind(&text)
        .bind(&prev)
        .bind(sha256_hex(text.as_bytes()))
        .execute(&c.store.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = problems(&c).await;
    // The record after the forgery says it is 6, not 7, and does not follow it.
    assert_eq!(first(&p).0, 7, "{p:?}");
}

#[tokio::test]
async fn a_truncated_tail_is_caught_by_the_checkpoint() {
    let c = chain(25, 10).await;
    exec(&c, "DELETE FROM audit WHERE seq > 15").await;
    let p = problems(&c).await;
    assert_eq!(first(&p).0, 20);
    assert!(first(&p).1.contains("the chain ends at 15"), "{p:?}");
}

#[tokio::test]
async fn a_rewritten_tail_is_caught_by_the_checkpoint() {
    let c = chain(25, 10).await;
    exec(
        &c,
        "UPDATE audit SET record = replace(record, 'ls /tmp/12', 'ls /tmp/xx') WHERE seq = 13",
    )
    .await;
    rechain_from(&c, 13).await;
    let p = problems(&c).await;
    assert_eq!(
        first(&p),
        (20, "the signed checkpoint's head differs from this record's hash (the chain was rewritten)")
    );
    // A checkpoint signed by another key does not count.
    let other = CheckpointKey::generate("test-runner")
        .signing
        .verifying_key();
    let v = verify(&c.store, Some(&other))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(v
        .breaks
        .iter()
        .all(|b| b.problem.contains("no signature by the given key")));
}

#[tokio::test]
async fn concurrent_appends_keep_one_unbroken_chain() {
    let c = chain(0, 7).await;
    let audit = std::sync::Arc::new(Audit::new(c.store.clone(), "host-a", None, 1000));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let a = audit.clone();
        tasks.push(tokio::spawn(async move {
            a.append(
                Entry {
                    kind: "decision".into(),
                    detail: Some(i.to_string()),
                    ..Entry::default()
                },
                i,
            )
            .await
        }));
    }
    for t in tasks {
        t.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let v = verify(&c.store, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(v.ok(), "{:?}", v.breaks);
    assert_eq!(v.records, 40);
}

#[tokio::test]
async fn two_runners_share_one_chain_on_a_real_postgresql() {
    let url = hwc_testkit::postgres::shared().database("audit");
    let store = Store::open(&url).await.unwrap_or_else(|e| panic!("{e}"));
    // Migrations run once: a second runner opening the same database is fine.
    let store_b = Store::open(&url).await.unwrap_or_else(|e| panic!("{e}"));
    let key = CheckpointKey::generate("pg-runner");
    let public = key.signing.verifying_key();
    let a = std::sync::Arc::new(Audit::new(store.clone(), "host-a", Some(key), 10));
    let b = std::sync::Arc::new(Audit::new(store_b, "host-b", None, 10));
    let mut tasks = Vec::new();
    for i in 0..30 {
        for w in [a.clone(), b.clone()] {
            tasks.push(tokio::spawn(async move {
                w.append(
                    Entry {
                        kind: "decision".into(),
                        detail: Some(i.to_string()),
                        ..Entry::default()
                    },
                    i,
                )
                .await
            }));
        }
    }
    for t in tasks {
        t.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let v = verify(&store, Some(&public))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(v.ok(), "{:?}", v.breaks);
    assert_eq!(v.records, 60);
    let hosts: Vec<String> = sqlx::query_scalar("SELECT DISTINCT record FROM audit")
        .fetch_all(&store.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(hosts.iter().any(|r| r.contains("host-b")));
    sqlx::query("DELETE FROM audit WHERE seq = 31")
        .execute(&store.pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v = verify(&store, Some(&public))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.breaks[0].seq, 32, "{:?}", v.breaks);
}
