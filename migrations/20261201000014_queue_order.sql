-- A queue's waiting line in order (queued or ringing, oldest first, the
-- id breaking ties): a new chat counts who is ahead of it, dispatch reads
-- the line's head a page at a time and the position task ranks a whole
-- queue, each as one range of this index instead of a scan of every open
-- conversation. Partial, so the ever-growing ended chats are not in it;
-- queries name the same states literally for both databases to use it.
CREATE INDEX conversations_waiting_by_queue ON conversations (queue_extension, queued_at, created_at, id)
    WHERE state IN ('queued', 'offered');
