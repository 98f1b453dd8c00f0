-- name: insert_workflow
-- Create a workflow ($1 id, $2 name, $3 webhook_slug, $4 webhook_secret, $5 graph,
-- $6 max_concurrency, $7 durability).
INSERT INTO workflows (id, name, webhook_slug, webhook_secret, graph, max_concurrency,
                       durability)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *

-- name: get_workflow
-- One workflow by id.
SELECT * FROM workflows WHERE id = $1

-- name: get_hook
-- What a webhook call needs of its workflow: its id and secret ($1 webhook slug).
SELECT id, webhook_secret FROM workflows WHERE webhook_slug = $1

-- name: list_workflows
-- Workflows, most recently updated first ($1 limit, $2 offset).
SELECT * FROM workflows ORDER BY updated_at DESC, id DESC LIMIT $1 OFFSET $2

-- name: count_workflows
-- How many workflows exist.
SELECT count(*) FROM workflows

-- name: update_workflow
-- Overwrite a workflow ($1 id, $2 name, $3 webhook_slug or null to keep it,
-- $4 webhook_secret, $5 graph, $6 max_concurrency, $7 true to keep the secret as it is,
-- $8 durability).
UPDATE workflows
SET name = $2, webhook_slug = coalesce($3, webhook_slug),
    webhook_secret = CASE WHEN $7 THEN webhook_secret ELSE $4 END,
    graph = $5, max_concurrency = $6, durability = $8, updated_at = now()
WHERE id = $1
RETURNING *

-- name: delete_idle_workflow
-- Delete a workflow that has no unfinished run; returns its id when deleted.
DELETE FROM workflows w
WHERE w.id = $1
  AND NOT EXISTS (
      SELECT 1 FROM runs r WHERE r.workflow_id = w.id AND r.status IN ('pending', 'running')
  )
RETURNING w.id
