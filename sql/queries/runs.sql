-- name: insert_run
-- Create a pending run on the workflow's current graph ($1 run id, $2 workflow id,
-- $3 trigger_type, $4 trigger_payload, $5 idempotency_key); no row when the workflow is gone.
INSERT INTO runs (id, workflow_id, trigger_type, trigger_payload, graph, idempotency_key)
SELECT $1, w.id, $3, $4, w.graph, $5
FROM workflows w
WHERE w.id = $2
RETURNING *

-- name: get_run
-- One run by id, with its node counts for progress.
SELECT r.*,
       (SELECT count(*) FROM node_runs n WHERE n.run_id = r.id) AS nodes_total,
       (SELECT count(*) FROM node_runs n
         WHERE n.run_id = r.id
           AND n.status IN ('succeeded', 'failed', 'skipped', 'cancelled')) AS nodes_done
FROM runs r
WHERE r.id = $1

-- name: list_runs
-- Runs newest first, after the cursor run $2 when given ($1 limit, $2 cursor run id or null).
SELECT r.id, r.workflow_id, r.status, r.trigger_type, r.created_at, r.started_at,
       r.finished_at, r.error
FROM runs r
WHERE $2::uuid IS NULL
   OR (r.created_at, r.id) < (SELECT c.created_at, c.id FROM runs c WHERE c.id = $2)
ORDER BY r.created_at DESC, r.id DESC
LIMIT $1

-- name: list_workflow_runs
-- A workflow's runs newest first ($1 workflow id, $2 limit, $3 cursor run id or null).
SELECT r.id, r.workflow_id, r.status, r.trigger_type, r.created_at, r.started_at,
       r.finished_at, r.error
FROM runs r
WHERE r.workflow_id = $1
  AND ($3::uuid IS NULL
       OR (r.created_at, r.id) < (SELECT c.created_at, c.id FROM runs c WHERE c.id = $3))
ORDER BY r.created_at DESC, r.id DESC
LIMIT $2

-- name: start_run
-- Mark a run running and create its pending node runs in one statement
-- ($1 run id, $2 started_at, $3 node ids, $4 node types).
WITH started AS (
    UPDATE runs SET status = 'running', started_at = $2
    WHERE id = $1 AND status = 'pending'
    RETURNING id
)
INSERT INTO node_runs (run_id, node_id, node_type, position)
SELECT started.id, n.node_id, n.node_type, n.position::integer
FROM started,
     unnest($3::text[], $4::text[]) WITH ORDINALITY AS n(node_id, node_type, position)

-- name: finish_run
-- Record a run's end ($1 run id, $2 status, $3 outputs, $4 error, $5 finished_at,
-- $6 the seq of its run.finished event).
UPDATE runs SET status = $2, outputs = $3, error = $4, finished_at = $5, event_seq = $6
WHERE id = $1

-- name: unfinished_runs
-- Runs left pending or running, oldest first.
SELECT id, workflow_id FROM runs WHERE status IN ('pending', 'running') ORDER BY created_at, id
