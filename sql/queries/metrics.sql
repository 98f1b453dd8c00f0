-- name: count_pending_runs
-- How many runs wait to start, in every process (GET /metrics); by the runs_unfinished index.
SELECT count(*) FROM runs WHERE status = 'pending'
