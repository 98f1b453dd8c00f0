-- name: list_node_runs
-- A run's node runs in graph order.
SELECT node_id, node_type, status, attempt, started_at, finished_at, input, output, error
FROM node_runs
WHERE run_id = $1
ORDER BY position

-- name: reset_unfinished_nodes
-- On resume: every node whose success was not committed runs again ($1 run id).
UPDATE node_runs
SET status = 'pending', started_at = NULL, finished_at = NULL, output = NULL, error = NULL
WHERE run_id = $1 AND status <> 'succeeded'
