"""The registry's schema, as a sqlite-utils migration set.

`registry.Registry` applies these when it opens a file; the sqlite-utils CLI
can too: ``sqlite-utils migrate registry.db migrations/``. One function per
migration, numbered; a migration that has shipped is never edited, only
followed by a new one.

Conventions, chosen to carry over to PostgreSQL: times are INTEGER UTC
microseconds since 1970; costs are INTEGER nano-credits (1e-9 credit); every
amount is a 64-bit INTEGER; the views render times as RFC 3339 text.
"""

from sqlite_utils import Database, Migrations

migrations = Migrations("qllm")


def _run(db: Database, *statements: str) -> None:
    for statement in statements:
        db.execute(statement)


_AMOUNT_COLUMNS = """
    chat_completion_tokens INTEGER NOT NULL DEFAULT 0 CHECK (chat_completion_tokens >= 0),
    chat_prompt_tokens INTEGER NOT NULL DEFAULT 0 CHECK (chat_prompt_tokens >= 0),
    chat_cost INTEGER NOT NULL DEFAULT 0 CHECK (chat_cost >= 0),
    embedding_completion_tokens INTEGER NOT NULL DEFAULT 0
        CHECK (embedding_completion_tokens >= 0),
    embedding_prompt_tokens INTEGER NOT NULL DEFAULT 0 CHECK (embedding_prompt_tokens >= 0),
    embedding_cost INTEGER NOT NULL DEFAULT 0 CHECK (embedding_cost >= 0)"""

# RFC 3339 text, microseconds, Z: the form the library returns.
_RFC3339 = (
    "strftime('%Y-%m-%dT%H:%M:%S', {0} / 1000000, 'unixepoch') || printf('.%06dZ', {0} % 1000000)"
)


