-- name: node_run_started
-- A node began an attempt ($1 run id, $2 node id, $3 started_at, $4 input, $5 attempt).
UPDATE node_runs SET status = 'running', started_at = $3, input = $4, attempt = $5
WHERE run_id = $1 AND node_id = $2

-- name: node_run_finished
-- A node ended ($1 run id, $2 node id, $3 status, $4 finished_at, $5 output, $6 error).
UPDATE node_runs SET status = $3, finished_at = $4, output = $5, error = $6
WHERE run_id = $1 AND node_id = $2

-- name: node_runs_skipped
-- Nodes that will never run ($1 run id, $2 node ids).
UPDATE node_runs SET status = 'skipped'
WHERE run_id = $1 AND node_id = ANY($2::text[]) AND status = 'pending'

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

-- name: node_run_interrupted
-- A node stopped by a shutdown goes back to pending, to run again on resume
-- ($1 run id, $2 node id).
UPDATE node_runs SET status = 'pending', finished_at = NULL
WHERE run_id = $1 AND node_id = $2

-- name: cancel_unfinished_nodes
-- Cancel every node of a run that has not finished ($1 run id, $2 finished_at).
UPDATE node_runs SET status = 'cancelled', finished_at = $2
WHERE run_id = $1 AND status IN ('pending', 'running')
