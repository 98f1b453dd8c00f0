-- name: lock_migrations
-- Serialise migrators across processes (session-level advisory lock, key "weft:migrate").
SELECT pg_advisory_lock(7165190013)

-- name: unlock_migrations
-- Release the migration lock.
SELECT pg_advisory_unlock(7165190013)

-- name: create_schema_migrations
-- The record of applied migrations.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied_migrations
-- Versions already applied.
SELECT version FROM schema_migrations ORDER BY version

-- name: record_migration
-- Record one applied migration ($1 version, $2 name).
INSERT INTO schema_migrations (version, name) VALUES ($1, $2)
