//! The queries behind jobs, events, actions and approvals: one place for
//! the SQL, the same text on SQLite and PostgreSQL (see [`crate::store`]).

use crate::approval::{ActionDigest, Grant};
use crate::job::{ActionState, Job, JobSpec, JobState, Progress};
use crate::store::{db_err, Store, StoreError};
use crate::tools::Planned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

fn json_err(what: &str, e: serde_json::Error) -> StoreError {
    StoreError {
        what: what.into(),
        source: sqlx::Error::Decode(Box::new(e)),
    }
}

fn to_text<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn job_from(row: &AnyRow) -> Result<Job, StoreError> {
    let get = |i: usize| row.try_get::<String, _>(i).map_err(db_err("jobs: read"));
    let state = get(4)?;
    Ok(Job {
        id: get(0)?,
        created_at: row.try_get(1).map_err(db_err("jobs: created_at"))?,
        updated_at: row.try_get(2).map_err(db_err("jobs: updated_at"))?,
        requester: get(3)?,
        state: JobState::parse(&state).unwrap_or(JobState::Failed),
        spec: serde_json::from_str::<JobSpec>(&get(5)?).map_err(|e| json_err("jobs: spec", e))?,
        progress: serde_json::from_str::<Progress>(&get(6)?)
            .map_err(|e| json_err("jobs: progress", e))?,
    })
}

const JOB_COLUMNS: &str = "id, created_at, updated_at, requester, state, spec, progress";

/// Stores a new job.
pub async fn insert_job(s: &Store, job: &Job) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO jobs (id, created_at, updated_at, requester, environment, target, state, spec, progress) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&job.id)
        .bind(job.created_at)
        .bind(job.updated_at)
        .bind(&job.requester)
        .bind(&job.spec.environment)
        .bind(&job.spec.target)
        .bind(job.state.as_str())
        .bind(to_text(&job.spec))
        .bind(to_text(&job.progress))
        .execute(&s.pool)
        .await
        .map_err(db_err("jobs: insert"))?;
    Ok(())
}

/// A job by id.
pub async fn get_job(s: &Store, id: &str) -> Result<Option<Job>, StoreError> {
    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(&s.pool)
        .await
        .map_err(db_err("jobs: get"))?;
    row.as_ref().map(job_from).transpose()
}

/// Jobs, newest first, optionally in one state.
pub async fn list_jobs(
    s: &Store,
    state: Option<JobState>,
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    let by_state = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE state = $1 ORDER BY created_at DESC LIMIT $2"
    );
    let all = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC LIMIT $1");
    let rows = match state {
        Some(st) => sqlx::query(&by_state).bind(st.as_str()).bind(limit),
        None => sqlx::query(&all).bind(limit),
    }
    .fetch_all(&s.pool)
    .await
    .map_err(db_err("jobs: list"))?;
    rows.iter().map(job_from).collect()
}

/// Jobs for `target` in one of `states`, oldest first.
pub async fn jobs_for(
    s: &Store,
    target: &str,
    states: &[JobState],
) -> Result<Vec<Job>, StoreError> {
    let mut out = Vec::new();
    for st in states {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE target = $1 AND state = $2 ORDER BY created_at"
        ))
        .bind(target)
        .bind(st.as_str())
        .fetch_all(&s.pool)
        .await
        .map_err(db_err("jobs: by target"))?;
        for r in &rows {
            out.push(job_from(r)?);
        }
    }
    out.sort_by_key(|j| j.created_at);
    Ok(out)
}

/// Saves a job's state and progress.
pub async fn save(
    s: &Store,
    id: &str,
    state: JobState,
    progress: &Progress,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE jobs SET state = $1, progress = $2, updated_at = $3 WHERE id = $4")
        .bind(state.as_str())
        .bind(to_text(progress))
        .bind(now)
        .bind(id)
        .execute(&s.pool)
        .await
        .map_err(db_err("jobs: save"))?;
    Ok(())
}

