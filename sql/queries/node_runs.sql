-- name: list_node_runs
-- A run's node runs in graph order ($1 run id). No row when the run does not exist; a row
-- of nulls when it has no nodes. A for_each node's items: how many (its input's list) and
-- how many have finished.
SELECT n.node_id, n.node_type, n.status, n.attempt, n.started_at, n.finished_at, n.input,
       n.output, n.error,
       CASE WHEN jsonb_typeof(n.input -> 'for_each') = 'array'
            THEN jsonb_array_length(n.input -> 'for_each') END AS items_total,
       CASE WHEN jsonb_typeof(n.input -> 'for_each') = 'array'
            THEN (SELECT count(*) FROM node_items i
                  WHERE i.run_id = n.run_id AND i.node_id = n.node_id) END AS items_done
FROM runs r
LEFT JOIN node_runs n ON n.run_id = r.id
WHERE r.id = $1
ORDER BY n.position

-- name: list_node_items
-- The finished items of a for_each node ($1 run id, $2 node id), by index.
SELECT idx, output, error FROM node_items WHERE run_id = $1 AND node_id = $2 ORDER BY idx