@migrations()
def m001_initial(db: Database) -> None:
    _run(
        db,
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            created INTEGER NOT NULL
        )""",
        # Only a SHA-256 of each token is kept; the secret is shown once.
        """
        CREATE TABLE tokens (
            hash TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id),
            created INTEGER NOT NULL,
            revoked INTEGER
        )""",
        # body is the canonical form (RFC 8785) that name hashes.
        """
        CREATE TABLE query_llms (
            name TEXT PRIMARY KEY,
            training_table_name TEXT,
            body TEXT NOT NULL,
            model TEXT NOT NULL,
            mode TEXT NOT NULL,
            weight_type TEXT NOT NULL,
            created INTEGER NOT NULL,
            user_id TEXT REFERENCES users(id)
        )""",
        "CREATE INDEX query_llms_by_created ON query_llms(created, name)",
        "CREATE INDEX query_llms_by_user ON query_llms(user_id)",
        "CREATE INDEX query_llms_by_training_table ON query_llms(training_table_name)",
        f"""
        CREATE TABLE usage_events (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL REFERENCES query_llms(name),
            user_id TEXT REFERENCES users(id),
            at INTEGER NOT NULL,
            request_id TEXT UNIQUE,{_AMOUNT_COLUMNS}
        )""",
        "CREATE INDEX usage_events_by_name_at ON usage_events(name, at)",
        "CREATE INDEX usage_events_by_user ON usage_events(user_id, name)",
        f"""
        CREATE VIEW usage_events_rfc3339 AS
        SELECT id, name, user_id, {_RFC3339.format("at")} AS at, request_id,
            chat_completion_tokens, chat_prompt_tokens, chat_cost / 1e9 AS chat_cost,
            embedding_completion_tokens, embedding_prompt_tokens,
            embedding_cost / 1e9 AS embedding_cost
        FROM usage_events""",
    )


@migrations()
def m002_rollups(db: Database) -> None:
    """Totals kept in step with the events, so that statistics need not scan history:
    per hour (for windows) and all-time (for all-time statistics and list sorts)."""
    amounts = (
        "chat_completion_tokens, chat_prompt_tokens, chat_cost,"
        " embedding_completion_tokens, embedding_prompt_tokens, embedding_cost"
    )
    sums = ", ".join(f"SUM({a.strip()})" for a in amounts.split(","))
    # SQLite turns an integer sum past 2**63 into an inexact REAL without a
    # word; these checks refuse the write instead, as PostgreSQL's BIGINT would.
    exact = ", ".join(
        f"CHECK (typeof({column.strip()}) = 'integer')"
        for column in ("requests", *amounts.split(","))
    )
    _run(
        db,
        # user_id is '' for events recorded without a token: a primary key
        # column cannot hold NULL and still identify one row.
        f"""
        CREATE TABLE usage_hourly (
            name TEXT NOT NULL REFERENCES query_llms(name),
            hour INTEGER NOT NULL,
            user_id TEXT NOT NULL DEFAULT '',
            requests INTEGER NOT NULL CHECK (requests >= 0),{_AMOUNT_COLUMNS},
            PRIMARY KEY (name, hour, user_id), {exact}
        ) WITHOUT ROWID""",
        f"""
        CREATE TABLE usage_totals (
            name TEXT NOT NULL REFERENCES query_llms(name),
            user_id TEXT NOT NULL DEFAULT '',
            requests INTEGER NOT NULL CHECK (requests >= 0),{_AMOUNT_COLUMNS},
            PRIMARY KEY (name, user_id), {exact}
        ) WITHOUT ROWID""",
        "CREATE INDEX usage_totals_by_user ON usage_totals(user_id, name)",
        f"""
        INSERT INTO usage_hourly (name, hour, user_id, requests, {amounts})
        SELECT name, at - at % 3600000000, COALESCE(user_id, ''), COUNT(*), {sums}
        FROM usage_events GROUP BY 1, 2, 3""",
        f"""
        INSERT INTO usage_totals (name, user_id, requests, {amounts})
        SELECT name, COALESCE(user_id, ''), COUNT(*), {sums}
        FROM usage_events GROUP BY 1, 2""",
        # The totals answer the per-user questions this index served.
        "DROP INDEX usage_events_by_user",
        f"""
        CREATE VIEW query_llm_stats AS
        SELECT q.name, q.model, q.mode, q.weight_type, q.training_table_name, q.user_id,
            {_RFC3339.format("q.created")} AS created,
            COALESCE(SUM(t.requests), 0) AS requests,
            COALESCE(SUM(t.chat_completion_tokens), 0) AS chat_completion_tokens,
            COALESCE(SUM(t.chat_prompt_tokens), 0) AS chat_prompt_tokens,
            COALESCE(SUM(t.chat_cost), 0) / 1e9 AS chat_cost,
            COALESCE(SUM(t.embedding_completion_tokens), 0) AS embedding_completion_tokens,
            COALESCE(SUM(t.embedding_prompt_tokens), 0) AS embedding_prompt_tokens,
            COALESCE(SUM(t.embedding_cost), 0) / 1e9 AS embedding_cost
        FROM query_llms q LEFT JOIN usage_totals t ON t.name = q.name
        GROUP BY q.name""",
    )


@migrations()
def m003_query_models(db: Database) -> None:
    """Query Models (ensembles of Query LLMs), their ordered members, ``query_model`` on
    usage events, and rollups keyed by Query Model too, so that a model's statistics
    cost what a Query LLM's do."""
    amounts = (
        "chat_completion_tokens, chat_prompt_tokens, chat_cost,"
        " embedding_completion_tokens, embedding_prompt_tokens, embedding_cost"
    )
    sums = ", ".join(f"SUM({a.strip()})" for a in amounts.split(","))
    exact = ", ".join(
        f"CHECK (typeof({column.strip()}) = 'integer')"
        for column in ("requests", *amounts.split(","))
    )
    _run(
        db,
        # body is the canonical form that name hashes: member names and the weight.
        """
        CREATE TABLE query_models (
            name TEXT PRIMARY KEY,
            training_table_name TEXT,
            body TEXT NOT NULL,
            weight TEXT NOT NULL,
            weight_type TEXT NOT NULL,
            members INTEGER NOT NULL,
            created INTEGER NOT NULL,
            user_id TEXT REFERENCES users(id)
        )""",
        "CREATE INDEX query_models_by_created ON query_models(created, name)",
        "CREATE INDEX query_models_by_user ON query_models(user_id)",
        "CREATE INDEX query_models_by_training_table ON query_models(training_table_name)",
        # position: the member's index in the normalized (name-sorted) order.
        """
        CREATE TABLE query_model_members (
            model TEXT NOT NULL REFERENCES query_models(name),
            position INTEGER NOT NULL,
            member TEXT NOT NULL REFERENCES query_llms(name),
            PRIMARY KEY (model, position)
        ) WITHOUT ROWID""",
        # Membership checks of usage events, and "which ensembles use this Query LLM".
        "CREATE INDEX query_model_members_by_member ON query_model_members(member, model)",
        "ALTER TABLE usage_events ADD COLUMN query_model TEXT REFERENCES query_models(name)",
        # Partial: most events may serve no Query Model, and cost this index nothing.
        """
        CREATE INDEX usage_events_by_query_model_at ON usage_events(query_model, at)
        WHERE query_model IS NOT NULL""",
        # The rollups get query_model ('' = none) in their keys: rebuilt from the events.
        "DROP VIEW query_llm_stats",
        "DROP TABLE usage_hourly",
        "DROP TABLE usage_totals",
        f"""
        CREATE TABLE usage_hourly (
            name TEXT NOT NULL REFERENCES query_llms(name),
            hour INTEGER NOT NULL,
            user_id TEXT NOT NULL DEFAULT '',
            query_model TEXT NOT NULL DEFAULT '',
            requests INTEGER NOT NULL CHECK (requests >= 0),{_AMOUNT_COLUMNS},
            PRIMARY KEY (name, hour, user_id, query_model), {exact}
        ) WITHOUT ROWID""",
        f"""
        CREATE TABLE usage_totals (
            name TEXT NOT NULL REFERENCES query_llms(name),
            user_id TEXT NOT NULL DEFAULT '',
            query_model TEXT NOT NULL DEFAULT '',
            requests INTEGER NOT NULL CHECK (requests >= 0),{_AMOUNT_COLUMNS},
            PRIMARY KEY (name, user_id, query_model), {exact}
        ) WITHOUT ROWID""",
        "CREATE INDEX usage_totals_by_user ON usage_totals(user_id, name)",
        "CREATE INDEX usage_hourly_by_query_model ON usage_hourly(query_model, hour, user_id)",
        "CREATE INDEX usage_totals_by_query_model ON usage_totals(query_model, user_id)",
        f"""
        INSERT INTO usage_hourly (name, hour, user_id, query_model, requests, {amounts})
        SELECT name, at - at % 3600000000, COALESCE(user_id, ''), COALESCE(query_model, ''),
            COUNT(*), {sums}
        FROM usage_events GROUP BY 1, 2, 3, 4""",
        f"""
        INSERT INTO usage_totals (name, user_id, query_model, requests, {amounts})
        SELECT name, user_id, query_model, SUM(requests), {sums}
        FROM usage_hourly GROUP BY 1, 2, 3""",
        # As in m002: a Query LLM's totals count all its events, for any Query Model.
        f"""
        CREATE VIEW query_llm_stats AS
        SELECT q.name, q.model, q.mode, q.weight_type, q.training_table_name, q.user_id,
            {_RFC3339.format("q.created")} AS created,
            COALESCE(SUM(t.requests), 0) AS requests,
            COALESCE(SUM(t.chat_completion_tokens), 0) AS chat_completion_tokens,
            COALESCE(SUM(t.chat_prompt_tokens), 0) AS chat_prompt_tokens,
            COALESCE(SUM(t.chat_cost), 0) / 1e9 AS chat_cost,
            COALESCE(SUM(t.embedding_completion_tokens), 0) AS embedding_completion_tokens,
            COALESCE(SUM(t.embedding_prompt_tokens), 0) AS embedding_prompt_tokens,
            COALESCE(SUM(t.embedding_cost), 0) / 1e9 AS embedding_cost
        FROM query_llms q LEFT JOIN usage_totals t ON t.name = q.name
        GROUP BY q.name""",
        f"""
        CREATE VIEW query_model_stats AS
        SELECT m.name, m.weight_type, m.training_table_name, m.members, m.user_id,
            {_RFC3339.format("m.created")} AS created,
            COALESCE(SUM(t.requests), 0) AS requests,
            COALESCE(SUM(t.chat_completion_tokens), 0) AS chat_completion_tokens,
            COALESCE(SUM(t.chat_prompt_tokens), 0) AS chat_prompt_tokens,
            COALESCE(SUM(t.chat_cost), 0) / 1e9 AS chat_cost,
            COALESCE(SUM(t.embedding_completion_tokens), 0) AS embedding_completion_tokens,
            COALESCE(SUM(t.embedding_prompt_tokens), 0) AS embedding_prompt_tokens,
            COALESCE(SUM(t.embedding_cost), 0) / 1e9 AS embedding_cost
        FROM query_models m LEFT JOIN usage_totals t ON t.query_model = m.name
        GROUP BY m.name""",
        """
        CREATE VIEW query_model_member_llms AS
        SELECT mm.model AS query_model, mm.position, q.name, q.model, q.mode,
            q.weight_type, q.training_table_name, json_extract(q.body, '$.weight') AS weight
        FROM query_model_members mm JOIN query_llms q ON q.name = mm.member""",
        "DROP VIEW usage_events_rfc3339",
        f"""
        CREATE VIEW usage_events_rfc3339 AS
        SELECT id, name, user_id, {_RFC3339.format("at")} AS at, request_id,
            chat_completion_tokens, chat_prompt_tokens, chat_cost / 1e9 AS chat_cost,
            embedding_completion_tokens, embedding_prompt_tokens,
            embedding_cost / 1e9 AS embedding_cost, query_model
        FROM usage_events""",
    )


