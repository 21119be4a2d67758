-- m003_query_models: the same step as the SQLite migration of that name.
--
-- Query Models (ensembles of Query LLMs) and their ordered members;
-- query_model on usage events; rollups keyed by Query Model too ('' = none),
-- so that a model's statistics cost what a Query LLM's do. The rollups are
-- rebuilt from the events, as in SQLite.

-- body is the canonical form that name hashes: member names and the weight.
CREATE TABLE query_models (
    name TEXT COLLATE "C" PRIMARY KEY,
    training_table_name TEXT COLLATE "C",
    body TEXT NOT NULL,
    weight TEXT NOT NULL,
    weight_type TEXT COLLATE "C" NOT NULL,
    members BIGINT NOT NULL,
    created BIGINT NOT NULL,
    user_id TEXT COLLATE "C" REFERENCES users(id)
);
CREATE INDEX query_models_by_created ON query_models(created, name);
CREATE INDEX query_models_by_user ON query_models(user_id);
CREATE INDEX query_models_by_training_table ON query_models(training_table_name);

-- position: the member's index in the normalized (name-sorted) order.
CREATE TABLE query_model_members (
    model TEXT COLLATE "C" NOT NULL REFERENCES query_models(name),
    position BIGINT NOT NULL,
    member TEXT COLLATE "C" NOT NULL REFERENCES query_llms(name),
    PRIMARY KEY (model, position)
);
-- Membership checks of usage events, and "which ensembles use this Query LLM".
CREATE INDEX query_model_members_by_member ON query_model_members(member, model);

ALTER TABLE usage_events ADD COLUMN query_model TEXT COLLATE "C" REFERENCES query_models(name);
-- Partial: most events may serve no Query Model, and cost this index nothing.
CREATE INDEX usage_events_by_query_model_at ON usage_events(query_model, at)
    WHERE query_model IS NOT NULL;

DROP VIEW query_llm_stats;
DROP VIEW usage_events_rfc3339;
DROP TABLE usage_hourly;
DROP TABLE usage_totals;

CREATE TABLE usage_hourly (
    name TEXT COLLATE "C" NOT NULL REFERENCES query_llms(name),
    hour BIGINT NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    query_model TEXT COLLATE "C" NOT NULL DEFAULT '',
    requests BIGINT NOT NULL CHECK (requests >= 0),
    chat_completion_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_completion_tokens >= 0),
    chat_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_prompt_tokens >= 0),
    chat_cost BIGINT NOT NULL DEFAULT 0 CHECK (chat_cost >= 0),
    embedding_completion_tokens BIGINT NOT NULL DEFAULT 0
        CHECK (embedding_completion_tokens >= 0),
    embedding_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (embedding_prompt_tokens >= 0),
    embedding_cost BIGINT NOT NULL DEFAULT 0 CHECK (embedding_cost >= 0),
    PRIMARY KEY (name, hour, user_id, query_model)
);

CREATE TABLE usage_totals (
    name TEXT COLLATE "C" NOT NULL REFERENCES query_llms(name),
    user_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    query_model TEXT COLLATE "C" NOT NULL DEFAULT '',
    requests BIGINT NOT NULL CHECK (requests >= 0),
    chat_completion_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_completion_tokens >= 0),
    chat_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_prompt_tokens >= 0),
    chat_cost BIGINT NOT NULL DEFAULT 0 CHECK (chat_cost >= 0),
    embedding_completion_tokens BIGINT NOT NULL DEFAULT 0
        CHECK (embedding_completion_tokens >= 0),
    embedding_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (embedding_prompt_tokens >= 0),
    embedding_cost BIGINT NOT NULL DEFAULT 0 CHECK (embedding_cost >= 0),
    PRIMARY KEY (name, user_id, query_model)
);
CREATE INDEX usage_totals_by_user ON usage_totals(user_id, name);
CREATE INDEX usage_hourly_by_query_model ON usage_hourly(query_model, hour, user_id);
CREATE INDEX usage_totals_by_query_model ON usage_totals(query_model, user_id);

-- SUM of BIGINT is NUMERIC: stored back into BIGINT, a sum past 2**63 fails
-- rather than wraps.
INSERT INTO usage_hourly (name, hour, user_id, query_model, requests,
    chat_completion_tokens, chat_prompt_tokens, chat_cost,
    embedding_completion_tokens, embedding_prompt_tokens, embedding_cost)
