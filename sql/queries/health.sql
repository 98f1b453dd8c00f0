-- name: ping
-- The database answers.
SELECT 1
