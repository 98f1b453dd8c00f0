-- The durable event log: every live event of a run, committed in the same statement as the
-- state it reports. A row is one commit's events of one run (seqs first_seq..seq, a JSON
-- array of the events as they are sent): one row per commit instead of one per event keeps
-- the writer's group commit lean. NOTIFY on channel `weft` only wakes the other processes,
-- which read the log.
CREATE TABLE run_events (
    run_id     uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq        integer NOT NULL,
    first_seq  integer NOT NULL,
    events     text NOT NULL,
    PRIMARY KEY (run_id, seq)
);
-- A cancel asked of whichever process executes the run (read back when a wake-up is lost).
ALTER TABLE runs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
-- Finished runs, oldest first: what the event log's pruning walks.
CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL;
-- Runs waiting for a process with room, in the order they are claimed.
CREATE INDEX runs_waiting ON runs (created_at, id) WHERE status = 'pending' AND lease_owner IS NULL;
