"""The SQL of one transaction on a PostgreSQL registry: the shared statements (`SqlTx`, run
through `Portable`, which takes SQLite's placeholders) and PostgreSQL's own: usage rows
in (COPY into a staging table, then ONE statement that inserts the new events and sums
them into deltas; the deltas into both rollups last), savepoints, and the month of a
series.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg

from registry.errors import StorageBusyError
from registry.model import AMOUNTS
from registry.query import check_sums, models_of
from registry.store.postgres.training import PostgresTraining
from registry.store.spool import Spool
from registry.store.sql import EVENT_COLUMNS, SqlTx, added, hours_of, repeated, too_large

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


# --- recording usage: events first, rollups last -----------------------------------------------
#
# A write has two steps. `PostgresTx.add_events` copies a batch into ``qllm_stage`` and
# inserts its new events, adding their sums into ``qllm_deltas``: the hourly rollup rows
# the transaction will add to, in a temporary table of the session's own, so that no
# other writer waits on anything but a unique request_id while events go in.
# `PostgresTx.apply_rollups` then adds those deltas into both rollups, as the last
# statements of the transaction: every rollup row lock a transaction takes, it takes
# there, ``usage_hourly`` then ``usage_totals``, each in key order. Every writer takes its
# rollup locks in that one global order, so none waits for another in a cycle (no
# deadlock), and holds them only from those statements to its commit (an import of a
# million events inserts them first, and other writers wait only for its last seconds).
# A group commit (`registry.Registry.record_usage_groups`) adds each job's events in a
# savepoint and applies the sum of all its jobs' deltas once, at its end.

_COLUMNS = ("ord", "name", "user_id", "at", "request_id", *AMOUNTS, "query_model", "timeless")
_TYPES = ["int8", "text", "text", "int8", "text", *["int8"] * len(AMOUNTS), "text", "bool"]
_A = ", ".join(AMOUNTS)
_DAY = 86_400_000_000  # microseconds
# Per connection (made once, by `prepare`, when the pool connects), emptied at each commit;
# TEXT COLLATE "C" as the tables' keys, so that joins on them use their indexes and rows
# sort as the rollups' keys do.
TEMPORARY_TABLES = (
    f"""
    CREATE TEMPORARY TABLE IF NOT EXISTS qllm_stage (
        ord BIGINT NOT NULL, name TEXT COLLATE "C" NOT NULL, user_id TEXT COLLATE "C",
        at BIGINT NOT NULL, request_id TEXT COLLATE "C",
        {", ".join(f"{a} BIGINT NOT NULL" for a in AMOUNTS)},
        query_model TEXT COLLATE "C", timeless BOOLEAN NOT NULL
    ) ON COMMIT DELETE ROWS""",
    # BIGINT as the rollups: deltas that pass 2**63 fail here, in the job that adds them.
    f"""
    CREATE TEMPORARY TABLE IF NOT EXISTS qllm_deltas (
        name TEXT COLLATE "C" NOT NULL, hour BIGINT NOT NULL,
        user_id TEXT COLLATE "C" NOT NULL, query_model TEXT COLLATE "C" NOT NULL,
        requests BIGINT NOT NULL, {", ".join(f"{a} BIGINT NOT NULL" for a in AMOUNTS)},
        PRIMARY KEY (name, hour, user_id, query_model)
    ) ON COMMIT DELETE ROWS""",
)


def prepare(conn: Connection) -> None:
    """Make the session's temporary tables (the pool calls this once per new connection).

    A database that takes no writes at all (a standby, or one set read-only) refuses
    even temporary tables: its sessions go without them, so that it can still be read;
    a write there fails anyway, as the database cannot be written."""
    try:
        for statement in TEMPORARY_TABLES:
            conn.execute(statement)
    except psycopg.errors.ReadOnlySqlTransaction:
        return


# Of staged rows sharing a request_id the first (by ord) is kept, as on SQLite. Returns
# the (name, query_model) pairs written, with how many events each.
_MERGE = f"""
    WITH kept AS (
        INSERT INTO usage_events (name, user_id, at, request_id, {_A}, query_model)
        SELECT name, user_id, at, request_id, {_A}, query_model FROM qllm_stage ORDER BY ord
        ON CONFLICT (request_id) DO NOTHING
        RETURNING name, user_id, at, {_A}, query_model
    ), deltas AS (
        INSERT INTO qllm_deltas (name, hour, user_id, query_model, requests, {_A})
        {hours_of("kept")}
        ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {added("qllm_deltas")}
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
# From this many staged rows, TRUNCATE empties the stage (a new file: constant time); below,
# DELETE (no file operations).
_TRUNCATE_FROM = 5_000
# The first staged row whose request_id is stored with other content: its place, whether it
# left out ``at``, then the stored event and the row (`EVENT_COLUMNS` each), which
# `registry.store.sql.repeated` compares to say what differs.
_FIRST_CONFLICT = f"""
    SELECT s.ord, s.timeless, {", ".join(f"e.{c}" for c in EVENT_COLUMNS)},
        {", ".join(f"s.{c}" for c in EVENT_COLUMNS)}
    FROM qllm_stage s JOIN usage_events e ON e.request_id = s.request_id
    WHERE NOT (e.name = s.name AND e.user_id IS NOT DISTINCT FROM s.user_id
        AND (s.timeless OR e.at = s.at) AND e.query_model IS NOT DISTINCT FROM s.query_model
        AND {" AND ".join(f"e.{a} = s.{a}" for a in AMOUNTS)})
    ORDER BY s.ord LIMIT 1"""
# Each amount summed per Query LLM (or Query Model) over its stored all-time rows and the
# deltas waiting in this transaction: what its totals will be once they are applied.
_PENDING_SUMS = f"""
    SELECT {{column}}, {", ".join(f"SUM({a})" for a in AMOUNTS)} FROM (
        SELECT {{column}}, {_A} FROM usage_totals WHERE {{column}} = ANY(%(keys)s)
        UNION ALL
        SELECT {{column}}, {_A} FROM qllm_deltas WHERE {{column}} = ANY(%(keys)s)
    ) pending GROUP BY {{column}}"""
# The deltas into the rollups, in the one global order: usage_hourly by key, then
# usage_totals by key (see above). Sent as one simple query (no parameters): one round
# trip, the statements run in order.
_APPLY = ";".join(
    (
        f"""
    INSERT INTO usage_hourly (name, hour, user_id, query_model, requests, {_A})
    SELECT name, hour, user_id, query_model, requests, {_A} FROM qllm_deltas ORDER BY 1, 2, 3, 4
    ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {added("usage_hourly")}""",
        f"""
    INSERT INTO usage_totals (name, user_id, query_model, requests, {_A})
    SELECT name, user_id, query_model, SUM(requests), {", ".join(f"SUM({a})" for a in AMOUNTS)}
    FROM qllm_deltas GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (name, user_id, query_model) DO UPDATE SET {added("usage_totals")}""",
        "DELETE FROM qllm_deltas",
    )
)


class Overtaken(StorageBusyError):
    """The rollups passed 64 bits only once the deltas were applied: a concurrent writer
    added to them after this transaction checked its jobs (`PostgresTx.add_events`). The
    store runs the whole transaction again (`registry.store.postgres.store.RETRYABLE`):
    its checks then see that writer's sums, and refuse the job at fault alone."""

    def __init__(self) -> None:
        super().__init__(
            "a concurrent writer took these Query LLMs' totals close to 2**63 meanwhile; try again"
        )


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
        self._pending = False  # deltas in qllm_deltas that apply_rollups has not applied

    def add_events(self, spool: Spool) -> int:
        """COPY the spool's rows into ``qllm_stage``, insert the new ones into
        ``usage_events`` and their sums into ``qllm_deltas`` (one statement), and check
        that the totals stay 64-bit once the deltas are applied. After an error, roll
        back to before the call (its savepoint, or the whole transaction)."""
        if not spool.count:
            return 0
        conn = self.pg
        memory = work_mem(spool.count)
        if memory != work_mem(0):  # a small batch (a single event) needs no extra round trip
            # For this transaction only (SET LOCAL); no other session's memory changes.
            conn.execute("SELECT set_config('work_mem', %s, true)", [memory])
        unique = self._stage(spool)
        try:
            written = self._merged(spool.count, unique)
        except psycopg.errors.NumericValueOutOfRange as exc:  # this job's deltas past 2**63
            raise too_large() from exc
        count = sum(int(n) for _, _, n in written)
        if count < spool.count:  # some request_ids were seen before: each must repeat its event
            conflict = conn.execute(_FIRST_CONFLICT).fetchone()
            if conflict is not None:
                ord_, timeless, *both = conflict
                stored, row = both[: len(EVENT_COLUMNS)], both[len(EVENT_COLUMNS) :]
                raise repeated(ord_ if spool.batch else None, stored, row, timeless)
        conn.execute(
            "TRUNCATE qllm_stage" if spool.count >= _TRUNCATE_FROM else "DELETE FROM qllm_stage"
        )
        self._pending = True
        self._check_pending([(name, model) for name, model, _ in written])
        return count

    def _stage(self, spool: Spool) -> bool:
        """COPY the spool's rows into ``qllm_stage``; whether their request_ids are all
        different (as far as `_UNIQUE_HELD` of them tell)."""
        unique = True
        seen: set[str] = set()
        try:
            with (
                self.pg.cursor() as cur,
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
        except psycopg.errors.UndefinedTable as exc:
            # No staging table: `prepare` found a database that takes no writes.
            raise psycopg.errors.ReadOnlySqlTransaction(
                "the database takes no writes (a standby, or set read-only)"
            ) from exc
        return unique

    def _merged(self, rows: int, unique: bool) -> list[tuple[Any, ...]]:
        """The staged rows merged: (name, query_model, count) of what was new."""
        if rows >= _NEW_FROM and unique:
            try:
                with self.pg.transaction():  # a savepoint
                    return self.pg.execute(_MERGE_NEW).fetchall()
            except psycopg.errors.UniqueViolation:
                pass  # committed meanwhile by another writer: ON CONFLICT decides
        return self.pg.execute(_MERGE).fetchall()

    def _check_pending(self, touched: list[tuple[str, str | None]]) -> None:
        """`registry.store.sql.SqlTx.check_all_totals`, on the totals as they will be once
        this transaction's deltas are applied (they are not yet)."""
        for column, keys, group in (
            ("name", sorted({name for name, _ in touched}), "Query LLM"),
            ("query_model", sorted(models_of(touched)), "Query Model"),
        ):
            if not keys:
                continue
            found = self.pg.execute(_PENDING_SUMS.format(column=column), {"keys": keys})
            for _, *amounts in found:
                check_sums(dict(zip(AMOUNTS, (int(a) for a in amounts), strict=True)), group)

    def apply_rollups(self) -> None:
        """Add what `add_events` left in ``qllm_deltas`` into both rollups: the rollup row
        locks of the transaction, all taken here, in the one global order."""
        if not self._pending:
            return
        try:
            self.pg.execute(_APPLY.encode())
        except psycopg.errors.NumericValueOutOfRange as exc:
            raise Overtaken from exc
        self._pending = False

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: a `RegistryError` inside rolls back only its writes."""
        # psycopg's nested transaction is a SAVEPOINT: rolled back on any exception,
        # which goes on to the caller.
        with self.pg.transaction():
            yield

    def month_key(self, column: str) -> str:
        # In whole days, with integers only: ``column * INTERVAL '1 microsecond'`` went
        # through a float, and put the last microseconds of a month in the next one from
        # the 2250s on. ``(x % d + d) % d`` is a floor, also before 1970; a date plus an
        # integer is exact date arithmetic.
        day = f"(({column} - ((({column}) % {_DAY}) + {_DAY}) % {_DAY}) / {_DAY})"
        date = f"(DATE '1970-01-01' + CAST({day} AS INTEGER))"
        return f"CAST(EXTRACT(YEAR FROM {date}) * 12 + EXTRACT(MONTH FROM {date}) - 1 AS BIGINT)"

    def rebuild_rollups(self) -> dict[str, int]:
        # Writers wait while the rollups are rebuilt: none can add to a rollup row between
        # the DELETE and the INSERT ... SELECT (readers go on).
        self.pg.execute("LOCK TABLE usage_events, usage_hourly, usage_totals IN EXCLUSIVE MODE")
        return super().rebuild_rollups()


def _whole(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= 0
