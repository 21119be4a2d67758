"""The SQL of one transaction on a PostgreSQL registry: the shared statements (`SqlTx`, run
through `Portable`, which takes SQLite's placeholders) and PostgreSQL's own: usage rows
in (COPY into a staging table, then ONE statement that inserts the new events and adds
them into both rollups), savepoints, and the month of a series.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg

from registry.model import AMOUNTS
from registry.store.postgres.training import PostgresTraining
from registry.store.spool import Spool
from registry.store.sql import SqlTx, hours_of, repeated, too_large, totals_of

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


class Portable:
    """A psycopg connection as a `registry.store.sql.Conn`: ``execute`` and
    ``executemany`` take SQLite's placeholders, and every sum of integers that
    PostgreSQL makes NUMERIC comes back an int, as SQLite gives it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Any = None, /) -> _Rows:
        if parameters is None:
            return _Rows(self.conn.execute(sql.encode()))  # no placeholders: sent as is
        return _Rows(self.conn.execute(_to_pg(sql).encode(), parameters))

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_to_pg(sql).encode(), list(parameters))


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
        {hours_of("kept")} ORDER BY 1, 2, 3, 4
        ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {_add("usage_hourly")}
    ), totals AS (
        INSERT INTO usage_totals (name, user_id, query_model, requests, {_A})
        {totals_of("kept")} ORDER BY 1, 2, 3
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
_UNIQUE_HELD = 100_000
# The first staged row that repeats a stored request_id with other content.
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


class PostgresTx(PostgresTraining, SqlTx):
    """One transaction on a pooled psycopg connection (what `registry.store.Tx` declares)."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(Portable(conn))
        self.pg = conn

    def write(self, spool: Spool) -> int:
        """COPY the spool's rows into ``qllm_stage``, then merge them in one statement."""
        if not spool.count:
            return 0
        conn = self.pg
        memory = work_mem(spool.count)
        if memory != work_mem(0):  # a small batch (a single event) needs no extra round trip
            # For this transaction only (SET LOCAL); no other session's memory changes.
            conn.execute("SELECT set_config('work_mem', %s, true)", [memory])
        conn.execute(_STAGE)
        conn.execute("TRUNCATE qllm_stage")
        unique = True
        seen: set[str] = set()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY qllm_stage ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
        ):
            copy.set_types(_TYPES)
            for chunk in spool.chunks():
                for position, row in enumerate(chunk.rows):
                    copy.write_row([chunk.first + position, *row, position in chunk.timeless])
                    request_id = row[3]
                    if unique and request_id is not None:
                        # Held for a batch of up to _UNIQUE_HELD ids: past that, the
                        # ON CONFLICT merge, rather than memory that grows with the batch.
                        unique = request_id not in seen and len(seen) < _UNIQUE_HELD
                        seen.add(request_id)
        seen.clear()
        try:
            written = self._merged(spool.count, unique)
        except psycopg.errors.NumericValueOutOfRange as exc:  # a rollup's BIGINT past 2**63
            raise too_large() from exc
        count = sum(int(n) for _, _, n in written)
        if count < spool.count:  # some request_ids were seen before: each must repeat its event
            conflict = conn.execute(_FIRST_CONFLICT).fetchone()
            if conflict is not None:
                raise repeated(conflict[0] if spool.batch else None)
        self.check_all_totals([(name, model) for name, model, _ in written])
        conn.execute("TRUNCATE qllm_stage")
        return count

    def _merged(self, rows: int, unique: bool) -> list[tuple[Any, ...]]:
        """The staged rows merged: (name, query_model, count) of what was new."""
        if rows >= _NEW_FROM and unique:
            try:
                with self.pg.transaction():  # a savepoint
                    return self.pg.execute(_MERGE_NEW).fetchall()
            except psycopg.errors.UniqueViolation:
                pass  # committed meanwhile by another writer: ON CONFLICT decides
        return self.pg.execute(_MERGE).fetchall()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: a `RegistryError` inside rolls back only its writes."""
        # psycopg's nested transaction is a SAVEPOINT: rolled back on any exception,
        # which goes on to the caller.
        with self.pg.transaction():
            yield

    def month_key(self, column: str) -> str:
        stamp = f"(TIMESTAMP '1970-01-01' + {column} * INTERVAL '1 microsecond')"
        return f"EXTRACT(YEAR FROM {stamp}) * 12 + EXTRACT(MONTH FROM {stamp}) - 1"

    def rebuild_rollups(self) -> dict[str, int]:
        # Writers wait while the rollups are rebuilt: none can add to a rollup row between
        # the DELETE and the INSERT ... SELECT (readers go on).
        self.pg.execute("LOCK TABLE usage_events, usage_hourly, usage_totals IN EXCLUSIVE MODE")
        return super().rebuild_rollups()


def _whole(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= 0