# m004 is PostgreSQL's alone (its rollups' foreign keys); SQLite's set goes on at m005.


@migrations()
def m005_training_tables(db: Database) -> None:
    """Completions (one call of a Query Model: the prompt's embedding and each member's
    vote), their marks (the correct answer: a row of the model's training table), and a
    version per training table, bumped by every mark and unmark, so that a process that
    keeps a table's rows in memory knows cheaply when they changed."""
    _run(
        db,
        # embedding: float32, little-endian; votes: RFC 8785 text, in member index order;
        # training_table_name, dimensions: the model's and the embedding's, for the marks.
        """
        CREATE TABLE completions (
            id TEXT PRIMARY KEY,
            query_model TEXT NOT NULL REFERENCES query_models(name),
            training_table_name TEXT,
            response_format_hash TEXT NOT NULL DEFAULT '',
            dimensions INTEGER NOT NULL CHECK (dimensions BETWEEN 1 AND 16384),
            embedding BLOB NOT NULL CHECK (length(embedding) = 4 * dimensions),
            votes TEXT NOT NULL,
            at INTEGER NOT NULL,
            user_id TEXT REFERENCES users(id),
            created INTEGER NOT NULL
        )""",
        # scores: float64 per training_table_index (NaN: no member of it voted); seq: the
        # training table's version this mark made. A search reads one table, format and
        # length, in seq order when catching up.
        """
        CREATE TABLE completion_marks (
            completion TEXT PRIMARY KEY REFERENCES completions(id),
            training_table_name TEXT,
            response_format_hash TEXT NOT NULL,
            dimensions INTEGER NOT NULL,
            correct_confidence_id TEXT NOT NULL,
            scores BLOB NOT NULL,
            seq INTEGER NOT NULL,
            marked INTEGER NOT NULL
        )""",
        """
        CREATE INDEX completion_marks_by_table
        ON completion_marks(training_table_name, response_format_hash, dimensions, seq)""",
        """
        CREATE TABLE training_tables (
            name TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            unmarks INTEGER NOT NULL
        )""",
    )


