"""The SQL of one transaction on a registry file: the shared statements (`SqlTx`) and
SQLite's own: usage rows in, savepoints, and the month of a series.

Recording runs inside ``BEGIN IMMEDIATE`` (`SqliteStore`), so this transaction
is the only writer: ``executemany`` inserts a chunk of validated rows, ``ON
CONFLICT (request_id) DO NOTHING`` skips repeats (each must repeat its stored
event exactly), and the rollups are added from the sums the spool made while
the batch was validated, before the lock was taken.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from registry.errors import RegistryError
from registry.events import Chunk
from registry.model import AMOUNTS
from registry.query import NO_MODEL
from registry.store.spool import Spool
from registry.store.sql import (
    INSERT_EVENT,
    ROLL_UP_HOURS,
    ROLL_UP_TOTALS,
    STORED_EVENT,
    SqlTx,
    added,
    hours_of,
    repeated,
    same_event,
    too_large,
    totals_of,
)

_INSERT = INSERT_EVENT + " ON CONFLICT (request_id) DO NOTHING"
_LAST_ID = "SELECT COALESCE(MAX(id), 0) FROM usage_events"
_A = ", ".join(AMOUNTS)
# The rollups summed in SQL from the events written after an id: for a batch whose sums
# the spool could not hold, or one in which some events were repeats (skipped).
_ROLL_UP_SINCE = (
    f"""
    INSERT INTO usage_hourly (name, hour, user_id, query_model, requests, {_A})
    {hours_of("usage_events WHERE id > ?")}
    ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {added("usage_hourly")}""",
    f"""
    INSERT INTO usage_totals (name, user_id, query_model, requests, {_A})
    {totals_of("usage_events WHERE id > ?")}
    ON CONFLICT (name, user_id, query_model) DO UPDATE SET {added("usage_totals")}""",
)
_TOUCHED_SINCE = (
    f"SELECT DISTINCT name, COALESCE(query_model, '{NO_MODEL}') FROM usage_events WHERE id > ?"
)
_MICRO = 1_000_000


class SqliteTx(SqlTx):
    """One transaction on a `sqlite3.Connection` (what `registry.store.Tx` declares)."""

    conn: sqlite3.Connection

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)

    def add_events(self, spool: Spool) -> int:
        """Events and rollups at once: the write lock is this transaction's alone
        (``BEGIN IMMEDIATE``), so no other writer can wait on its rollup rows, and
        `apply_rollups` has nothing left to do."""
        conn = self.conn
        (since,) = conn.execute(_LAST_ID).fetchone()
        last = since
        written = 0
        for chunk in spool.chunks():
            before = conn.total_changes
            conn.executemany(_INSERT, chunk.rows)
            new = conn.total_changes - before
            if new < len(chunk.rows):  # some request_ids were seen before
                self._repeats(chunk, last, spool.batch)
                (last,) = conn.execute(_LAST_ID).fetchone()
            else:
                last += new  # the write lock is ours: ids follow on
            written += new
        if not written:
            return 0
        try:
            if spool.sums and written == spool.count:  # all new: the spool's sums are the rollups'
                touched: set[tuple[str, str]] = set()
                for hourly, totals in spool.runs():
                    conn.executemany(ROLL_UP_HOURS, hourly)
                    conn.executemany(ROLL_UP_TOTALS, totals)
                    touched.update((row[0], row[2]) for row in totals)
            else:
                for statement in _ROLL_UP_SINCE:
                    conn.execute(statement, [since])
                touched = set(conn.execute(_TOUCHED_SINCE, [since]).fetchall())
        except (sqlite3.IntegrityError, OverflowError) as exc:  # the rollups' 64-bit checks
            raise too_large() from exc
        except sqlite3.OperationalError as exc:  # SUM() past 64 bits
            if "integer overflow" not in str(exc):
                raise
            raise too_large() from exc
        self.check_all_totals(touched)
        return written

    def _repeats(self, chunk: Chunk, last_id: int, batch: bool) -> None:
        """Each row of ``chunk`` the insert skipped must repeat its stored event exactly.

        ``ON CONFLICT (request_id) DO NOTHING`` skipped them in order, so of rows
        sharing a ``request_id`` the first new one is the one kept.
        """
        kept = {
            request_id
            for (request_id,) in self.conn.execute(
                "SELECT request_id FROM usage_events WHERE id > ? AND request_id IS NOT NULL",
                [last_id],
            )
        }
        for position, row in enumerate(chunk.rows):
            request_id = row[3]
            if request_id is None or request_id in kept:
                kept.discard(request_id)
                continue
            stored = self.conn.execute(STORED_EVENT, [request_id]).fetchone()
            timeless = position in chunk.timeless
            if not same_event(stored, row, timeless):
                raise repeated(chunk.first + position if batch else None, stored, row, timeless)

    def _sums(self, sql: str, params: list[Any], group: str) -> list[Any]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "integer overflow" not in str(exc):
                raise
            raise too_large(group) from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: a `RegistryError` inside rolls back only its writes."""
        self.conn.execute("SAVEPOINT job")
        try:
            yield
        except RegistryError:
            self.conn.execute("ROLLBACK TO job")
            self.conn.execute("RELEASE job")
            raise
        self.conn.execute("RELEASE job")

    def month_key(self, column: str) -> str:
        seconds = f"(({column} - (({column} % {_MICRO}) + {_MICRO}) % {_MICRO}) / {_MICRO})"
        return (
            f"CAST(strftime('%Y', {seconds}, 'unixepoch') AS INTEGER) * 12"
            f" + CAST(strftime('%m', {seconds}, 'unixepoch') AS INTEGER) - 1"
        )
