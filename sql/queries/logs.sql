-- name: list_logs
-- A run's log lines in order, after the cursor id $2 ($1 run id, $2 after id, $3 limit,
-- $4 only this node's lines when not null). No row when the run does not exist; a row of
-- nulls when it has no such line.
SELECT l.id, l.node_id, l.ts, l.level, l.message, l.data
FROM runs r
LEFT JOIN LATERAL (
    SELECT id, node_id, ts, level, message, data
    FROM logs
    WHERE run_id = r.id AND id > $2 AND ($4::text IS NULL OR node_id = $4)
    ORDER BY id
    LIMIT $3
) l ON true
WHERE r.id = $1
ORDER BY l.id
