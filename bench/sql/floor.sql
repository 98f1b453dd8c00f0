-- The floor's statements: benchmark scaffolding, not weft's SQL (weft's lives in sql/).
-- The floor's own database and table hold the least a persisted node run needs.

-- name: database_exists
-- Whether the floor's database exists ($1 its name).
SELECT 1 FROM pg_database WHERE datname = $1

-- name: create_database
-- The floor's database (its name is this constant: identifiers cannot be parameters).
CREATE DATABASE weft_bench_floor

-- name: create_table
-- One row per node run.
CREATE TABLE IF NOT EXISTS floor_node_runs (
    id          bigserial PRIMARY KEY,
    run_id      bigint NOT NULL,
    node_id     text NOT NULL,
    status      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
)

-- name: insert_started
-- A node started ($1 run id, $2 node id).
INSERT INTO floor_node_runs (run_id, node_id, status) VALUES ($1, $2, 'running') RETURNING id

-- name: update_finished
-- A node finished ($1 its row id).
UPDATE floor_node_runs SET status = 'succeeded', finished_at = now() WHERE id = $1

-- name: server_version
-- The server's version string.
SHOW server_version
