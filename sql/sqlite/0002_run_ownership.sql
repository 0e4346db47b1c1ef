-- promptactors schema, version 2 (SQLite): run ownership.
-- A run is continued by at most one owner (an instance, later an executor). owner_id is
-- NULL when the run is free; fence is the fencing token, grown by every claim or takeover
-- (0 for a run never claimed); lease_expires_at NULL means held until released, a time
-- means a lease another owner may take over once it has passed.

ALTER TABLE ai_runs ADD COLUMN owner_id TEXT;
ALTER TABLE ai_runs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ai_runs ADD COLUMN lease_expires_at TEXT;

-- reclaiming expired leases scans only the runs under a lease
CREATE INDEX ai_runs_lease ON ai_runs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