# Exact decimal text of an integer of nano-credits (0.0125, 12, 0): SQLite has no decimal
# type, and a float (x / 1e9) is not exact past 15 or 16 digits.
_EXACT = (
    "rtrim(rtrim(CAST({0} / 1000000000 AS TEXT) || '.'"
    " || substr('000000000' || ({0} % 1000000000), -9), '0'), '.')"
)


@migrations()
def m006_exact_views(db: Database) -> None:
    """Views for tools such as Datasette: beside every cost in credits (a float, handy for
    charts), its exact integer of nano-credits (``*_cost_nano``); and ``usage_daily``,
    spend per day, user, Query LLM and Query Model, its cost exact (``cost_nano``, and
    ``cost_exact`` as decimal text)."""
    costs = ("chat_cost", "embedding_cost")
    tokens = (
        "chat_completion_tokens",
        "chat_prompt_tokens",
        "embedding_completion_tokens",
        "embedding_prompt_tokens",
    )
    stats = [
        "COALESCE(SUM(t.requests), 0) AS requests",
        *(f"COALESCE(SUM(t.{a}), 0) AS {a}" for a in tokens[:2]),
        "COALESCE(SUM(t.chat_cost), 0) / 1e9 AS chat_cost",
        *(f"COALESCE(SUM(t.{a}), 0) AS {a}" for a in tokens[2:]),
        "COALESCE(SUM(t.embedding_cost), 0) / 1e9 AS embedding_cost",
        *(f"COALESCE(SUM(t.{c}), 0) AS {c}_nano" for c in costs),
    ]
    cost = "SUM(u.chat_cost + u.embedding_cost)"
    _run(
        db,
        "DROP VIEW usage_events_rfc3339",
        "DROP VIEW query_llm_stats",
        "DROP VIEW query_model_stats",
        f"""
        CREATE VIEW usage_events_rfc3339 AS
        SELECT id, name, user_id, {_RFC3339.format("at")} AS at, request_id,
            chat_completion_tokens, chat_prompt_tokens, chat_cost / 1e9 AS chat_cost,
            embedding_completion_tokens, embedding_prompt_tokens,
            embedding_cost / 1e9 AS embedding_cost, query_model,
            chat_cost AS chat_cost_nano, embedding_cost AS embedding_cost_nano
        FROM usage_events""",
        f"""
        CREATE VIEW query_llm_stats AS
        SELECT q.name, q.model, q.mode, q.weight_type, q.training_table_name, q.user_id,
            {_RFC3339.format("q.created")} AS created, {", ".join(stats)}
        FROM query_llms q LEFT JOIN usage_totals t ON t.name = q.name
        GROUP BY q.name""",
        f"""
        CREATE VIEW query_model_stats AS
        SELECT m.name, m.weight_type, m.training_table_name, m.members, m.user_id,
            {_RFC3339.format("m.created")} AS created, {", ".join(stats)}
        FROM query_models m LEFT JOIN usage_totals t ON t.query_model = m.name
        GROUP BY m.name""",
        # From the hourly rollup: a day costs 24 rows per group, whatever its events.
        f"""
        CREATE VIEW usage_daily AS
        SELECT strftime('%Y-%m-%d', u.hour / 1000000, 'unixepoch') AS day,
            NULLIF(u.user_id, '') AS user_id, u.name, q.model, q.mode,
            NULLIF(u.query_model, '') AS query_model,
            SUM(u.requests) AS requests,
            SUM(u.chat_prompt_tokens + u.embedding_prompt_tokens) AS prompt_tokens,
            SUM(u.chat_completion_tokens + u.embedding_completion_tokens) AS completion_tokens,
            SUM({" + ".join(f"u.{a}" for a in tokens)}) AS tokens,
            {cost} / 1e9 AS cost, {cost} AS cost_nano, {_EXACT.format(cost)} AS cost_exact
        FROM usage_hourly u JOIN query_llms q ON q.name = u.name
        GROUP BY 1, 2, 3, 4, 5, 6""",
    )
