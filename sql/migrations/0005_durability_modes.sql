-- A workflow's durability mode, copied onto each of its runs (the mode a run executes
-- and is resumed with): sync (a node's success is committed before its children start),
-- async (results committed in the background, grouped), exit (persisted at the run's end).
ALTER TABLE workflows ADD COLUMN durability text NOT NULL DEFAULT 'sync'
    CHECK (durability IN ('sync', 'async', 'exit'));
ALTER TABLE runs ADD COLUMN durability text NOT NULL DEFAULT 'sync'
    CHECK (durability IN ('sync', 'async', 'exit'));
