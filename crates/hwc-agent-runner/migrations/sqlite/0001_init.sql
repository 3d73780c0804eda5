-- hwc-agent-runner schema v1 (SQLite). Keep in step with ../postgres.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    requester TEXT NOT NULL,
    environment TEXT NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    progress TEXT NOT NULL,
    owner TEXT,
    lease_until BIGINT
);
CREATE INDEX jobs_state ON jobs (state, updated_at);

CREATE TABLE events (
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE actions (
    job_id TEXT NOT NULL,
    id BIGINT NOT NULL,
    digest TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    decision TEXT NOT NULL,
    rollback TEXT,
    state TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    expires_at BIGINT,
    result TEXT,
    PRIMARY KEY (job_id, id)
);

CREATE TABLE grants (
    job_id TEXT NOT NULL,
    action_id BIGINT NOT NULL,
    approver TEXT NOT NULL,
    digest TEXT NOT NULL,
    at BIGINT NOT NULL,
    comment TEXT NOT NULL,
    PRIMARY KEY (job_id, action_id, approver)
);

CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    job_id TEXT,
    kind TEXT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_job ON audit (job_id, seq);

CREATE TABLE checkpoints (
    size BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    note TEXT NOT NULL
);
