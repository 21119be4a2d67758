-- m002_rollups: the same step as the SQLite migration of that name.
--
-- Totals kept in step with the events, so that statistics need not scan
-- history: per hour (for windows) and all-time (for all-time statistics and
-- list sorts). SQLite needs typeof() checks to refuse a sum past 2**63;
-- BIGINT does that by itself (numeric value out of range).
--
-- user_id is '' for events recorded without a token: a primary key column
-- cannot hold NULL and still identify one row.

CREATE TABLE usage_hourly (
    name TEXT COLLATE "C" NOT NULL REFERENCES query_llms(name),
    hour BIGINT NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    requests BIGINT NOT NULL CHECK (requests >= 0),
    chat_completion_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_completion_tokens >= 0),
    chat_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_prompt_tokens >= 0),
    chat_cost BIGINT NOT NULL DEFAULT 0 CHECK (chat_cost >= 0),
    embedding_completion_tokens BIGINT NOT NULL DEFAULT 0
        CHECK (embedding_completion_tokens >= 0),
    embedding_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (embedding_prompt_tokens >= 0),
    embedding_cost BIGINT NOT NULL DEFAULT 0 CHECK (embedding_cost >= 0),
    PRIMARY KEY (name, hour, user_id)
);

CREATE TABLE usage_totals (
    name TEXT COLLATE "C" NOT NULL REFERENCES query_llms(name),
    user_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    requests BIGINT NOT NULL CHECK (requests >= 0),
    chat_completion_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_completion_tokens >= 0),
    chat_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_prompt_tokens >= 0),
    chat_cost BIGINT NOT NULL DEFAULT 0 CHECK (chat_cost >= 0),
    embedding_completion_tokens BIGINT NOT NULL DEFAULT 0
        CHECK (embedding_completion_tokens >= 0),
    embedding_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (embedding_prompt_tokens >= 0),
    embedding_cost BIGINT NOT NULL DEFAULT 0 CHECK (embedding_cost >= 0),
    PRIMARY KEY (name, user_id)
);
CREATE INDEX usage_totals_by_user ON usage_totals(user_id, name);

-- SUM of BIGINT is NUMERIC in PostgreSQL: stored back into BIGINT, a sum
-- past 2**63 fails rather than wraps.
INSERT INTO usage_hourly (name, hour, user_id, requests,
    chat_completion_tokens, chat_prompt_tokens, chat_cost,
    embedding_completion_tokens, embedding_prompt_tokens, embedding_cost)
SELECT name, at - at % 3600000000, COALESCE(user_id, ''), COUNT(*),
    SUM(chat_completion_tokens), SUM(chat_prompt_tokens), SUM(chat_cost),
    SUM(embedding_completion_tokens), SUM(embedding_prompt_tokens), SUM(embedding_cost)
FROM usage_events GROUP BY 1, 2, 3;

INSERT INTO usage_totals (name, user_id, requests,
    chat_completion_tokens, chat_prompt_tokens, chat_cost,
    embedding_completion_tokens, embedding_prompt_tokens, embedding_cost)
SELECT name, COALESCE(user_id, ''), COUNT(*),
    SUM(chat_completion_tokens), SUM(chat_prompt_tokens), SUM(chat_cost),
    SUM(embedding_completion_tokens), SUM(embedding_prompt_tokens), SUM(embedding_cost)
FROM usage_events GROUP BY 1, 2;

-- The totals answer the per-user questions this index served.
DROP INDEX usage_events_by_user;

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
