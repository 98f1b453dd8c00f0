-- Rate limits on a workflow's triggers (its webhook, POST /workflows/{id}/run and
-- /runs/batch): at most rate_limit_requests runs per rate_limit_per_s seconds, across every
-- process, enforced by a GCRA (generic cell rate algorithm) on one row per limited workflow
-- (sql/queries/rate_limits.sql). Both columns are set, or neither (no limit).
ALTER TABLE workflows ADD COLUMN rate_limit_requests integer
    CHECK (rate_limit_requests BETWEEN 1 AND 1000000);
ALTER TABLE workflows ADD COLUMN rate_limit_per_s double precision
    CHECK (rate_limit_per_s > 0 AND rate_limit_per_s <= 86400);
ALTER TABLE workflows ADD CONSTRAINT workflows_rate_limit_check
    CHECK ((rate_limit_requests IS NULL) = (rate_limit_per_s IS NULL));
-- tat: the theoretical arrival time, in seconds since the epoch. numeric, not timestamptz:
-- an emission interval (per_s / requests) rounded to a microsecond each time would drift by
-- up to a microsecond per cell, a whole window with a million requests. refused: whether
-- the last request was refused (the statement that takes cells reports it from the row).
CREATE TABLE rate_limits (
    workflow_id uuid PRIMARY KEY REFERENCES workflows (id) ON DELETE CASCADE,
    tat         numeric NOT NULL,
    refused     boolean NOT NULL DEFAULT false
);
