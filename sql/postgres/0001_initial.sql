-- promptactors schema, version 1 (PostgreSQL).
-- Ids are text so that UUID strings and other stable keys are accepted alike.

CREATE TABLE prompts (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    description       text,
    messages          jsonb NOT NULL DEFAULT '[]',   -- [{role, content}]
    variable_defaults jsonb NOT NULL DEFAULT '[]',   -- [{name, default_value, help_text}]
    settings          jsonb NOT NULL DEFAULT '{}',   -- model configuration
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prompt_builtins (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    description       text,
    messages          jsonb NOT NULL DEFAULT '[]',
    variable_defaults jsonb NOT NULL DEFAULT '[]',
    settings          jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prompt_actions (
    id                 text PRIMARY KEY,
    name               text NOT NULL,
    prompt_id          text NOT NULL,
    prompt_source      text NOT NULL DEFAULT 'prompts'
                       CHECK (prompt_source IN ('prompts', 'prompt_builtins')),
    broker_mappings    jsonb NOT NULL DEFAULT '{}',  -- {variable_name: broker_id}
    optional_variables jsonb NOT NULL DEFAULT '[]',  -- mapped variables a failing broker may skip
    hardcoded_values   jsonb NOT NULL DEFAULT '{}',
    execution_config   jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ai_runs (
    id            text PRIMARY KEY,
    prompt_id     text,
    prompt_source text NOT NULL DEFAULT 'prompts',
    instance_id   text,
    name          text,
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    error         text,
    messages      jsonb NOT NULL DEFAULT '[]',
    variables     jsonb NOT NULL DEFAULT '{}',
    settings      jsonb NOT NULL DEFAULT '{}',
    message_count integer NOT NULL DEFAULT 0,
    task_count    integer NOT NULL DEFAULT 0,
    input_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cached_tokens bigint NOT NULL DEFAULT 0,
    total_tokens  bigint NOT NULL DEFAULT 0,
    total_cost    double precision NOT NULL DEFAULT 0,
    executor_id   text,
    heartbeat_at  timestamptz,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ai_runs_status_executor ON ai_runs (status, executor_id);
-- recovery scans only the runs still running
CREATE INDEX ai_runs_running_heartbeat ON ai_runs (heartbeat_at) WHERE status = 'running';
CREATE INDEX ai_runs_instance ON ai_runs (instance_id);
CREATE INDEX ai_runs_created ON ai_runs (created_at);

CREATE TABLE ai_tasks (
    id                  text PRIMARY KEY,
    run_id              text REFERENCES ai_runs (id) ON DELETE CASCADE,
    instance_id         text,
    attempt             integer NOT NULL DEFAULT 1,
    status              text NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    provider            text NOT NULL,
    model               text NOT NULL,
    request             jsonb NOT NULL DEFAULT '[]',  -- the resolved messages sent
    response_text       text NOT NULL DEFAULT '',     -- partial for interrupted tasks
    input_tokens        integer,
    output_tokens       integer,
    cached_tokens       integer,
    usage_source        text,
    cost                double precision,
    time_to_first_token double precision,             -- seconds
    total_time          double precision,             -- seconds
    finish_reason       text,
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz
);

CREATE INDEX ai_tasks_run ON ai_tasks (run_id, attempt);
CREATE INDEX ai_tasks_running ON ai_tasks (run_id) WHERE status = 'running';

CREATE TABLE user_variables (
    user_id    text NOT NULL,
    key        text NOT NULL,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

CREATE TABLE org_variables (
    org_id     text NOT NULL,
    key        text NOT NULL,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);

CREATE TABLE project_variables (
    project_id text NOT NULL,
    key        text NOT NULL,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, key)
);

-- Values read by the store-backed broker. scope_kind 'global' uses scope_id ''.
CREATE TABLE broker_values (
    broker_id  text NOT NULL,
    scope_kind text NOT NULL,
    scope_id   text NOT NULL DEFAULT '',
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (broker_id, scope_kind, scope_id)
);
