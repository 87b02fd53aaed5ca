-- Console accounts, their sessions and API tokens.

-- A person who logs in to the console. `tenant_id` NULL and role
-- 'superadmin': manages tenants. Passwords are argon2id PHC strings.
CREATE TABLE admin_users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT REFERENCES tenants (id),
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- Console sessions (tower-sessions records), in the database so they
-- survive a restart and work on every node. `id` is the session cookie's
-- value: 128 random bits.
CREATE TABLE admin_sessions (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE INDEX admin_sessions_by_expiry ON admin_sessions (expires_at);

-- Tokens for the admin API, scoped to a tenant and a role. Only a
-- SHA-256 of the token is kept; it is shown once, when created.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL
);
