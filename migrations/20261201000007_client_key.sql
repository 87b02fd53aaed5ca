-- Which client (a SHA-256 of its address, IPv6 by /64: never the address
-- itself) started a conversation, so one client cannot fill the queues.
ALTER TABLE conversations ADD COLUMN client_key TEXT;
CREATE INDEX conversations_by_client ON conversations (client_key, state);
