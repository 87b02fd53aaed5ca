-- The dispatcher's state, shared by every gateway node on one database
-- (it used to live in one process's memory): who is reachable, what rings
-- for whom, what each agent did last, the queues' strategy memory, and
-- the timers that must fire even if the node that set them dies.

-- An agent's presence as each source reports it (a protocol bridge, a
-- node's component connection): the agent is as available as their most
-- available source says.
CREATE TABLE agent_presence (
    agent_extension TEXT NOT NULL,
    source          TEXT NOT NULL,
    status          TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (agent_extension, source)
);

-- What the strategies remember of each agent: when their last chat ended
-- (wrap-up, leastrecent) and how many they took (fewestcalls).
CREATE TABLE agent_activity (
    agent_extension    TEXT PRIMARY KEY,
    last_chat_ended_at BIGINT,
    chats_taken        BIGINT NOT NULL DEFAULT 0
);

-- The offer ringing now for a conversation: the agents (a JSON array of
-- extensions) it still rings for.
CREATE TABLE offers (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    agents          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Agents who let a waiting conversation ring out or declined it, so the
-- next round tries others first.
CREATE TABLE offer_declines (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    agent_extension TEXT NOT NULL,
    PRIMARY KEY (conversation_id, agent_extension)
);

-- Per waiting conversation: the last queue position it was told, and the
-- one agent a transfer directs it to (offered to them only, once).
CREATE TABLE waiting_state (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    position        INTEGER,
    directed_agent  TEXT
);

-- Small named values: the strategies' memory (round-robin positions).
CREATE TABLE dispatch_memory (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Cluster-wide mutual exclusion with a lease: held by `holder` until
-- `until` (ms), taken over by anyone once that has passed, so a node that
-- dies holding it blocks nobody for long.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);

-- Durable timers: `kind` on `subject` (a conversation id, an agent) is due
-- at `due_at`. The node that sets one also sleeps on it; every node polls
-- for due ones and claims each with a compare-and-set on `claimed_until`,
-- so exactly one fires it, and a claimer that dies is replaced once its
-- claim runs out.
CREATE TABLE timers (
    kind          TEXT NOT NULL,
    subject       TEXT NOT NULL,
    due_at        BIGINT NOT NULL,
    arg           TEXT,
    claimed_until BIGINT,
    PRIMARY KEY (kind, subject)
);

CREATE INDEX timers_by_due ON timers (due_at);
