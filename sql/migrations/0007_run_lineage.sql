-- Where a run comes from: the run whose workflow.run node started it (parent_run_id, with
-- its nesting depth), or the run it re-runs (rerun_of, and the nodes it runs again; the
-- others' outputs are copied). Plain ids, not foreign keys: a parent or an original may be
-- deleted with its workflow while the runs it led to stay.
ALTER TABLE runs ADD COLUMN parent_run_id uuid;
ALTER TABLE runs ADD COLUMN depth integer NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN rerun_of uuid;
ALTER TABLE runs ADD COLUMN rerun_nodes text[];
-- A parent's unfinished children are found to cancel them with it.
CREATE INDEX runs_children ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
-- Runs started by a workflow.run node, and re-runs, say so.
ALTER TABLE runs DROP CONSTRAINT runs_trigger_type_check;
ALTER TABLE runs ADD CONSTRAINT runs_trigger_type_check
    CHECK (trigger_type IN ('manual', 'webhook', 'workflow', 'rerun'));
