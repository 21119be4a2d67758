-- m001_initial: the same step as the SQLite migration of that name.
--
-- Conventions shared with SQLite, so that both backends share the arithmetic:
-- times are BIGINT UTC microseconds since 1970 (no timestamptz); costs are
-- BIGINT nano-credits (1e-9 credit); every amount is a 64-bit integer, and
-- BIGINT refuses a value past 2**63 instead of rounding it. Text keys are
-- COLLATE "C": bytewise order, as SQLite's, whatever the database's locale,
-- so that ORDER BY name gives the same page on both backends.

CREATE TABLE users (
    id TEXT COLLATE "C" PRIMARY KEY,
    created BIGINT NOT NULL
);

-- Only a SHA-256 of each token is kept; the secret is shown once.
CREATE TABLE tokens (
    hash TEXT COLLATE "C" PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created BIGINT NOT NULL,
    revoked BIGINT
);

-- body is the canonical form (RFC 8785) that name hashes.
CREATE TABLE query_llms (
    name TEXT COLLATE "C" PRIMARY KEY,
    training_table_name TEXT COLLATE "C",
    body TEXT NOT NULL,
    model TEXT COLLATE "C" NOT NULL,
    mode TEXT COLLATE "C" NOT NULL,
    weight_type TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    user_id TEXT COLLATE "C" REFERENCES users(id)
);
CREATE INDEX query_llms_by_created ON query_llms(created, name);
CREATE INDEX query_llms_by_user ON query_llms(user_id);
CREATE INDEX query_llms_by_training_table ON query_llms(training_table_name);

-- id: ALWAYS generated, so that no writer can take an id the sequence will
-- hand out later. Unlike SQLite's rowid, ids are not in commit order under
-- concurrent writers: new rows are found with RETURNING, never by MAX(id).
CREATE TABLE usage_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL REFERENCES query_llms(name),
    user_id TEXT COLLATE "C" REFERENCES users(id),
    at BIGINT NOT NULL,
    request_id TEXT COLLATE "C" UNIQUE,
    chat_completion_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_completion_tokens >= 0),
    chat_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (chat_prompt_tokens >= 0),
    chat_cost BIGINT NOT NULL DEFAULT 0 CHECK (chat_cost >= 0),
    embedding_completion_tokens BIGINT NOT NULL DEFAULT 0
        CHECK (embedding_completion_tokens >= 0),
    embedding_prompt_tokens BIGINT NOT NULL DEFAULT 0 CHECK (embedding_prompt_tokens >= 0),
    embedding_cost BIGINT NOT NULL DEFAULT 0 CHECK (embedding_cost >= 0)
);
CREATE INDEX usage_events_by_name_at ON usage_events(name, at);
CREATE INDEX usage_events_by_user ON usage_events(user_id, name);

-- RFC 3339 text, microseconds, Z: the form the library returns. The two
-- products are exact (each below 2**53); costs divide exactly as NUMERIC.
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
    trim_scale(embedding_cost / 1e9) AS embedding_cost
FROM usage_events;
