-- The items of stored responses (their input and output items that have
-- an id), by id, for `item_reference` input items.
CREATE TABLE IF NOT EXISTS response_items (
    key TEXT NOT NULL, item_id TEXT NOT NULL, response_id TEXT NOT NULL,
    item BYTEA NOT NULL, local_only BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (key, item_id));
CREATE INDEX IF NOT EXISTS response_items_response ON response_items (key, response_id);
CREATE INDEX IF NOT EXISTS response_items_created ON response_items (created_at);