/// Moves a job from `from` to `to` only if it is still in `from`
/// (claiming a queued job, cancelling); whether it moved.
pub async fn transition(
    s: &Store,
    id: &str,
    from: &[JobState],
    to: JobState,
    owner: &str,
    now: i64,
) -> Result<bool, StoreError> {
    for f in from {
        let r = sqlx::query(
            "UPDATE jobs SET state = $1, owner = $2, updated_at = $3 WHERE id = $4 AND state = $5",
        )
        .bind(to.as_str())
        .bind(owner)
        .bind(now)
        .bind(id)
        .bind(f.as_str())
        .execute(&s.pool)
        .await
        .map_err(db_err("jobs: transition"))?;
        if r.rows_affected() == 1 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Jobs per state.
pub async fn count_by_state(s: &Store) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        .fetch_all(&s.pool)
        .await
        .map_err(db_err("jobs: count"))?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>(0).map_err(db_err("jobs: count"))?,
                r.try_get::<i64, _>(1).map_err(db_err("jobs: count"))?,
            ))
        })
        .collect()
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Per job: 1, 2, 3, … (the SSE id).
    pub seq: i64,
    /// Unix ms.
    pub at: i64,
    /// `turn.started`, `item.completed`, `approval.requested`, …
    pub kind: String,
    /// The payload.
    pub data: Value,
}

