-- How far the agent's client has confirmed the visitor's messages, so a
-- receipt that confirms nothing new is not stored again, and a receipt is
-- never stored for a seq the conversation does not have.
ALTER TABLE conversations ADD COLUMN delivered_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN read_seq BIGINT NOT NULL DEFAULT 0;
