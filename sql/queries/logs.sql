-- name: insert_logs
-- Append log lines in one round trip ($1 run ids, $2 node ids, $3 timestamps, $4 levels,
-- $5 messages, $6 data as a jsonb array).
INSERT INTO logs (run_id, node_id, ts, level, message, data)
SELECT l.run_id, l.node_id, l.ts, l.level, l.message, $6::jsonb -> (l.i::integer - 1)
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])
     WITH ORDINALITY AS l(run_id, node_id, ts, level, message, i)

-- name: list_logs
-- A run's log lines in order, after the cursor id $2 ($1 run id, $2 after id, $3 limit,
-- $4 only this node's lines when not null).
SELECT id, node_id, ts, level, message, data
FROM logs
WHERE run_id = $1 AND id > $2 AND ($4::text IS NULL OR node_id = $4)
ORDER BY id
LIMIT $3