fn is_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Appends an event to a job's stream; its seq.
pub async fn append_event(
    s: &Store,
    job: &str,
    kind: &str,
    data: &Value,
    now: i64,
) -> Result<i64, StoreError> {
    for attempt in 0..20u64 {
        let next: i64 =
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM events WHERE job_id = $1")
                .bind(job)
                .fetch_one(&s.pool)
                .await
                .map_err(db_err("events: next seq"))?
                .unwrap_or(0)
                + 1;
        let r = sqlx::query(
            "INSERT INTO events (job_id, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(job)
        .bind(next)
        .bind(now)
        .bind(kind)
        .bind(to_text(data))
        .execute(&s.pool)
        .await;
        match r {
            Ok(_) => return Ok(next),
            Err(e) if is_conflict(&e) => {
                tokio::time::sleep(std::time::Duration::from_millis(2 * (attempt + 1))).await;
            }
            Err(e) => return Err(db_err("events: append")(e)),
        }
    }
    Err(StoreError {
        what: "events: append".into(),
        source: sqlx::Error::Protocol("20 conflicting writers in a row".into()),
    })
}

/// A job's events after `after`, at most `limit`.
pub async fn events_after(
    s: &Store,
    job: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query("SELECT seq, at, kind, data FROM events WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
        .bind(job)
        .bind(after)
        .bind(limit)
        .fetch_all(&s.pool)
        .await
        .map_err(db_err("events: read"))?;
    rows.iter()
        .map(|r| {
            let data: String = r.try_get(3).map_err(db_err("events: data"))?;
            Ok(StoredEvent {
                seq: r.try_get(0).map_err(db_err("events: seq"))?,
                at: r.try_get(1).map_err(db_err("events: at"))?,
                kind: r.try_get(2).map_err(db_err("events: kind"))?,
                data: serde_json::from_str(&data).unwrap_or(Value::Null),
            })
        })
        .collect()
}

const REMOVED: &str = "[removed after the retention period]";

/// Removes tool output older than `before_ms`: from events, and from the
/// conversations of finished jobs and of sessions untouched since (the
/// audit keeps only its hash); how many events and conversations changed.
pub async fn trim_outputs(s: &Store, before_ms: i64) -> Result<u64, StoreError> {
    let mut n = trim_events(s, before_ms).await?;
    let rows = sqlx::query("SELECT id, progress FROM jobs WHERE updated_at < $1 AND state IN ('completed', 'failed', 'cancelled')")
        .bind(before_ms)
        .fetch_all(&s.pool)
        .await
        .map_err(db_err("jobs: retention scan"))?;
    for r in rows {
        let id: String = r.try_get(0).map_err(db_err("jobs: retention"))?;
        let text: String = r.try_get(1).map_err(db_err("jobs: retention"))?;
        let mut p: Progress =
            serde_json::from_str(&text).map_err(|e| json_err("jobs: progress", e))?;
        if forget_tool_output(&mut p.messages) {
            sqlx::query("UPDATE jobs SET progress = $1 WHERE id = $2")
                .bind(to_text(&p))
                .bind(&id)
                .execute(&s.pool)
                .await
                .map_err(db_err("jobs: retention"))?;
            n += 1;
        }
    }
    let rows = sqlx::query("SELECT id, messages FROM sessions WHERE updated_at < $1")
        .bind(before_ms)
        .fetch_all(&s.pool)
        .await
        .map_err(db_err("sessions: retention scan"))?;
    for r in rows {
        let id: String = r.try_get(0).map_err(db_err("sessions: retention"))?;
        let text: String = r.try_get(1).map_err(db_err("sessions: retention"))?;
        let mut messages: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        if forget_tool_output(&mut messages) {
            sqlx::query("UPDATE sessions SET messages = $1 WHERE id = $2")
                .bind(to_text(&messages))
                .bind(&id)
                .execute(&s.pool)
                .await
                .map_err(db_err("sessions: retention"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Replaces the content of tool results in a conversation; whether any changed.
fn forget_tool_output(messages: &mut [Value]) -> bool {
    let mut changed = false;
    for m in messages.iter_mut() {
        let is_result = m["role"] == "tool"
            || (m["role"] == "user"
                && m["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("Result of `")));
        if is_result && m["content"] != REMOVED {
            m["content"] = Value::String(REMOVED.into());
            changed = true;
        }
    }
    changed
}

async fn trim_events(s: &Store, before_ms: i64) -> Result<u64, StoreError> {
    let rows = sqlx::query(
        "SELECT job_id, seq, data FROM events WHERE kind = 'item.completed' AND at < $1",
    )
    .bind(before_ms)
    .fetch_all(&s.pool)
    .await
    .map_err(db_err("events: retention scan"))?;
    let mut n = 0;
    for r in rows {
        let job: String = r.try_get(0).map_err(db_err("events: retention"))?;
        let seq: i64 = r.try_get(1).map_err(db_err("events: retention"))?;
        let data: String = r.try_get(2).map_err(db_err("events: retention"))?;
        let mut v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        let item = &mut v["item"];
        if item
            .get("output")
            .is_some_and(|o| o != "[removed after the retention period]")
        {
            item["output"] = Value::String("[removed after the retention period]".into());
            sqlx::query("UPDATE events SET data = $1 WHERE job_id = $2 AND seq = $3")
                .bind(to_text(&v))
                .bind(&job)
                .bind(seq)
                .execute(&s.pool)
                .await
                .map_err(db_err("events: retention"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// A stored action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRow {
    /// The job.
    pub job_id: String,
    /// 1, 2, 3, … per job.
    pub id: i64,
    /// What approvals bind to.
    pub digest: ActionDigest,
    /// The plan, exactly as it will run.
    pub planned: Planned,
    /// The policy's decision.
    pub decision: Value,
    /// Where it stands.
    pub state: ActionState,
    /// Unix ms.
    pub requested_at: i64,
    /// Unix seconds after which approvals no longer count.
    pub expires_at: Option<i64>,
    /// What running it returned (redacted), once it ran.
    pub result: Option<Value>,
}

fn action_from(r: &AnyRow) -> Result<ActionRow, StoreError> {
    let text = |i: usize| r.try_get::<String, _>(i).map_err(db_err("actions: read"));
    let planned: Planned =
        serde_json::from_str(&text(4)?).map_err(|e| json_err("actions: planned", e))?;
    let result: Option<String> = r.try_get(9).map_err(db_err("actions: result"))?;
    Ok(ActionRow {
        job_id: text(0)?,
        id: r.try_get(1).map_err(db_err("actions: id"))?,
        digest: ActionDigest(text(2)?),
        planned,
        decision: serde_json::from_str(&text(5)?).unwrap_or(Value::Null),
        state: ActionState::parse(&text(6)?).unwrap_or(ActionState::Failed),
        requested_at: r.try_get(7).map_err(db_err("actions: requested_at"))?,
        expires_at: r.try_get(8).map_err(db_err("actions: expires_at"))?,
        result: result.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

const ACTION_COLUMNS: &str =
    "job_id, id, digest, tool, arguments, decision, state, requested_at, expires_at, result";

/// The next action id of a job.
pub async fn next_action_id(s: &Store, job: &str) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM actions WHERE job_id = $1")
            .bind(job)
            .fetch_one(&s.pool)
            .await
            .map_err(db_err("actions: next id"))?
            .unwrap_or(0)
            + 1,
    )
}

/// Stores an action.
pub async fn insert_action(s: &Store, a: &ActionRow) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO actions (job_id, id, digest, tool, arguments, decision, rollback, state, requested_at, expires_at, result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(&a.job_id)
        .bind(a.id)
        .bind(&a.digest.0)
        .bind(&a.planned.tool)
        .bind(to_text(&a.planned))
        .bind(to_text(&a.decision))
        .bind(a.planned.rollback.clone())
        .bind(a.state.as_str())
        .bind(a.requested_at)
        .bind(a.expires_at)
        .bind(a.result.as_ref().map(to_text))
        .execute(&s.pool)
        .await
        .map_err(db_err("actions: insert"))?;
    Ok(())
}

/// Moves an action to `to` (with its result) if it is in `from`; whether it moved.
pub async fn set_action(
    s: &Store,
    job: &str,
    id: i64,
    from: &[ActionState],
    to: ActionState,
    result: Option<&Value>,
) -> Result<bool, StoreError> {
    for f in from {
        let r = sqlx::query("UPDATE actions SET state = $1, result = COALESCE($2, result) WHERE job_id = $3 AND id = $4 AND state = $5")
            .bind(to.as_str())
            .bind(result.map(to_text))
            .bind(job)
            .bind(id)
            .bind(f.as_str())
            .execute(&s.pool)
            .await
            .map_err(db_err("actions: update"))?;
        if r.rows_affected() == 1 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One action.
pub async fn get_action(s: &Store, job: &str, id: i64) -> Result<Option<ActionRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {ACTION_COLUMNS} FROM actions WHERE job_id = $1 AND id = $2"
    ))
    .bind(job)
    .bind(id)
    .fetch_optional(&s.pool)
    .await
    .map_err(db_err("actions: get"))?;
    row.as_ref().map(action_from).transpose()
}

/// A job's actions in order.
pub async fn actions(s: &Store, job: &str) -> Result<Vec<ActionRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {ACTION_COLUMNS} FROM actions WHERE job_id = $1 ORDER BY id"
    ))
    .bind(job)
    .fetch_all(&s.pool)
    .await
    .map_err(db_err("actions: list"))?;
    rows.iter().map(action_from).collect()
}

/// Actions waiting for approval, across jobs.
pub async fn waiting_actions(s: &Store) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM actions WHERE state = 'waiting'")
        .fetch_one(&s.pool)
        .await
        .map_err(db_err("actions: waiting"))
}

/// When the oldest action still waiting was requested (unix ms).
pub async fn oldest_waiting(s: &Store) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar("SELECT MIN(requested_at) FROM actions WHERE state = 'waiting'")
        .fetch_one(&s.pool)
        .await
        .map_err(db_err("actions: oldest waiting"))
}

/// Records an approval (one per approver per action: a second is a
/// conflict the caller has already refused).
pub async fn insert_grant(s: &Store, job: &str, action: i64, g: &Grant) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO grants (job_id, action_id, approver, digest, at, comment) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(job)
        .bind(action)
        .bind(&g.approver)
        .bind(&g.digest.0)
        .bind(g.at)
        .bind(&g.comment)
        .execute(&s.pool)
        .await
        .map_err(db_err("grants: insert"))?;
    Ok(())
}

/// The approvals of an action.
pub async fn grants(s: &Store, job: &str, action: i64) -> Result<Vec<Grant>, StoreError> {
    let rows = sqlx::query("SELECT approver, digest, at, comment FROM grants WHERE job_id = $1 AND action_id = $2 ORDER BY at")
        .bind(job)
        .bind(action)
        .fetch_all(&s.pool)
        .await
        .map_err(db_err("grants: list"))?;
    rows.iter()
        .map(|r| {
            Ok(Grant {
                approver: r.try_get(0).map_err(db_err("grants: read"))?,
                digest: ActionDigest(r.try_get(1).map_err(db_err("grants: read"))?),
                at: r.try_get(2).map_err(db_err("grants: read"))?,
                comment: r.try_get(3).map_err(db_err("grants: read"))?,
            })
        })
        .collect()
}
