-- name: insert_runs
-- Create pending runs, each on its workflow's current graph (or its own: a re-run's), with a
-- pending node run per node in the graph's order, in one statement and one commit: one run
-- alone, the runs concurrent requests start (runner/store/run_inserts.py) or a batch. One
-- array element per run: $1 run ids, $2 workflow ids, $3 trigger types, $4 payloads, $5
-- idempotency keys, $6 webhook slugs, $7 their secrets, $8 whether this process has room for
-- it, $9 parent runs, $10 nesting depths, $11 lease owners, $12 lease seconds, $13 the runs
-- re-run, $14 the nodes that run again (JSON arrays), $15 the graphs to run (null: the
-- workflow's own).
-- A run is leased to its owner only with room and when its workflow sets no
-- max_concurrency (a limit held across processes: such runs are claimed with
-- claim_pending_runs). With a slug, only while the workflow still has that slug and secret
-- (a webhook call checked against a cached copy). No row for a run whose workflow is gone
-- or whose webhook changed, or whose idempotency key was used already (the caller tells
-- which). Each run is created a microsecond after the one before it, so that history lists
-- them in the order asked for; rows go in key order, so that two processes inserting the
-- same keys wait rather than deadlock. The other processes are told of new runs by the
-- writer's next commit (a NOTIFY here would serialise every commit behind a global lock).
WITH new AS (
    SELECT *
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::text[],
                $7::text[], $8::boolean[], $9::uuid[], $10::integer[], $11::uuid[],
                $12::float8[], $13::uuid[], $14::jsonb[], $15::jsonb[])
         WITH ORDINALITY AS n(id, workflow_id, trigger_type, payload, idempotency_key, slug,
                              secret, take, parent_run_id, depth, lease_owner, lease_s,
                              rerun_of, rerun_nodes, graph, position)
), run AS (
    INSERT INTO runs (id, workflow_id, trigger_type, trigger_payload, graph, idempotency_key,
                      lease_owner, lease_expires, durability, parent_run_id, depth,
                      rerun_of, rerun_nodes, created_at)
    SELECT new.id, w.id, new.trigger_type, new.payload, COALESCE(new.graph, w.graph),
           new.idempotency_key,
           CASE WHEN new.take AND w.max_concurrency IS NULL THEN new.lease_owner END,
           CASE WHEN new.take AND w.max_concurrency IS NULL
                THEN now() + make_interval(secs => new.lease_s) END,
           w.durability, new.parent_run_id, new.depth, new.rerun_of,
           CASE WHEN new.rerun_nodes IS NOT NULL
                THEN ARRAY(SELECT jsonb_array_elements_text(new.rerun_nodes)) END,
           now() + make_interval(secs => (new.position - 1) / 1e6)
    FROM new
    JOIN workflows w ON w.id = new.workflow_id
    WHERE new.slug IS NULL
       OR (w.webhook_slug = new.slug AND w.webhook_secret IS NOT DISTINCT FROM new.secret)
    ORDER BY new.workflow_id, new.idempotency_key, new.position
    ON CONFLICT (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), nodes AS (
    INSERT INTO node_runs (run_id, node_id, node_type, position)
    SELECT run.id, n.node ->> 'id', n.node ->> 'type', n.position::integer
    FROM run, jsonb_array_elements(run.graph -> 'nodes') WITH ORDINALITY AS n(node, position)
)
SELECT * FROM run

-- name: get_run_by_idempotency_key
-- The run a workflow started for an idempotency key ($1 workflow id, $2 key).
SELECT * FROM runs WHERE workflow_id = $1 AND idempotency_key = $2

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
-- Runs newest first, after the cursor run when given, with the filters that are set ($1
-- limit, $2 cursor run id, $3 statuses, $4 trigger types, $5 created at or after, $6
-- created before, $7 parent run id; null: no such filter). PostgreSQL plans a prepared
-- statement for its values (a custom plan) while a plan for any values would cost more,
-- which it does here past a few rows, as it could use none of the filters' indexes: a
-- filter left null folds away and each one set finds its index
-- (tests/integration/test_schema.py pins the plans).
SELECT r.id, r.workflow_id, r.status, r.trigger_type, r.created_at, r.started_at,
       r.finished_at, r.error, r.parent_run_id, r.depth, r.rerun_of
FROM runs r
WHERE ($2::uuid IS NULL
       OR (r.created_at, r.id) < (SELECT c.created_at, c.id FROM runs c WHERE c.id = $2))
  AND ($3::text[] IS NULL OR r.status = ANY($3))
  AND ($4::text[] IS NULL OR r.trigger_type = ANY($4))
  AND ($5::timestamptz IS NULL OR r.created_at >= $5)
  AND ($6::timestamptz IS NULL OR r.created_at < $6)
  AND ($7::uuid IS NULL OR r.parent_run_id = $7)
ORDER BY r.created_at DESC, r.id DESC
LIMIT $1

-- name: list_workflow_runs
-- A workflow's runs newest first, with list_runs' filters ($1 workflow id, $2 limit, $3
-- cursor run id, $4 statuses, $5 trigger types, $6 created at or after, $7 created before,
-- $8 parent run id; null: no such filter).
SELECT r.id, r.workflow_id, r.status, r.trigger_type, r.created_at, r.started_at,
       r.finished_at, r.error, r.parent_run_id, r.depth, r.rerun_of
FROM runs r
WHERE r.workflow_id = $1
  AND ($3::uuid IS NULL
       OR (r.created_at, r.id) < (SELECT c.created_at, c.id FROM runs c WHERE c.id = $3))
  AND ($4::text[] IS NULL OR r.status = ANY($4))
  AND ($5::text[] IS NULL OR r.trigger_type = ANY($5))
  AND ($6::timestamptz IS NULL OR r.created_at >= $6)
  AND ($7::timestamptz IS NULL OR r.created_at < $7)
  AND ($8::uuid IS NULL OR r.parent_run_id = $8)
ORDER BY r.created_at DESC, r.id DESC
LIMIT $2

-- name: claim_orphaned_runs
-- Lease to this process the unfinished runs nobody holds (their process stopped or died),
-- oldest first ($1 lease owner, $2 lease seconds, $3 at most this many, $4 also the runs
-- leased to this owner already: at start, those of this instance's previous process).
-- Pending runs that were never taken wait for claim_pending_runs (it keeps the limits).
UPDATE runs
SET lease_owner = $1, lease_expires = now() + make_interval(secs => $2)
WHERE id IN (
    SELECT id FROM runs
    WHERE status IN ('pending', 'running')
      AND (lease_expires < now() OR (status = 'running' AND lease_owner IS NULL)
           OR ($4 AND lease_owner = $1))
    ORDER BY created_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING *

-- name: claim_pending_runs
-- Lease to this process up to $3 pending runs that nobody holds, oldest first, in creation
-- order per workflow, without exceeding any workflow's max_concurrency across processes
-- ($1 lease owner, $2 lease seconds, $3 at most this many). Each workflow with waiting runs
-- is locked while its runs are counted and claimed, so that two processes never both take
-- its last slot; one that another process is claiming is skipped (it is woken again).
WITH waiting AS (
    SELECT DISTINCT r.workflow_id FROM runs r
    WHERE r.status = 'pending' AND r.lease_owner IS NULL
), locked AS (
    SELECT w.id, w.max_concurrency FROM workflows w
    WHERE w.id IN (SELECT workflow_id FROM waiting)
    FOR NO KEY UPDATE OF w SKIP LOCKED
), busy AS (
    -- A running run holds a slot even while nobody leases it (released by a shutdown,
    -- waiting to be resumed).
    SELECT r.workflow_id, count(*) AS n FROM runs r
    WHERE r.workflow_id IN (SELECT id FROM locked WHERE max_concurrency IS NOT NULL)
      AND (r.status = 'running' OR (r.status = 'pending' AND r.lease_owner IS NOT NULL))
    GROUP BY r.workflow_id
), ranked AS (
    SELECT r.id, r.created_at,
           row_number() OVER (PARTITION BY r.workflow_id ORDER BY r.created_at, r.id) AS k,
           l.max_concurrency - COALESCE(b.n, 0) AS free
    FROM runs r
    JOIN locked l ON l.id = r.workflow_id
    LEFT JOIN busy b ON b.workflow_id = r.workflow_id
    WHERE r.status = 'pending' AND r.lease_owner IS NULL
), chosen AS (
    SELECT id FROM ranked WHERE free IS NULL OR k <= free
    ORDER BY created_at, id
    LIMIT $3
)
UPDATE runs r
SET lease_owner = $1, lease_expires = now() + make_interval(secs => $2)
FROM chosen
-- Checked again on the row as it is now: another claim or a cancel may have committed
-- since this statement's snapshot was taken.
WHERE r.id = chosen.id AND r.status = 'pending' AND r.lease_owner IS NULL
RETURNING r.*

-- name: renew_leases
-- Keep this process's unfinished runs leased ($1 lease owner, $2 lease seconds); returns
-- those whose cancel was asked (in case the wake-up was lost).
WITH renewed AS (
    UPDATE runs SET lease_expires = now() + make_interval(secs => $2)
    WHERE lease_owner = $1 AND status IN ('pending', 'running')
    RETURNING id, workflow_id, cancel_requested
)
SELECT id, workflow_id FROM renewed WHERE cancel_requested

-- name: release_leases
-- Let another start of weft resume this process's unfinished runs at once ($1 owner).
UPDATE runs SET lease_owner = NULL, lease_expires = NULL
WHERE lease_owner = $1 AND status IN ('pending', 'running')

-- name: lock_unheld_run
-- Lock an unfinished run that no live process holds but `owner` (its lease lapsed, was
-- released, or is `owner`'s), for a cancel ($1 run id, $2 owner); no row otherwise. Returns
-- the seq of its last logged event and its unfinished nodes.
SELECT COALESCE((SELECT max(e.seq) FROM run_events e WHERE e.run_id = r.id), 0) AS seq,
       ARRAY(SELECT n.node_id FROM node_runs n
             WHERE n.run_id = r.id AND n.status IN ('pending', 'running')
             ORDER BY n.position) AS unfinished
FROM runs r
WHERE r.id = $1 AND r.status IN ('pending', 'running')
  AND (r.lease_owner IS NULL OR r.lease_expires < now() OR r.lease_owner = $2)
FOR UPDATE OF r

-- name: cancel_locked_run
-- Cancel a run locked by lock_unheld_run and its unfinished nodes, and log the events that
-- report it ($1 run id, $2 finished_at, $3 seq of run.finished, $4 error, $5 first seq of
-- the events, $6 the events as a JSON array, $7 NOTIFY payloads).
WITH run AS (
    UPDATE runs SET status = 'cancelled', finished_at = $2, event_seq = $3, error = $4,
                    lease_owner = NULL, lease_expires = NULL
    WHERE id = $1
    RETURNING id
), nodes AS (
    UPDATE node_runs SET status = 'cancelled', finished_at = $2
    WHERE run_id = $1 AND status IN ('pending', 'running')
), logged AS (
    INSERT INTO run_events (run_id, first_seq, seq, events) VALUES ($1, $5, $3, $6)
), notified AS (
    SELECT pg_notify('weft', p) FROM unnest($7::text[]) AS p
)
SELECT count(*) FROM notified

-- name: request_cancel
-- Ask whichever process executes an unfinished run to cancel it ($1 run id, $2 NOTIFY
-- payloads); the flag is read back by its lease upkeep when the wake-up is lost.
WITH asked AS (
    UPDATE runs SET cancel_requested = true
    WHERE id = $1 AND status IN ('pending', 'running')
    RETURNING id
)
SELECT pg_notify('weft', p) FROM asked, unnest($2::text[]) AS p

-- name: notify
-- Wake the other processes ($1 NOTIFY payloads).
SELECT pg_notify('weft', p) FROM unnest($1::text[]) AS p

-- name: list_unfinished_children
-- The ids of the pending or running runs that a run's workflow.run nodes started ($1).
SELECT id FROM runs
WHERE parent_run_id = $1 AND status IN ('pending', 'running')
ORDER BY created_at

-- name: prune_runs
-- Delete the oldest runs finished before a cutoff ($1 cutoff, $2 at most this many), with
-- their node runs, items, logs, events and artifact records (ON DELETE CASCADE); how many
-- went. Runs another process is pruning at the same time are skipped, not waited for.
WITH old AS (
    SELECT id FROM runs
    WHERE finished_at < $1 AND status IN ('succeeded', 'failed', 'cancelled')
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM runs r USING old WHERE r.id = old.id RETURNING r.id
)
SELECT count(*) FROM gone

-- name: delete_finished_run
-- Delete a finished run with all it left (ON DELETE CASCADE) ($1 run id): its status and
-- whether it went; no row when there is no such run. An unfinished run stays.
WITH target AS (
    SELECT id, status FROM runs WHERE id = $1 FOR UPDATE
), gone AS (
    DELETE FROM runs r USING target
    WHERE r.id = target.id AND target.status IN ('succeeded', 'failed', 'cancelled')
    RETURNING r.id
)
SELECT target.status, EXISTS (SELECT 1 FROM gone) AS deleted FROM target
