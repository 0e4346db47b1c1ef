-- promptactors schema, version 3 (SQLite): executors and their leases.
-- Each runtime process is an executor with a heartbeat row; it holds the runs it runs
-- through leases (ai_runs.owner_id / fence / lease_expires_at, version 2) that it renews in
-- bulk with every heartbeat. takeovers counts how often a run was reclaimed from an
-- executor whose lease expired (recovery_attempts caps it).

CREATE TABLE executors (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    group_name    TEXT,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    lease_seconds REAL NOT NULL
);

ALTER TABLE ai_runs ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;

-- the bulk renewal touches the running runs of one executor
CREATE INDEX ai_runs_running_executor ON ai_runs (executor_id) WHERE status = 'running';
