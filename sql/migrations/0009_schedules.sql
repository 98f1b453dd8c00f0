-- Schedules: a workflow run on a cron, in a time zone. next_fire_at is the next slot (null
-- while disabled); whichever process finds it due starts the run, keyed by the slot
-- (runs' unique idempotency key), then moves next_fire_at on with a compare-and-set: a slot
-- fires once however many processes look.
CREATE TABLE schedules (
    id            uuid PRIMARY KEY,
    workflow_id   uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    cron          text NOT NULL CHECK (char_length(cron) <= 200),
    timezone      text NOT NULL DEFAULT 'UTC' CHECK (char_length(timezone) <= 100),
    payload       jsonb NOT NULL DEFAULT '{}',
    enabled       boolean NOT NULL DEFAULT true,
    next_fire_at  timestamptz,
    last_fired_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_workflow ON schedules (workflow_id, created_at);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE enabled;

ALTER TABLE runs DROP CONSTRAINT runs_trigger_type_check;
ALTER TABLE runs ADD CONSTRAINT runs_trigger_type_check
    CHECK (trigger_type IN ('manual', 'webhook', 'workflow', 'rerun', 'schedule'));
