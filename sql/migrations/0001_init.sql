-- weft's schema: workflows, their runs, node runs, logs and artifacts.

CREATE TABLE workflows (
    id             uuid PRIMARY KEY,
    name           text NOT NULL,
    webhook_slug   text NOT NULL UNIQUE,
    webhook_secret text,
    graph          jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE runs (
    id               uuid PRIMARY KEY,
    workflow_id      uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    trigger_type     text NOT NULL CHECK (trigger_type IN ('manual', 'webhook')),
    trigger_payload  jsonb,
    graph            jsonb NOT NULL,
    idempotency_key  text,
    outputs          jsonb,
    error            jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX runs_newest ON runs (created_at DESC, id DESC);
CREATE INDEX runs_workflow_newest ON runs (workflow_id, created_at DESC, id DESC);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('pending', 'running');
CREATE UNIQUE INDEX runs_idempotency ON runs (workflow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE node_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    node_id      text NOT NULL,
    node_type    text NOT NULL,
    position     integer NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    attempt      integer NOT NULL DEFAULT 0,
    started_at   timestamptz,
    finished_at  timestamptz,
    input        jsonb,
    output       jsonb,
    error        jsonb,
    UNIQUE (run_id, node_id)
);

CREATE TABLE logs (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id   uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    node_id  text,
    ts       timestamptz NOT NULL,
    level    text NOT NULL,
    message  text NOT NULL,
    data     jsonb
);
CREATE INDEX logs_run_order ON logs (run_id, ts, id);

CREATE TABLE artifacts (
    id            uuid PRIMARY KEY,
    run_id        uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    node_id       text NOT NULL,
    uri           text NOT NULL,
    size          bigint NOT NULL,
    content_type  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX artifacts_run ON artifacts (run_id);
