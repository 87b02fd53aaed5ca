-- Agents' HTTP File Upload (XEP-0363) slots, shared by every node: the
-- node that grants a slot (its XMPP component got the request), the one
-- that takes the PUT and the one the agent's message with the link
-- reaches need not be the same.
--
-- `id_hash`: a SHA-256 of the slot id (the only credential, in the PUT
-- URL). `state`: 'open' (granted), 'uploading' (a PUT streams: it moves
-- out of 'open' with a compare-and-set, so one PUT wins), 'uploaded'
-- (complete: the bytes are in the file store under `storage_key`, waiting
-- for the message that sends them). `expires_at` (Unix ms): when an open
-- slot lapses, a PUT that stopped renewing it counts as dead, an upload
-- never sent goes; any node deletes rows past it, and their bytes.
CREATE TABLE upload_slots (
    id_hash          TEXT PRIMARY KEY,
    agent_extension  TEXT NOT NULL,
    file_id          TEXT NOT NULL UNIQUE,
    filename         TEXT NOT NULL,
    size             BIGINT NOT NULL,
    state            TEXT NOT NULL,
    expires_at       BIGINT NOT NULL,
    storage_key      TEXT,
    display_name     TEXT,
    content_type     TEXT,
    created_at       BIGINT NOT NULL
);

CREATE INDEX upload_slots_by_agent ON upload_slots (agent_extension);
CREATE INDEX upload_slots_by_expiry ON upload_slots (expires_at);
