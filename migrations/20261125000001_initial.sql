-- Conversations and their event log. One schema, written once per engine
-- (SQLite and PostgreSQL differ only in what this file does not use).
-- Identifiers are UUIDs stored as text and instants are Unix milliseconds,
-- so the same queries run unchanged on both engines.

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    channel_key     TEXT NOT NULL,
    token_hash      TEXT NOT NULL,
    state           TEXT NOT NULL,
    visitor_name    TEXT NOT NULL,
    visitor_email   TEXT NOT NULL,
    page_url        TEXT,
    language        TEXT NOT NULL,
    option_id       TEXT,
    queue_extension TEXT,
    agent_extension TEXT,
    agent_name      TEXT,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    queued_at       BIGINT,
    ended_at        BIGINT
);

CREATE INDEX conversations_by_state ON conversations (state, queued_at);

-- Every durable thing that happens in a conversation, in order. `seq` is
-- allocated from conversations.last_seq in the same transaction, so it is
-- gapless and monotonic per conversation: a widget that reconnects with the
-- last seq it saw receives exactly what it missed.
CREATE TABLE events (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    client_id       TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

-- A visitor's retry with the same client-generated id never duplicates.
CREATE UNIQUE INDEX events_by_client_id ON events (conversation_id, client_id)
    WHERE client_id IS NOT NULL;
