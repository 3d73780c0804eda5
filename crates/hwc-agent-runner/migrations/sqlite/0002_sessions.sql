-- Chat sessions: read-only conversations that may start jobs.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    requester TEXT NOT NULL,
    environment TEXT NOT NULL,
    target TEXT NOT NULL,
    model TEXT NOT NULL,
    messages TEXT NOT NULL
);
