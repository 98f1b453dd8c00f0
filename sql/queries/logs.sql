-- name: list_logs
-- A run's log lines in order, after the cursor id $2 ($1 run id, $2 after id, $3 limit,
-- $4 only this node's lines when not null).
SELECT id, node_id, ts, level, message, data
FROM logs
WHERE run_id = $1 AND id > $2 AND ($4::text IS NULL OR node_id = $4)
ORDER BY id
LIMIT $3
