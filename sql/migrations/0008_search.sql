-- Workflows an editor can search and run history it can filter: a workflow's description
-- and tags, and an index behind each filter of GET /workflows, GET /runs and
-- GET /workflows/{id}/runs (tests/integration/test_schema.py pins the plans). A filter on
-- created_at alone is served by runs_newest (or runs_workflow_newest for one workflow's
-- runs), one on parent_run_id by runs_children.
ALTER TABLE workflows ADD COLUMN description text NOT NULL DEFAULT ''
    CHECK (char_length(description) <= 2000);
ALTER TABLE workflows ADD COLUMN tags text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(tags) <= 20);
-- Runs in a status, or started by a kind of trigger, newest first; a workflow's runs in a
-- status (the editor's "what failed here?").
CREATE INDEX runs_status_newest ON runs (status, created_at DESC, id DESC);
CREATE INDEX runs_trigger_newest ON runs (trigger_type, created_at DESC, id DESC);
CREATE INDEX runs_workflow_status_newest ON runs (workflow_id, status, created_at DESC, id DESC);
-- Workflows having a tag (tags @> ARRAY[tag]).
CREATE INDEX workflows_tags ON workflows USING gin (tags);
-- Workflows, most recently updated first: the list's order. A name search (a substring,
-- any case) cannot use a btree, and pg_trgm, whose GIN index could serve it, is not in the
-- embedded PostgreSQL: the list walks this index in its order, testing names, and stops
-- once its page is full, which is the best plan available without it.
CREATE INDEX workflows_newest ON workflows (updated_at DESC, id DESC);
