-- name: insert_secret
-- A new secret ($1 name, $2 encrypted value); no row when the name is taken.
INSERT INTO secrets (name, value) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
RETURNING name, created_at, updated_at

-- name: update_secret
-- A secret's new value ($1 name, $2 encrypted value); no row when there is none.
UPDATE secrets SET value = $2, updated_at = now() WHERE name = $1
RETURNING name, created_at, updated_at

-- name: delete_secret
-- Delete a secret; its name when it existed.
DELETE FROM secrets WHERE name = $1 RETURNING name

-- name: list_secrets
-- Every secret's name and times, never its value.
SELECT name, created_at, updated_at FROM secrets ORDER BY name

-- name: secret_values
-- Every secret, encrypted, for the runs that use them.
SELECT name, value FROM secrets
