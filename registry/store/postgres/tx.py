"""The SQL of one transaction on a PostgreSQL registry: what `registry.store.Tx` declares.

The statements that both dialects write alike (statistics, list sorts,
series, name and membership checks, the 64-bit check, the rollups' rebuild)
are the SQLite backend's own, run through `Portable`, which takes SQLite's
``?`` and ``:name`` placeholders: each is written once. What differs is here:
recording usage (COPY into a staging table, then ONE statement that inserts
the new events and adds them into both rollups), ``IS NOT DISTINCT FROM``
for SQLite's ``IS``, and the month of a series (`series._bucket_key`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg

from registry import times
from registry.errors import ConflictError
from registry.model import AMOUNTS
from registry.query import (
    LLMS,
    Page,
    Subject,
    Window,
    chunks,
    rows_of,
    too_large,
)
from registry.series import Series
from registry.store.sqlite import series as shared_series
from registry.store.sqlite import usage as shared
from registry.store.sqlite.store import SqliteTx

Connection = psycopg.Connection[tuple[Any, ...]]

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=512)
def _to_pg(sql: str) -> str:
    """SQLite's placeholders as psycopg's: ``?`` as ``%s``, ``:name`` as ``%(name)s``."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%")).replace("?", "%s")


class _Rows:
    """A cursor whose numbers read as SQLite's: PostgreSQL's NUMERIC sums as ints."""

    def __init__(self, cursor: psycopg.Cursor[tuple[Any, ...]]) -> None:
        self._cursor = cursor

    @staticmethod
    def _row(row: tuple[Any, ...]) -> tuple[Any, ...]:
        # Only whole numbers (NUMERIC of scale 0, what SUM of integers gives): a view's
        # exact cost such as 0.5 stays a Decimal.
        return tuple(int(v) if isinstance(v, Decimal) and _whole(v) else v for v in row)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else self._row(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [self._row(row) for row in self._cursor.fetchall()]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return (self._row(row) for row in self._cursor)

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class Portable:
    """A psycopg connection with `sqlite3.Connection`'s ``execute``/``executemany``: the
    shared statements run on it unchanged. Every sum of integers that PostgreSQL makes
    NUMERIC comes back an int, as SQLite gives it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = None) -> _Rows:
        if params is None:
            return _Rows(self.conn.execute(sql.encode()))  # no placeholders: sent as is
        return _Rows(self.conn.execute(_to_pg(sql).encode(), params))

    def executemany(self, sql: str, params: Iterable[Any]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_to_pg(sql).encode(), list(params))


# --- recording usage: COPY into a staging table, then one merge --------------------------------

_COLUMNS = ("ord", "name", "user_id", "at", "request_id", *AMOUNTS, "query_model", "timeless")
_TYPES = ["int8", "text", "text", "int8", "text", *["int8"] * len(AMOUNTS), "text", "bool"]
# Per connection (the pool keeps connections), emptied at each commit; TEXT COLLATE "C"
# as the tables' keys, so that joins on them use their indexes.
_STAGE = f"""
    CREATE TEMPORARY TABLE IF NOT EXISTS qllm_stage (
        ord BIGINT NOT NULL, name TEXT COLLATE "C" NOT NULL, user_id TEXT COLLATE "C",
        at BIGINT NOT NULL, request_id TEXT COLLATE "C",
        {", ".join(f"{a} BIGINT NOT NULL" for a in AMOUNTS)},
        query_model TEXT COLLATE "C", timeless BOOLEAN NOT NULL
    ) ON COMMIT DELETE ROWS"""
_A = ", ".join(AMOUNTS)


def _add(table: str) -> str:
    return ", ".join(f"{a} = {table}.{a} + excluded.{a}" for a in ("requests", *AMOUNTS))


# Of staged rows sharing a request_id the first (by ord) is kept, as on SQLite. The
# rollups' upserts take their keys in order, so that concurrent writers lock rows in the
# same order and do not deadlock; a sum past 2**63 fails the BIGINT column (mapped to the
# same ValidationError as SQLite's). Returns the (name, query_model) pairs written.
_MERGE = f"""
    WITH kept AS (
        INSERT INTO usage_events (name, user_id, at, request_id, {_A}, query_model)
        SELECT name, user_id, at, request_id, {_A}, query_model FROM qllm_stage ORDER BY ord
        ON CONFLICT (request_id) DO NOTHING
        RETURNING name, user_id, at, {_A}, query_model
    ), hourly AS (
        INSERT INTO usage_hourly (name, hour, user_id, query_model, requests, {_A})
        {shared.hours_of("kept")} ORDER BY 1, 2, 3, 4
        ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {_add("usage_hourly")}
    ), totals AS (
        INSERT INTO usage_totals (name, user_id, query_model, requests, {_A})
        {shared.totals_of("kept")} ORDER BY 1, 2, 3
        ON CONFLICT (name, user_id, query_model) DO UPDATE SET {_add("usage_totals")}
    )
    SELECT name, query_model, COUNT(*) FROM kept GROUP BY 1, 2"""
# The same merge for a batch whose request_ids are all new as far as the statement can
# see: a plain INSERT of the rows no stored event has the request_id of. ON CONFLICT's
# speculative insertion (a token per row, then a second WAL record to confirm it) made
# the merge 10 to 20 % slower (200,000 events, alternated). Only for a batch without a
# request_id twice (else which one is kept would depend on the plan), and in a savepoint:
# a writer that commits one of the same request_ids meanwhile makes it fail, and the
# batch then runs through `_MERGE`.
_MERGE_NEW = _MERGE.replace(
    """FROM qllm_stage ORDER BY ord
        ON CONFLICT (request_id) DO NOTHING""",
    """FROM qllm_stage s WHERE NOT EXISTS (
            SELECT FROM usage_events e WHERE e.request_id = s.request_id)
        ORDER BY ord""",
)
assert _MERGE_NEW != _MERGE
# Below this many rows the savepoint's two round trips cost more than the path saves.
_NEW_FROM = 200
# SQLite's `_FIRST_CONFLICT`, with IS NOT DISTINCT FROM for SQLite's IS.
_FIRST_CONFLICT = f"""
    SELECT s.ord FROM qllm_stage s JOIN usage_events e ON e.request_id = s.request_id
    WHERE NOT (e.name = s.name AND e.user_id IS NOT DISTINCT FROM s.user_id
        AND (s.timeless OR e.at = s.at) AND e.query_model IS NOT DISTINCT FROM s.query_model
        AND {" AND ".join(f"e.{a} = s.{a}" for a in AMOUNTS)})
    ORDER BY s.ord LIMIT 1"""


# Memory for the merge's sorts, aggregates and its RETURNING rows, per staged row (measured:
# about 190 bytes a staged row sorted, 150 kept, 800 an hourly group). With the server's
# default (4 MB) a batch of 100,000 events spilled all three to temporary files.
_WORK_MEM_PER_ROW = 1024
_WORK_MEM_MB = (4, 512)  # the server's default at least; at most what one merge may take


def work_mem(rows: int) -> str:
    """The ``work_mem`` that keeps a merge of ``rows`` staged events in memory."""
    low, high = _WORK_MEM_MB
    return f"{min(high, max(low, -(-rows * _WORK_MEM_PER_ROW // 2**20)))}MB"


def merge(
    conn: Connection, rows: list[list[Any]], timeless: set[int], first: int, batch: bool
) -> int:
    """Write validated ``rows`` inside the caller's transaction; how many were new.

    ``first``: the batch index of ``rows[0]`` (for error paths). Names and
    memberships must have been checked.
    """
    if not rows:
        return 0
    memory = work_mem(len(rows))
    if memory != work_mem(0):  # a small batch (a single event) needs no extra round trip
        # For this transaction only (SET LOCAL); no other session's memory changes.
        conn.execute("SELECT set_config('work_mem', %s, true)", [memory])
    conn.execute(_STAGE)
    conn.execute("TRUNCATE qllm_stage")
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY qllm_stage ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
    ):
        copy.set_types(_TYPES)
        for position, row in enumerate(rows):
            copy.write_row([first + position, *row, position in timeless])
    try:
        written = _merged(conn, rows)
    except psycopg.errors.NumericValueOutOfRange as exc:  # a rollup's BIGINT past 2**63
        raise too_large("Query LLM") from exc
    count = sum(int(n) for _, _, n in written)
    if count < len(rows):  # some request_ids were seen before: each must repeat its event
        conflict = conn.execute(_FIRST_CONFLICT).fetchone()
        if conflict is not None:
            path = f"/{conflict[0]}/request_id" if batch else "/request_id"
            raise ConflictError.one(path, "was recorded before with different content")
    shared.check_all_totals(Portable(conn), [(name, model) for name, model, _ in written])
    conn.execute("TRUNCATE qllm_stage")
    return count


def _merged(conn: Connection, rows: list[list[Any]]) -> list[tuple[Any, ...]]:
    """The staged rows merged: (name, query_model, count) of what was new."""
    if len(rows) >= _NEW_FROM:
        ids = [row[3] for row in rows if row[3] is not None]
        if len(set(ids)) == len(ids):
            try:
                with conn.transaction():  # a savepoint
                    return conn.execute(_MERGE_NEW).fetchall()
            except psycopg.errors.UniqueViolation:
                pass  # committed meanwhile by another writer: ON CONFLICT decides
    return conn.execute(_MERGE).fetchall()


def check(
    conn: Connection, rows: list[list[Any]], known: set[str], first: int, batch: bool
) -> None:
    """Every row names a registered Query LLM, and a Query Model that has it as a member."""
    portable = Portable(conn)
    where = first if batch else None
    shared._check_names(portable, rows, known, where)
    shared.check_members(portable, rows, where)


class PostgresTx(SqliteTx):
    """SQLite's statements where they are the same SQL (on a `Portable`), PostgreSQL's
    own where they differ."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(Portable(conn))  # type: ignore[arg-type]
        self.pg = conn

    def totals(
        self, name: str, user: str | None, window: Window, subject: Subject = LLMS
    ) -> dict[str, Any]:
        return shared.totals(self.conn, name, user, window, subject)

    def ranked_names(self, page: Page, user: str | None, subject: Subject = LLMS) -> list[str]:
        return shared.ranked_names(self.conn, page, user, subject)

    def series(self, query: Series, user: str | None) -> list[dict[str, Any]]:
        return shared_series.series(self.conn, query, user, dialect="postgres")

    def record(
        self, events: Iterable[Any], user: str | None, known_names: set[str], *, batch: bool
    ) -> int:
        now = times.now()
        written = 0
        first = 0
        for chunk in chunks(events):
            rows, timeless = rows_of(chunk, user, now, first, batch)
            check(self.pg, rows, known_names, first, batch)
            written += merge(self.pg, rows, timeless, first, batch)
            first += len(chunk)
        return written

    def put_events(self, rows: list[list[Any]]) -> int:
        # The same COPY and merge as a batch of `record`: events and both rollups at once.
        return merge(self.pg, rows, set(), 0, batch=True)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: a `RegistryError` inside rolls back only its writes."""
        # psycopg's nested transaction is a SAVEPOINT: rolled back on any exception,
        # which goes on to the caller.
        with self.pg.transaction():
            yield

    def rebuild_rollups(self) -> dict[str, int]:
        # Writers wait while the rollups are rebuilt: none can add to a rollup row between
        # the DELETE and the INSERT ... SELECT (readers go on).
        self.pg.execute("LOCK TABLE usage_events, usage_hourly, usage_totals IN EXCLUSIVE MODE")
        return shared.rebuild_rollups(self.conn)


def _whole(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= 0
