-- m006_exact_views: beside every cost in credits, its exact integer of nano-credits
-- (*_cost_nano), as SQLite's views have it; and usage_daily, spend per day, user,
-- Query LLM and Query Model (the same columns as SQLite's). PostgreSQL's credits are
-- exact already (numeric), and so is cost_exact's text.

DROP VIEW usage_events_rfc3339;
DROP VIEW query_llm_stats;
DROP VIEW query_model_stats;

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
    trim_scale(embedding_cost / 1e9) AS embedding_cost, query_model,
    chat_cost AS chat_cost_nano, embedding_cost AS embedding_cost_nano
FROM usage_events;

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
    trim_scale(COALESCE(SUM(t.embedding_cost), 0) / 1e9) AS embedding_cost,
    CAST(COALESCE(SUM(t.chat_cost), 0) AS BIGINT) AS chat_cost_nano,
    CAST(COALESCE(SUM(t.embedding_cost), 0) AS BIGINT) AS embedding_cost_nano
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
    trim_scale(COALESCE(SUM(t.embedding_cost), 0) / 1e9) AS embedding_cost,
    CAST(COALESCE(SUM(t.chat_cost), 0) AS BIGINT) AS chat_cost_nano,
    CAST(COALESCE(SUM(t.embedding_cost), 0) AS BIGINT) AS embedding_cost_nano
FROM query_models m LEFT JOIN usage_totals t ON t.query_model = m.name
GROUP BY m.name;

-- From the hourly rollup: a day costs 24 rows per group, whatever its events.
CREATE VIEW usage_daily AS
SELECT to_char(TIMESTAMP '1970-01-01' + (u.hour / 1000000) * INTERVAL '1 second', 'YYYY-MM-DD')
        AS day,
    NULLIF(u.user_id, '') AS user_id, u.name, q.model, q.mode,
    NULLIF(u.query_model, '') AS query_model,
    CAST(SUM(u.requests) AS BIGINT) AS requests,
    CAST(SUM(u.chat_prompt_tokens + u.embedding_prompt_tokens) AS BIGINT) AS prompt_tokens,
    CAST(SUM(u.chat_completion_tokens + u.embedding_completion_tokens) AS BIGINT)
        AS completion_tokens,
    CAST(SUM(u.chat_completion_tokens + u.chat_prompt_tokens + u.embedding_completion_tokens
        + u.embedding_prompt_tokens) AS BIGINT) AS tokens,
    trim_scale(SUM(u.chat_cost + u.embedding_cost) / 1e9) AS cost,
    CAST(SUM(u.chat_cost + u.embedding_cost) AS BIGINT) AS cost_nano,
    trim_scale(SUM(u.chat_cost + u.embedding_cost) / 1e9)::text AS cost_exact
FROM usage_hourly u JOIN query_llms q ON q.name = u.name
GROUP BY 1, 2, 3, 4, 5, 6;
