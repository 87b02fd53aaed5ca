-- When a visitor's widget was last connected (refreshed while its
-- WebSocket is open, by whichever gateway node holds it), so a waiting
-- chat whose visitor left can be ended, by any node.
ALTER TABLE conversations ADD COLUMN visitor_seen_at BIGINT;
