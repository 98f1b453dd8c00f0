-- name: get_rate_limit
-- A workflow's rate limit ($1 workflow id): requests and per_s, both null without one; no
-- row when the workflow does not exist.
SELECT rate_limit_requests, rate_limit_per_s FROM workflows WHERE id = $1

-- name: take_rate_limit
-- Take $2 cells (one per run to start) of workflow $1's rate limit, by GCRA: with the
-- emission interval T = per_s / requests, they fit when max(tat, now) + $2 T - now <= per_s
-- (`requests` at once after a quiet period), and then tat := max(tat, now) + $2 T. One
-- statement: the upsert locks the workflow's row and ON CONFLICT DO UPDATE computes on its
-- latest version, so two processes never both take the last cell; now is the database's
-- clock, which every process shares. Returns `taken` and, when refused, `wait_s`: the
-- seconds until the cells fit (null: never, more cells than `requests`). No row when the
-- workflow has no limit, or is gone. tat is first cut to now + per_s: a no-op under one
-- limit (a taken cell leaves it at most per_s ahead), and after per_s was lowered it drops
-- the debt beyond the new window. The 1e-9 s of slack absorbs the rounding of T (a numeric
-- division, ~1e-20 s), far below the clock's microsecond.
WITH lim AS (
    SELECT w.id, w.rate_limit_per_s::numeric AS s,
           $2::integer * (w.rate_limit_per_s::numeric / w.rate_limit_requests) AS kt,
           extract(epoch FROM clock_timestamp()) AS now
    FROM workflows w
    WHERE w.id = $1 AND w.rate_limit_requests IS NOT NULL
), taken AS (
    INSERT INTO rate_limits AS r (workflow_id, tat, refused)
    SELECT l.id, CASE WHEN l.kt <= l.s + 1e-9 THEN l.now + l.kt ELSE l.now END,
           l.kt > l.s + 1e-9
    FROM lim l
    ON CONFLICT (workflow_id) DO UPDATE
    SET (tat, refused) = (
        SELECT CASE WHEN n.tat - l.now <= l.s + 1e-9 THEN n.tat ELSE r.tat END,
               n.tat - l.now > l.s + 1e-9
        FROM lim l, LATERAL (SELECT greatest(least(r.tat, l.now + l.s), l.now) + l.kt AS tat) n
    )
    RETURNING r.tat, r.refused
)
SELECT NOT t.refused AS taken,
       CASE WHEN t.refused AND l.kt <= l.s + 1e-9
            THEN greatest(least(t.tat, l.now + l.s), l.now) + l.kt - l.s - l.now END AS wait_s
FROM taken t, lim l
