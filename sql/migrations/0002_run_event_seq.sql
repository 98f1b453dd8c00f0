-- The seq of a run's last live event (run.finished), so a client reconnecting after the
-- run's events left memory still gets consistent sequence numbers.
ALTER TABLE runs ADD COLUMN event_seq integer NOT NULL DEFAULT 0;
