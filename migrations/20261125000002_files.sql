-- Files visitors and agents send. The bytes live in the file store (a
-- directory by default) under `storage_key`, a random name that never
-- derives from the client's file name; this table holds what the chat shows
-- and what downloads need. Same SQL on SQLite and PostgreSQL: text ids,
-- Unix-millisecond instants.

CREATE TABLE files (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- The client's batch (one "send" of up to N files); a lone file is a
    -- batch of one.
    batch_id        TEXT NOT NULL,
    storage_key     TEXT NOT NULL,
    -- Sanitised display name: never used as a path.
    name            TEXT NOT NULL,
    size            BIGINT NOT NULL,
    -- Sniffed from the content, not taken from the client.
    content_type    TEXT NOT NULL,
    sender          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- The batch limit counts files per (conversation, batch).
CREATE INDEX files_by_batch ON files (conversation_id, batch_id);