SELECT name, at - at % 3600000000, COALESCE(user_id, ''), COALESCE(query_model, ''), COUNT(*),
    SUM(chat_completion_tokens), SUM(chat_prompt_tokens), SUM(chat_cost),
    SUM(embedding_completion_tokens), SUM(embedding_prompt_tokens), SUM(embedding_cost)
FROM usage_events GROUP BY 1, 2, 3, 4;

INSERT INTO usage_totals (name, user_id, query_model, requests,
    chat_completion_tokens, chat_prompt_tokens, chat_cost,
    embedding_completion_tokens, embedding_prompt_tokens, embedding_cost)
SELECT name, user_id, query_model, SUM(requests),
    SUM(chat_completion_tokens), SUM(chat_prompt_tokens), SUM(chat_cost),
    SUM(embedding_completion_tokens), SUM(embedding_prompt_tokens), SUM(embedding_cost)
FROM usage_hourly GROUP BY 1, 2, 3;

-- As in m002: a Query LLM's totals count all its events, for any Query Model.
CREATE VIEW query_llm_stats AS
SELECT q.name, q.model, q.mode, q.weight_type, q.training_table_name, q.user_id,
    to_char(
        TIMESTAMP '1970-01-01' + (q.created / 1000000) * INTERVAL '1 second'
            + (q.created % 1000000) * INTERVAL '1 microsecond',
        'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
    ) AS created,
    CAST(COALESCE(SUM(t.requests), 0) AS BIGINT) AS requests,
    CAST(COALESCE(SUM(t.chat_completion_tokens), 0) AS BIGINT) AS chat_completion_tokens,
    CAST(COALESCE(SUM(t.chat_prompt_tokens), 0) AS BIGINT) AS chat_prompt_tokens,
    trim_scale(COALESCE(SUM(t.chat_cost), 0) / 1e9) AS chat_cost,
    CAST(COALESCE(SUM(t.embedding_completion_tokens), 0) AS BIGINT)
        AS embedding_completion_tokens,
    CAST(COALESCE(SUM(t.embedding_prompt_tokens), 0) AS BIGINT) AS embedding_prompt_tokens,
    trim_scale(COALESCE(SUM(t.embedding_cost), 0) / 1e9) AS embedding_cost
FROM query_llms q LEFT JOIN usage_totals t ON t.name = q.name
GROUP BY q.name;

CREATE VIEW query_model_stats AS
SELECT m.name, m.weight_type, m.training_table_name, m.members, m.user_id,
    to_char(
        TIMESTAMP '1970-01-01' + (m.created / 1000000) * INTERVAL '1 second'
            + (m.created % 1000000) * INTERVAL '1 microsecond',
        'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
    ) AS created,
    CAST(COALESCE(SUM(t.requests), 0) AS BIGINT) AS requests,
    CAST(COALESCE(SUM(t.chat_completion_tokens), 0) AS BIGINT) AS chat_completion_tokens,
    CAST(COALESCE(SUM(t.chat_prompt_tokens), 0) AS BIGINT) AS chat_prompt_tokens,
    trim_scale(COALESCE(SUM(t.chat_cost), 0) / 1e9) AS chat_cost,
    CAST(COALESCE(SUM(t.embedding_completion_tokens), 0) AS BIGINT)
        AS embedding_completion_tokens,
    CAST(COALESCE(SUM(t.embedding_prompt_tokens), 0) AS BIGINT) AS embedding_prompt_tokens,
    trim_scale(COALESCE(SUM(t.embedding_cost), 0) / 1e9) AS embedding_cost
FROM query_models m LEFT JOIN usage_totals t ON t.query_model = m.name
GROUP BY m.name;

CREATE VIEW query_model_member_llms AS
SELECT mm.model AS query_model, mm.position, q.name, q.model, q.mode,
    -- json, not jsonb: the canonical text of the weight, as SQLite's json_extract gives it
    q.weight_type, q.training_table_name, (q.body::json -> 'weight')::text AS weight
FROM query_model_members mm JOIN query_llms q ON q.name = mm.member;

CREATE VIEW usage_events_rfc3339 AS
SELECT id, name, user_id,
    to_char(
        TIMESTAMP '1970-01-01' + (at / 1000000) * INTERVAL '1 second'
            + (at % 1000000) * INTERVAL '1 microsecond',
        'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
    ) AS at,
    request_id,
    chat_completion_tokens, chat_prompt_tokens, trim_scale(chat_cost / 1e9) AS chat_cost,
    embedding_completion_tokens, embedding_prompt_tokens,
    trim_scale(embedding_cost / 1e9) AS embedding_cost, query_model
FROM usage_events;
