-- The router's state on PostgreSQL, shared by several routers.
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key, model));
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL, status BIGINT NOT NULL,
    route TEXT NOT NULL, backend TEXT NOT NULL, body BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (key, idempotency_key));
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_at);
CREATE TABLE IF NOT EXISTS responses (
    key TEXT NOT NULL, id TEXT NOT NULL, previous_id TEXT,
    input BYTEA NOT NULL, response BYTEA NOT NULL,
    local_only BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (key, id));
CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at);
