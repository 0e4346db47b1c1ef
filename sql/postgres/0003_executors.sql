-- promptactors schema, version 3 (PostgreSQL): executors and their leases.
-- Each runtime process is an executor with a heartbeat row; it holds the runs it runs
-- through leases (ai_runs.owner_id / fence / lease_expires_at, version 2) that it renews in
-- bulk with every heartbeat. takeovers counts how often a run was reclaimed from an
-- executor whose lease expired (recovery_attempts caps it).

CREATE TABLE IF NOT EXISTS executors (
    id            text PRIMARY KEY,
    host          text NOT NULL,
    pid           integer NOT NULL,
    group_name    text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    lease_seconds double precision NOT NULL
);

ALTER TABLE ai_runs ADD COLUMN IF NOT EXISTS takeovers integer NOT NULL DEFAULT 0;

-- the bulk renewal touches the running runs of one executor
CREATE INDEX IF NOT EXISTS ai_runs_running_executor ON ai_runs (executor_id)
    WHERE status = 'running';
