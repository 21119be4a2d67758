"""The SQL of completions, marks and training tables that both dialects share (in SQLite's
placeholder style, over a `registry.store.sql.Conn`): `TrainingSql`, a base of every
backend's transaction. PostgreSQL's own (COPY in, a server-side cursor out) is in
``postgres/training.py``.

A completion row, as `Registry` makes it and these statements write it:
``(id, query_model, training_table_name, response_format_hash, dimensions, embedding,
votes, at, user_id, created)``. A mark bumps its training table's ``version`` (and an
unmark its ``unmarks`` too) in the same transaction; the mark row keeps the version it
made as ``seq``, so that a reader holding the rows up to version v reads only the marks
with ``seq > v`` to catch up (`registry.nearest`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from registry.errors import ConflictError

COMPLETION_COLUMNS = (
    "id",
    "query_model",
    "training_table_name",
    "response_format_hash",
    "dimensions",
    "embedding",
    "votes",
    "at",
    "user_id",
    "created",
)
INSERT_COMPLETION = (
    f"INSERT INTO completions ({', '.join(COMPLETION_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(COMPLETION_COLUMNS))})"
)
_STORED = f"SELECT {', '.join(COMPLETION_COLUMNS)} FROM completions WHERE id IN "
_BUMP = """
    INSERT INTO training_tables (name, version, unmarks) VALUES (?, 1, ?)
    ON CONFLICT (name) DO UPDATE
    SET version = training_tables.version + 1, unmarks = training_tables.unmarks + excluded.unmarks
    RETURNING version"""
# A training table's rows: one table, format and embedding length.
_ROWS = """
    SELECT m.completion, c.embedding, m.scores, m.seq
    FROM completion_marks m JOIN completions c ON c.id = m.completion
    WHERE m.training_table_name = ? AND m.response_format_hash = ? AND m.dimensions = ?"""
_PART = 500  # ids bound per statement (SQLite binds at most 32766 values)

CompletionRow = Sequence[Any]


def conflict(index: int | None) -> ConflictError:
    """The refusal of a completion whose id was recorded before with other content."""
    problem = ConflictError.one("/id", "was recorded before with different content")
    return problem if index is None else problem.of_event(index)


class TrainingSql:
    """Completions, marks and the rows of training tables, over ``self.conn``."""

    conn: Any  # a registry.store.sql.Conn

    # --- recording ----------------------------------------------------------------------------

    def write_completions(
        self, rows: Sequence[CompletionRow], where: Sequence[int | None], timeless: Collection[int]
    ) -> int:
        """Insert the completions whose ids are new; each other one must repeat its stored
        completion (``at`` aside when it was not given: ``timeless`` positions), else a
        `ConflictError` at ``where[position]``. How many were written."""
        inserted = self.insert_new_completions(rows)
        rest = [position for position in range(len(rows)) if position not in inserted]
        if rest:
            from registry.completions import same_completion  # noqa: PLC0415 - numpy only when used

            stored = self.stored_completions({rows[position][0] for position in rest})
            for position in rest:
                row = rows[position]
                if not same_completion(stored[row[0]], row, position in timeless):
                    raise conflict(where[position])
        return len(inserted)

    def insert_new_completions(self, rows: Sequence[CompletionRow]) -> set[int]:
        """Insert the first row of each id not stored yet; their positions. (Run under
        SQLite's write lock: nothing can store one of these ids meanwhile.)"""
        stored = self._existing([row[0] for row in rows])
        new: dict[str, int] = {}
        for position, row in enumerate(rows):
            if row[0] not in stored:
                new.setdefault(row[0], position)
        self.conn.executemany(INSERT_COMPLETION, [rows[position] for position in new.values()])
        return set(new.values())

    def _existing(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _PART):
            part = unique[start : start + _PART]
            sql = f"SELECT id FROM completions WHERE id IN ({', '.join('?' * len(part))})"
            found.update(completion for (completion,) in self.conn.execute(sql, part))
        return found

    def stored_completions(self, ids: Collection[str]) -> dict[str, tuple[Any, ...]]:
        """The stored rows of these completions, by id."""
        found: dict[str, tuple[Any, ...]] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), _PART):
            part = wanted[start : start + _PART]
            for row in self.conn.execute(f"{_STORED}({', '.join('?' * len(part))})", part):
                found[row[0]] = tuple(row)
        return found

    # --- reading one --------------------------------------------------------------------------

    def completion(self, completion: str) -> tuple[Any, ...] | None:
        """A stored completion's row, with its mark's answer last (None: not marked)."""
        columns = ", ".join(f"c.{column}" for column in COMPLETION_COLUMNS)
        row = self.conn.execute(
            f"SELECT {columns}, m.correct_confidence_id FROM completions c"
            " LEFT JOIN completion_marks m ON m.completion = c.id WHERE c.id = ?",
            [completion],
        ).fetchone()
        return None if row is None else tuple(row)

    # --- marks --------------------------------------------------------------------------------

    def put_mark(self, row: Sequence[Any], correct: str, scores: bytes, now: int) -> bool:
        """Mark the completion ``row`` (as `completion` gives it) with its correct answer and
        the scores that makes; False when it was marked with that answer already."""
        completion, table = row[0], row[2]
        if row[-1] == correct:
            return False
        seq = self._bump(table, unmarks=0) if table is not None else 0
        self.conn.execute(
            """
            INSERT INTO completion_marks (completion, training_table_name, response_format_hash,
                dimensions, correct_confidence_id, scores, seq, marked)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (completion) DO UPDATE SET
                correct_confidence_id = excluded.correct_confidence_id,
                scores = excluded.scores, seq = excluded.seq, marked = excluded.marked""",
            [completion, table, row[3], row[4], correct, scores, seq, now],
        )
        return True

    def delete_mark(self, row: Sequence[Any]) -> bool:
        """Unmark the completion ``row``; False when it was not marked."""
        if row[-1] is None:
            return False
        self.conn.execute("DELETE FROM completion_marks WHERE completion = ?", [row[0]])
        if row[2] is not None:
            self._bump(row[2], unmarks=1)
        return True

    def _bump(self, table: str, *, unmarks: int) -> int:
        (version,) = self.conn.execute(_BUMP, [table, unmarks]).fetchone()
        return int(version)

    # --- training tables ------------------------------------------------------------------------

    def training_state(self, table: str) -> tuple[int, int]:
        """``(version, unmarks)`` of a training table; (0, 0) before its first mark."""
        row = self.conn.execute(
            "SELECT version, unmarks FROM training_tables WHERE name = ?", [table]
        ).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def training_count(self, table: str, response_format_hash: str, dimensions: int) -> int:
        (count,) = self.conn.execute(
            "SELECT COUNT(*) FROM completion_marks WHERE training_table_name = ?"
            " AND response_format_hash = ? AND dimensions = ?",
            [table, response_format_hash, dimensions],
        ).fetchone()
        return int(count)

    def training_rows(
        self, table: str, response_format_hash: str, dimensions: int, after: int | None = None
    ) -> Iterator[tuple[str, bytes, bytes, int]]:
        """``(completion, embedding, scores, seq)`` of a training table's rows of one format
        and length (only those marked after version ``after``), read as they are used."""
        sql, params = _ROWS, [table, response_format_hash, dimensions]
        if after is not None:
            sql += " AND m.seq > ?"
            params.append(after)
        for completion, embedding, scores, seq in self.conn.execute(sql, params):
            yield str(completion), bytes(embedding), bytes(scores), int(seq)

    def table_scores(self, table: str) -> Iterator[bytes]:
        """The scores of every row of a training table (every format and length)."""
        for (scores,) in self.conn.execute(
            "SELECT scores FROM completion_marks WHERE training_table_name = ?", [table]
        ):
            yield bytes(scores)
