-- name: insert_workflow
-- Create a workflow ($1 id, $2 name, $3 webhook_slug, $4 webhook_secret, $5 graph,
-- $6 max_concurrency, $7 durability, $8 description, $9 tags, $10 and $11 the rate limit's
-- requests and per_s, null for none).
INSERT INTO workflows (id, name, webhook_slug, webhook_secret, graph, max_concurrency,
                       durability, description, tags, rate_limit_requests, rate_limit_per_s)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING *

-- name: get_workflow
-- One workflow by id.
SELECT * FROM workflows WHERE id = $1

-- name: get_hook
-- What a webhook call needs of its workflow: its id, secret and rate limit ($1 webhook
-- slug).
SELECT id, webhook_secret, rate_limit_requests, rate_limit_per_s
FROM workflows WHERE webhook_slug = $1

-- name: list_workflows
-- Workflows, most recently updated first ($1 limit, $2 offset), those whose name holds $3
-- (any case; every character literal) and those tagged $4 (null: no such filter). By
-- workflows_newest: a substring can use no btree (see migration 0008); by workflows_tags
-- for a tag.
SELECT * FROM workflows w
WHERE ($3::text IS NULL OR strpos(lower(w.name), lower($3)) > 0)
  AND ($4::text IS NULL OR w.tags @> ARRAY[$4])
ORDER BY w.updated_at DESC, w.id DESC
LIMIT $1 OFFSET $2

-- name: count_workflows
-- How many workflows list_workflows' filters keep ($1 name part, $2 tag; null: no such
-- filter). With a name part alone every workflow is read: no index serves a substring.
SELECT count(*) FROM workflows w
WHERE ($1::text IS NULL OR strpos(lower(w.name), lower($1)) > 0)
  AND ($2::text IS NULL OR w.tags @> ARRAY[$2])

-- name: update_workflow
-- Overwrite a workflow ($1 id, $2 name, $3 webhook_slug or null to keep it,
-- $4 webhook_secret, $5 graph, $6 max_concurrency, $7 true to keep the secret as it is,
-- $8 durability, $9 description or null to keep it, $10 tags or null to keep them,
-- $11 and $12 the rate limit's requests and per_s, null for none).
UPDATE workflows
SET name = $2, webhook_slug = coalesce($3, webhook_slug),
    webhook_secret = CASE WHEN $7 THEN webhook_secret ELSE $4 END,
    graph = $5, max_concurrency = $6, durability = $8,
    description = coalesce($9, description), tags = coalesce($10::text[], tags),
    rate_limit_requests = $11, rate_limit_per_s = $12,
    updated_at = now()
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
