-- m005_training_tables: the same step as the SQLite migration of that name.
--
-- Completions (one call of a Query Model: the prompt's embedding and each
-- member's vote), their marks (the correct answer: a row of the model's
-- training table), and a version per training table, bumped by every mark and
-- unmark, so that a process that keeps a table's rows in memory knows cheaply
-- when they changed. Embeddings are float32 bytes (little-endian): the search
-- runs in the registry's process, so no vector extension is needed.

-- votes: RFC 8785 text, in member index order; training_table_name and
-- dimensions: the model's and the embedding's, copied to its marks.
CREATE TABLE completions (
    id TEXT COLLATE "C" PRIMARY KEY,
    query_model TEXT COLLATE "C" NOT NULL REFERENCES query_models(name),
    training_table_name TEXT COLLATE "C",
    response_format_hash TEXT COLLATE "C" NOT NULL DEFAULT '',
    dimensions BIGINT NOT NULL CHECK (dimensions BETWEEN 1 AND 16384),
    embedding BYTEA NOT NULL CHECK (length(embedding) = 4 * dimensions),
    votes TEXT NOT NULL,
    at BIGINT NOT NULL,
    user_id TEXT COLLATE "C" REFERENCES users(id),
    created BIGINT NOT NULL
);

-- scores: float64 per training_table_index (NaN: no member of it voted); seq:
-- the training table's version this mark made.
CREATE TABLE completion_marks (
    completion TEXT COLLATE "C" PRIMARY KEY REFERENCES completions(id),
    training_table_name TEXT COLLATE "C",
    response_format_hash TEXT COLLATE "C" NOT NULL,
    dimensions BIGINT NOT NULL,
    correct_confidence_id TEXT COLLATE "C" NOT NULL,
    scores BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    marked BIGINT NOT NULL
);
CREATE INDEX completion_marks_by_table
    ON completion_marks(training_table_name, response_format_hash, dimensions, seq);

CREATE TABLE training_tables (
    name TEXT COLLATE "C" PRIMARY KEY,
    version BIGINT NOT NULL,
    unmarks BIGINT NOT NULL
);
