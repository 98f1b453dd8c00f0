-- name: list_node_runs
-- A run's node runs in graph order ($1 run id). No row when the run does not exist; a row
-- of nulls when it has no nodes.
SELECT n.node_id, n.node_type, n.status, n.attempt, n.started_at, n.finished_at, n.input,
       n.output, n.error
FROM runs r
LEFT JOIN node_runs n ON n.run_id = r.id
WHERE r.id = $1
ORDER BY n.position
