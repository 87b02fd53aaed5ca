-- XMPP bridge state that must survive a gateway restart.

-- Stanzas accepted for an agent but not yet confirmed processed by the
-- XMPP server; replayed in id (UUIDv7, time) order after a restart.
CREATE TABLE xmpp_outbox (
    id         TEXT PRIMARY KEY,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Whether each agent approved the component's presence subscription, so
-- agents are asked once, not at every start.
CREATE TABLE xmpp_subscriptions (
    agent_jid  TEXT PRIMARY KEY,
    subscribed BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
