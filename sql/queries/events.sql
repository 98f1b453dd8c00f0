-- name: last_event_seq
-- The seq of a run's last logged event, 0 when none ($1 run id).
SELECT COALESCE(max(seq), 0) FROM run_events WHERE run_id = $1

-- name: run_events_after
-- A run's logged events after a seq, as log rows in seq order ($1 run id, $2 after); the
-- first row may also hold events at or before $2.
SELECT events FROM run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq

-- name: events_after
-- Several runs' logged events, each after its own seq ($1 run ids, $2 afters), in seq
-- order per run.
SELECT e.run_id, e.events
FROM unnest($1::uuid[], $2::integer[]) AS k(run_id, after)
JOIN run_events e ON e.run_id = k.run_id AND e.seq > k.after
ORDER BY e.run_id, e.seq

-- name: prune_run_events
-- Forget the events of the next runs (oldest first) finished after a cursor and before a
-- cutoff ($1 cutoff, $2 at most this many runs, $3 cursor: the last finished_at pruned);
-- returns the new cursor (null when there was nothing to prune). A snapshot still answers
-- for such runs.
WITH old AS (
    SELECT r.id, r.finished_at FROM runs r
    WHERE r.finished_at > $3 AND r.finished_at < $1
    ORDER BY r.finished_at
    LIMIT $2
), gone AS (
    DELETE FROM run_events e USING old WHERE e.run_id = old.id
)
SELECT max(finished_at) FROM old

-- name: other_listeners
-- How many other weft processes listen for wake-ups on this database, and how many of them
-- follow runs ($1 this process's origin; see runner/store/listener.py for the names).
SELECT count(*) AS listening,
       count(*) FILTER (WHERE application_name LIKE '% following') AS following
FROM pg_stat_activity
WHERE datname = current_database()
  AND application_name LIKE 'weft-listener %'
  AND application_name NOT LIKE 'weft-listener ' || $1 || '%'

-- name: set_application_name
-- Name this session ($1 the name: how other processes see a listener, see listener.py).
SELECT set_config('application_name', $1, false)
