-- name: insert_artifact
-- Record a stored artifact ($1 id, $2 run id, $3 node id, $4 uri, $5 size, $6 content type).
INSERT INTO artifacts (id, run_id, node_id, uri, size, content_type)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *

-- name: get_artifact
-- One artifact by id.
SELECT * FROM artifacts WHERE id = $1
