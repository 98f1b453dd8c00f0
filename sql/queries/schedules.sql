-- name: insert_schedule
-- A workflow's new schedule ($1 id, $2 workflow id, $3 cron, $4 time zone, $5 payload,
-- $6 enabled, $7 next fire time). No row when the workflow does not exist.
INSERT INTO schedules (id, workflow_id, cron, timezone, payload, enabled, next_fire_at)
SELECT $1, w.id, $3, $4, $5, $6, $7 FROM workflows w WHERE w.id = $2
RETURNING *

-- name: get_schedule
-- One schedule by id.
SELECT * FROM schedules WHERE id = $1

-- name: list_schedules
-- A workflow's schedules, oldest first ($1 workflow id).
SELECT * FROM schedules WHERE workflow_id = $1 ORDER BY created_at, id

-- name: update_schedule
-- Overwrite a schedule ($1 id, $2 cron, $3 time zone, $4 payload, $5 enabled, $6 next fire).
UPDATE schedules
SET cron = $2, timezone = $3, payload = $4, enabled = $5, next_fire_at = $6,
    updated_at = now()
WHERE id = $1
RETURNING *

-- name: delete_schedule
-- Delete a schedule; its id when it existed.
DELETE FROM schedules WHERE id = $1 RETURNING id

-- name: due_schedules
-- Enabled schedules whose next fire time is at or before $1, earliest first ($2 at most).
SELECT * FROM schedules
WHERE enabled AND next_fire_at <= $1
ORDER BY next_fire_at
LIMIT $2

-- name: advance_schedule
-- Move a fired schedule on, only if nobody did meanwhile ($1 id, $2 the next fire time it
-- was found with, $3 the new one, $4 the slot it fired for). No row when another process
-- moved it first (or it was changed or disabled).
UPDATE schedules
SET next_fire_at = $3, last_fired_at = $4
WHERE id = $1 AND enabled AND next_fire_at = $2
RETURNING id
