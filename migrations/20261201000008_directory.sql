-- The directory (channels, queues, agents) lives here, so admins change it
-- in the console without a restart and every node sharing the database sees
-- the same one.
--
-- Each item is stored as the JSON of its typed config struct (the same
-- struct frontdesk.toml is read into), so the file and the console share
-- one definition and one validation path. `source` says who owns an item:
-- 'file' items are provisioned from frontdesk.toml at start and on SIGHUP
-- and are read-only in the console; 'console' items are created there.

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 0);

CREATE TABLE directory_items (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    kind       TEXT NOT NULL,
    item_key   TEXT NOT NULL,
    spec       TEXT NOT NULL,
    source     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (kind, item_key)
);

CREATE INDEX directory_items_by_tenant ON directory_items (tenant_id, kind);

-- The change signal. Every change to the directory bumps `version` in its
-- own transaction (which also serialises writers: the bump takes the row's
-- lock first). Nodes reload when the version they hold is behind; on
-- PostgreSQL the same transaction also sends NOTIFY frontdesk_directory so
-- they do not wait for their next poll.
CREATE TABLE directory_version (
    id      INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);

INSERT INTO directory_version (id, version) VALUES (1, 0);

-- Who changed what, when (the console's audit log).
CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     TEXT NOT NULL
);

CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, at);
