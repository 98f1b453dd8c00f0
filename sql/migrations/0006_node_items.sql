-- The items of a node that runs once per item (for_each): each finished item's output or
-- error, committed as it finishes, so that a resumed run runs only the items left.
CREATE TABLE node_items (
    run_id      uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    node_id     text NOT NULL,
    idx         integer NOT NULL,
    output      jsonb,
    error       jsonb,
    finished_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, node_id, idx)
);
