-- The router's state, as the SQLite schema was before migrations (IF NOT
-- EXISTS: a database from an earlier version is taken as it is).
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key, model));
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL, status INTEGER NOT NULL,
    route TEXT NOT NULL, backend TEXT NOT NULL, body BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (key, idempotency_key));
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_at);
-- Stored Responses (`store` true): this request's own input items and the
-- response object, per key; `previous_id` links the chain.
CREATE TABLE IF NOT EXISTS responses (
    key TEXT NOT NULL, id TEXT NOT NULL, previous_id TEXT,
    input BLOB NOT NULL, response BLOB NOT NULL,
    local_only INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (key, id));
CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at);
