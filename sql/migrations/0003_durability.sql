-- Durability and limits: a run is leased by the process executing it (renewed while it
-- runs), so runs of a crashed process are found and resumed; a workflow may cap its runs in
-- flight.
ALTER TABLE runs ADD COLUMN lease_owner uuid;
ALTER TABLE runs ADD COLUMN lease_expires timestamptz;
ALTER TABLE workflows ADD COLUMN max_concurrency integer CHECK (max_concurrency > 0);
