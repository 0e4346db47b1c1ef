-- promptactors schema, version 1 (SQLite).
-- Ids are text (UUID strings or any other stable key). JSON is stored as TEXT.
-- Timestamps are UTC ISO-8601 text with microseconds, so they sort as text.

CREATE TABLE prompts (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    description       TEXT,
    messages          TEXT NOT NULL DEFAULT '[]',   -- [{role, content}]
    variable_defaults TEXT NOT NULL DEFAULT '[]',   -- [{name, default_value, help_text}]
    settings          TEXT NOT NULL DEFAULT '{}',   -- model configuration
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE prompt_builtins (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    description       TEXT,
    messages          TEXT NOT NULL DEFAULT '[]',
    variable_defaults TEXT NOT NULL DEFAULT '[]',
    settings          TEXT NOT NULL DEFAULT '{}',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE prompt_actions (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    prompt_id          TEXT NOT NULL,
    prompt_source      TEXT NOT NULL DEFAULT 'prompts'
                       CHECK (prompt_source IN ('prompts', 'prompt_builtins')),
    broker_mappings    TEXT NOT NULL DEFAULT '{}',  -- {variable_name: broker_id}
    optional_variables TEXT NOT NULL DEFAULT '[]',  -- mapped variables a failing broker may skip
    hardcoded_values   TEXT NOT NULL DEFAULT '{}',
    execution_config   TEXT NOT NULL DEFAULT '{}',
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE TABLE ai_runs (
    id            TEXT PRIMARY KEY,
    prompt_id     TEXT,
    prompt_source TEXT NOT NULL DEFAULT 'prompts',
    instance_id   TEXT,
    name          TEXT,
    status        TEXT NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    error         TEXT,
    messages      TEXT NOT NULL DEFAULT '[]',
    variables     TEXT NOT NULL DEFAULT '{}',
    settings      TEXT NOT NULL DEFAULT '{}',
    message_count INTEGER NOT NULL DEFAULT 0,
    task_count    INTEGER NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens  INTEGER NOT NULL DEFAULT 0,
    total_cost    REAL NOT NULL DEFAULT 0,
    executor_id   TEXT,
    heartbeat_at  TEXT,
    version       INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE INDEX ai_runs_status_executor ON ai_runs (status, executor_id);
CREATE INDEX ai_runs_status_heartbeat ON ai_runs (status, heartbeat_at);
CREATE INDEX ai_runs_instance ON ai_runs (instance_id);
CREATE INDEX ai_runs_created ON ai_runs (created_at);

CREATE TABLE ai_tasks (
    id                  TEXT PRIMARY KEY,
    run_id              TEXT REFERENCES ai_runs (id) ON DELETE CASCADE,
    instance_id         TEXT,
    attempt             INTEGER NOT NULL DEFAULT 1,
    status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    provider            TEXT NOT NULL,
    model               TEXT NOT NULL,
    request             TEXT NOT NULL DEFAULT '[]',  -- the resolved messages sent
    response_text       TEXT NOT NULL DEFAULT '',    -- partial for interrupted tasks
    input_tokens        INTEGER,
    output_tokens       INTEGER,
    cached_tokens       INTEGER,
    usage_source        TEXT,
    cost                REAL,
    time_to_first_token REAL,                        -- seconds
    total_time          REAL,                        -- seconds
    finish_reason       TEXT,
    error               TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    completed_at        TEXT
);

CREATE INDEX ai_tasks_run ON ai_tasks (run_id, attempt);
CREATE INDEX ai_tasks_status ON ai_tasks (status);

CREATE TABLE user_variables (
    user_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE org_variables (
    org_id     TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, key)
);

CREATE TABLE project_variables (
    project_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, key)
);

-- Values read by the store-backed broker. scope_kind 'global' uses scope_id ''.
CREATE TABLE broker_values (
    broker_id  TEXT NOT NULL,
    scope_kind TEXT NOT NULL,
    scope_id   TEXT NOT NULL DEFAULT '',
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (broker_id, scope_kind, scope_id)
);
