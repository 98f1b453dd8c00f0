-- name: write_batch
-- Everything the Writer has queued, in one statement: one round trip, one commit.
-- Each row is touched once (the Writer folds a node's start into its end, a run's start
-- into its end). Runs started ($1 ids, $2 started_at); node starts ($3 run ids, $4 node ids,
-- $5 started_at, $6 inputs, $7 attempts); node ends ($8 run ids, $9 node ids, $10 statuses,
-- $11 started_at, $12 finished_at, $13 inputs, $14 outputs, $15 errors, $16 attempts);
-- log lines ($17 run ids, $18 node ids, $19 ts, $20 levels, $21 messages, $22 data);
-- runs finished ($23 ids, $24 statuses, $25 outputs, $26 errors, $27 finished_at,
-- $28 event seqs, $29 started_at); and the events that report all this, one log row per
-- run ($30 run ids, $31 first seqs, $32 last seqs, $33 JSON arrays of events); and the
-- for_each items finished ($34 run ids, $35 node ids, $36 indexes, $37 outputs, $38 errors,
-- $39 finished_at).
WITH run_starts AS (
    -- Only a pending run starts; tested in SET, not WHERE, so that the run is found by its
    -- key rather than among every unfinished run (the partial index on status).
    UPDATE runs r
    SET status = CASE WHEN r.status = 'pending' THEN 'running' ELSE r.status END,
        started_at = CASE WHEN r.status = 'pending' THEN s.started_at ELSE r.started_at END
    FROM unnest($1::uuid[], $2::timestamptz[]) AS s(id, started_at)
    WHERE r.id = s.id
    RETURNING r.id
), node_starts AS (
    UPDATE node_runs n
    SET status = 'running', started_at = s.started_at, input = s.input, attempt = s.attempt
    FROM unnest($3::uuid[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::integer[])
         AS s(run_id, node_id, started_at, input, attempt)
    WHERE n.run_id = s.run_id AND n.node_id = s.node_id
      AND n.status IN ('pending', 'running')
    RETURNING n.id
), node_ends AS (
    UPDATE node_runs n
    SET status = e.status,
        started_at = COALESCE(e.started_at, n.started_at),
        finished_at = e.finished_at,
        input = COALESCE(e.input, n.input),
        output = e.output,
        error = e.error,
        attempt = COALESCE(e.attempt, n.attempt)
    FROM unnest($8::uuid[], $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[],
                $13::jsonb[], $14::jsonb[], $15::jsonb[], $16::integer[])
         AS e(run_id, node_id, status, started_at, finished_at, input, output, error, attempt)
    WHERE n.run_id = e.run_id AND n.node_id = e.node_id
    RETURNING n.id
), new_logs AS (
    INSERT INTO logs (run_id, node_id, ts, level, message, data)
    SELECT * FROM unnest($17::uuid[], $18::text[], $19::timestamptz[], $20::text[],
                         $21::text[], $22::jsonb[])
    RETURNING id
), run_ends AS (
    -- A run cancelled meanwhile by another process stays cancelled (tested in SET, as
    -- above, so that the run is found by its key).
    UPDATE runs r
    SET status = CASE WHEN r.status IN ('pending', 'running') THEN f.status
                      ELSE r.status END,
        outputs = CASE WHEN r.status IN ('pending', 'running') THEN f.outputs
                       ELSE r.outputs END,
        error = CASE WHEN r.status IN ('pending', 'running') THEN f.error ELSE r.error END,
        finished_at = CASE WHEN r.status IN ('pending', 'running') THEN f.finished_at
                           ELSE r.finished_at END,
        event_seq = CASE WHEN r.status IN ('pending', 'running') THEN f.event_seq
                         ELSE r.event_seq END,
        started_at = COALESCE(r.started_at, f.started_at)
    FROM unnest($23::uuid[], $24::text[], $25::jsonb[], $26::jsonb[], $27::timestamptz[],
                $28::integer[], $29::timestamptz[])
         AS f(id, status, outputs, error, finished_at, event_seq, started_at)
    WHERE r.id = f.id
    RETURNING r.id
), new_events AS (
    INSERT INTO run_events (run_id, first_seq, seq, events)
    SELECT * FROM unnest($30::uuid[], $31::integer[], $32::integer[], $33::text[])
    -- A retry of a batch that did commit (the connection dropped after) writes them once.
    ON CONFLICT (run_id, seq) DO NOTHING
    RETURNING run_id
), new_items AS (
    INSERT INTO node_items (run_id, node_id, idx, output, error, finished_at)
    SELECT * FROM unnest($34::uuid[], $35::text[], $36::integer[], $37::jsonb[],
                         $38::jsonb[], $39::timestamptz[])
    ON CONFLICT (run_id, node_id, idx) DO NOTHING
    RETURNING idx
)
SELECT (SELECT count(*) FROM run_starts) + (SELECT count(*) FROM node_starts)
     + (SELECT count(*) FROM node_ends) + (SELECT count(*) FROM new_logs)
     + (SELECT count(*) FROM run_ends) + (SELECT count(*) FROM new_events)
     + (SELECT count(*) FROM new_items)

-- name: write_node_ends
-- A batch of node ends only (the common case on a run's critical path): write_batch's
-- node_ends part alone ($1 run ids, $2 node ids, $3 statuses, $4 started_at,
-- $5 finished_at, $6 inputs, $7 outputs, $8 errors, $9 attempts), with its events
-- ($10 … $13 as write_batch's $30 … $33).
WITH new_events AS (
    INSERT INTO run_events (run_id, first_seq, seq, events)
    SELECT * FROM unnest($10::uuid[], $11::integer[], $12::integer[], $13::text[])
    ON CONFLICT (run_id, seq) DO NOTHING
), ends AS (
    UPDATE node_runs n
    SET status = e.status,
        started_at = COALESCE(e.started_at, n.started_at),
        finished_at = e.finished_at,
        input = COALESCE(e.input, n.input),
        output = e.output,
        error = e.error,
        attempt = COALESCE(e.attempt, n.attempt)
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
                $6::jsonb[], $7::jsonb[], $8::jsonb[], $9::integer[])
         AS e(run_id, node_id, status, started_at, finished_at, input, output, error, attempt)
    WHERE n.run_id = e.run_id AND n.node_id = e.node_id
    RETURNING n.id
)
SELECT count(*) FROM ends

-- name: write_node_end
-- One node end alone (a chain's critical path): write_node_ends for a single row, planned
-- without the unnest join ($1 run id, $2 node id, $3 status, $4 started_at,
-- $5 finished_at, $6 input, $7 output, $8 error, $9 attempt), with its events
-- ($10 … $13 as write_batch's $30 … $33).
WITH new_events AS (
    INSERT INTO run_events (run_id, first_seq, seq, events)
    SELECT * FROM unnest($10::uuid[], $11::integer[], $12::integer[], $13::text[])
    ON CONFLICT (run_id, seq) DO NOTHING
), ends AS (
    UPDATE node_runs
    SET status = $3,
        started_at = COALESCE($4, started_at),
        finished_at = $5,
        input = COALESCE($6, input),
        output = $7,
        error = $8,
        attempt = COALESCE($9, attempt)
    WHERE run_id = $1 AND node_id = $2
    RETURNING id
)
SELECT count(*) FROM ends
