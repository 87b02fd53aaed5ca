-- Several gateway nodes share the XMPP outbox: `node` is the node that
-- claimed a row (handed it to its component connection); NULL while no
-- node has (a node without the connection wrote it, for the one that
-- holds it). A row whose node's `xmpp-node:` lease lapsed is claimed
-- again by a live node.
ALTER TABLE xmpp_outbox ADD COLUMN node TEXT;
