-- The agent delivery outbox: a visitor's message (or file) to forward to
-- an agent, written in the same transaction as the message itself, and
-- deleted once the agent's side confirmed it (or gave up on it for good).
-- So a crash between "stored" and "forwarded" loses no forward: at start
-- the gateway replays what is left, in order.
CREATE TABLE agent_deliveries (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    agent_extension TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq, agent_extension)
);
