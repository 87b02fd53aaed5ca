-- Ending a console user's sessions at once (a password change, an
-- operator's reset): every session remembers the epoch of its user when
-- it logged in, and counts only while that is still the user's epoch.
-- Changing the password bumps it, so the user's other sessions end and
-- none can come back (no race with a session being saved meanwhile).
ALTER TABLE admin_users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
