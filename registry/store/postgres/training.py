"""PostgreSQL's own SQL of training tables: completions in by COPY (then one INSERT that
keeps the first row of each new id), and a table's rows out through a server-side cursor,
so that a large table is never held whole by the client while it is read into memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from registry.store.training import COMPLETION_COLUMNS, CompletionRow, TrainingSql

_COLUMNS = ", ".join(COMPLETION_COLUMNS)
_TYPES = ["int8", "text", "text", "text", "text", "int8", "bytea", "text", "int8", "text", "int8"]
# Per connection (the pool keeps connections), emptied at each commit.
_STAGE = """
    CREATE TEMPORARY TABLE IF NOT EXISTS qllm_completion_stage (
        ord BIGINT NOT NULL, id TEXT COLLATE "C" NOT NULL, query_model TEXT COLLATE "C" NOT NULL,
        training_table_name TEXT COLLATE "C", response_format_hash TEXT COLLATE "C" NOT NULL,
        dimensions BIGINT NOT NULL, embedding BYTEA NOT NULL, votes TEXT NOT NULL,
        at BIGINT NOT NULL, user_id TEXT COLLATE "C", created BIGINT NOT NULL
    ) ON COMMIT DELETE ROWS"""
# The first staged row of each id that no stored completion has; a writer that commits one
# of these ids meanwhile wins (ON CONFLICT), and the caller compares what it stored.
_MERGE = f"""
    INSERT INTO completions ({_COLUMNS})
    SELECT {_COLUMNS} FROM (
        SELECT DISTINCT ON (id) * FROM qllm_completion_stage ORDER BY id, ord
    ) first_rows
    ON CONFLICT (id) DO NOTHING
    RETURNING id"""
_ROWS = """
    SELECT m.completion, c.embedding, m.scores, m.seq
    FROM completion_marks m JOIN completions c ON c.id = m.completion
    WHERE m.training_table_name = %s AND m.response_format_hash = %s AND m.dimensions = %s"""
_FETCH = 1000  # rows a server-side cursor sends at a time


class PostgresTraining(TrainingSql):
    """`TrainingSql` with PostgreSQL's way in and out; ``pg`` is the psycopg connection."""

    pg: psycopg.Connection[tuple[Any, ...]]

    def insert_new_completions(self, rows: Sequence[CompletionRow]) -> set[int]:
        if not rows:
            return set()
        conn = self.pg
        conn.execute(_STAGE)
        conn.execute("TRUNCATE qllm_completion_stage")
        with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY qllm_completion_stage (ord, {_COLUMNS}) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(_TYPES)
            for position, row in enumerate(rows):
                copy.write_row([position, *row])
        inserted = {completion for (completion,) in conn.execute(_MERGE)}
        conn.execute("TRUNCATE qllm_completion_stage")
        first: dict[str, int] = {}
        for position, row in enumerate(rows):
            first.setdefault(row[0], position)
        return {first[completion] for completion in inserted}

    def training_rows(
        self, table: str, response_format_hash: str, dimensions: int, after: int | None = None
    ) -> Iterator[tuple[str, bytes, bytes, int]]:
        sql, params = _ROWS, [table, response_format_hash, dimensions]
        if after is not None:
            sql += " AND m.seq > %s"
            params.append(after)
        with self.pg.cursor(name="qllm_training_rows") as cur:
            cur.itersize = _FETCH
            cur.execute(sql.encode(), params)
            for completion, embedding, scores, seq in cur:
                yield str(completion), bytes(embedding), bytes(scores), int(seq)
