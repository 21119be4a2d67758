"""How to write 1M usage events into PostgreSQL: the measurement behind the backend's ingest.

The library itself on both backends (validation, idempotency and rollups
included) is measured by ``bench/pg_bench.py``, part of ``make bench``. This
script compares the methods below. Run ``.venv/bin/python bench/pg_ingest.py``:
it starts a PostgreSQL of its own with durable defaults (fsync on, as a
real server; the test server runs with fsync off), or uses ``--dsn URL``
(a database is created there and dropped).

The same prepared rows (name, user_id, at, request_id and six amounts; no
validation) are written in one transaction per method, into freshly
truncated tables:

- staging+text / staging+binary: ``COPY`` into a temporary staging table,
  then ONE statement: ``INSERT ... SELECT ... ON CONFLICT (request_id) DO
  NOTHING RETURNING`` the kept rows, rolled up by ``GROUP BY`` into both
  rollups with ``INSERT ... ON CONFLICT DO UPDATE`` (keys in order, so that
  concurrent writers lock rollup rows in one order), and the count kept.
- executemany: the insert as ``executemany`` (psycopg pipelines it: no round
  trip per row), the rollups summed in Python and upserted by ``executemany``,
  as the SQLite backend does.
- raw COPY (text, binary): straight into usage_events, no idempotency, no
  rollups: the floor.
- sqlite raw: the SQLite backend's own insert by ``executemany``, no rollups,
  for scale.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from registry import times  # noqa: E402
from registry.model import AMOUNTS  # noqa: E402
from registry.registry import Registry  # noqa: E402
from registry.store.sql import INSERT_EVENT  # noqa: E402
from tests.support.pg import scratch  # noqa: E402

HOUR = 3_600_000_000
Row = tuple[Any, ...]
COLUMNS = ("name", "user_id", "at", "request_id", *AMOUNTS)
TYPES = ["text", "text", "int8", "text"] + ["int8"] * len(AMOUNTS)

STAGING = f"""
    CREATE TEMPORARY TABLE staging (
        ord BIGINT GENERATED ALWAYS AS IDENTITY, name TEXT COLLATE "C", user_id TEXT COLLATE "C",
        at BIGINT, request_id TEXT COLLATE "C", {", ".join(f"{a} BIGINT" for a in AMOUNTS)}
    ) ON COMMIT DROP"""
_SUMS = ", ".join(f"SUM({a})" for a in AMOUNTS)
_ADD_H = ", ".join(f"{a} = usage_hourly.{a} + excluded.{a}" for a in ("requests", *AMOUNTS))
_ADD_T = ", ".join(f"{a} = usage_totals.{a} + excluded.{a}" for a in ("requests", *AMOUNTS))
_AMOUNTS = ", ".join(AMOUNTS)
MERGE = f"""
    WITH kept AS (
        INSERT INTO usage_events (name, user_id, at, request_id, {_AMOUNTS})
        SELECT name, user_id, at, request_id, {_AMOUNTS} FROM staging ORDER BY ord
        ON CONFLICT (request_id) DO NOTHING
        RETURNING name, user_id, at, {_AMOUNTS}
    ), hourly AS (
        INSERT INTO usage_hourly (name, hour, user_id, requests, {_AMOUNTS})
        SELECT name, at - at % {HOUR}, COALESCE(user_id, ''), COUNT(*), {_SUMS}
        FROM kept GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {_ADD_H}
    ), totals AS (
        INSERT INTO usage_totals (name, user_id, requests, {_AMOUNTS})
        SELECT name, COALESCE(user_id, ''), COUNT(*), {_SUMS}
        FROM kept GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (name, user_id, query_model) DO UPDATE SET {_ADD_T}
    )
    SELECT COUNT(*) FROM kept"""
INSERT = f"""
    INSERT INTO usage_events (name, user_id, at, request_id, {_AMOUNTS})
    VALUES ({", ".join(["%s"] * len(COLUMNS))})
    ON CONFLICT (request_id) DO NOTHING"""
UPSERT_H = f"""
    INSERT INTO usage_hourly (name, hour, user_id, requests, {_AMOUNTS})
    VALUES ({", ".join(["%s"] * (4 + len(AMOUNTS)))})
    ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {_ADD_H}"""
UPSERT_T = f"""
    INSERT INTO usage_totals (name, user_id, requests, {_AMOUNTS})
    VALUES ({", ".join(["%s"] * (3 + len(AMOUNTS)))})
    ON CONFLICT (name, user_id, query_model) DO UPDATE SET {_ADD_T}"""

Conn = psycopg.Connection[tuple[Any, ...]]


def make_rows(count: int, names: Sequence[str], users: Sequence[str | None]) -> list[Row]:
    """Events over 30 days from 2026-11-01, spread over names, users and hours."""
    rnd = random.Random(1)
    base = times.parse("2026-11-01T00:00:00Z")
    span = 30 * 24 * HOUR
    return [
        (
            names[i % len(names)],
            users[i % len(users)],
            base + rnd.randrange(span),
            f"req-{i:09d}",
            rnd.randrange(1000),
            rnd.randrange(1000),
            rnd.randrange(10**7),
            0,
            rnd.randrange(100),
            rnd.randrange(10**5),
        )
        for i in range(count)
    ]


def chunks(rows: list[Row], size: int) -> list[list[Row]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def staging(conn: Conn, rows: list[Row], size: int, binary: bool) -> int:
    written = 0
    with conn.transaction():
        conn.execute(STAGING)
        for chunk in chunks(rows, size):
            with conn.cursor() as cur:
                fmt = " (FORMAT BINARY)" if binary else ""
                with cur.copy(f"COPY staging ({', '.join(COLUMNS)}) FROM STDIN{fmt}") as copy:
                    if binary:
                        copy.set_types(TYPES)
                    for row in chunk:
                        copy.write_row(row)
                (kept,) = cur.execute(MERGE).fetchone() or (0,)
                written += kept
                cur.execute("TRUNCATE staging")
    return written


def executemany(conn: Conn, rows: list[Row], size: int) -> int:
    written = 0
    with conn.transaction(), conn.cursor() as cur:
        for chunk in chunks(rows, size):
            cur.executemany(INSERT, chunk)
            written += cur.rowcount
            assert cur.rowcount == len(chunk)  # no repeats here: every row is kept
            hours: dict[tuple[Any, ...], list[int]] = {}
            for name, user, at, _, *amounts in chunk:
                total = hours.setdefault((name, at - at % HOUR, user or ""), [0] * 7)
                total[0] += 1
                for i, value in enumerate(amounts, 1):
                    total[i] += value
            totals: dict[tuple[Any, ...], list[int]] = {}
            for (name, _, user), sums in hours.items():
                total = totals.setdefault((name, user), [0] * 7)
                for i, value in enumerate(sums):
                    total[i] += value
            cur.executemany(UPSERT_H, [[*k, *v] for k, v in sorted(hours.items())])
            cur.executemany(UPSERT_T, [[*k, *v] for k, v in sorted(totals.items())])
    return written


def raw_copy(conn: Conn, rows: list[Row], binary: bool) -> int:
    with conn.transaction(), conn.cursor() as cur:
        fmt = " (FORMAT BINARY)" if binary else ""
        with cur.copy(f"COPY usage_events ({', '.join(COLUMNS)}) FROM STDIN{fmt}") as copy:
            if binary:
                copy.set_types(TYPES)
            for row in rows:
                copy.write_row(row)
    return len(rows)


def check(conn: Conn, count: int, rollups: bool) -> None:
    """Every event stored once; the rollups equal a rebuild from the events."""
    (events,) = conn.execute("SELECT COUNT(*) FROM usage_events").fetchone() or (0,)
    assert events == count, (events, count)
    if not rollups:
        return
    (requests,) = conn.execute("SELECT SUM(requests) FROM usage_totals").fetchone() or (0,)
    assert requests == count, (requests, count)
    (wrong,) = conn.execute(
        f"""SELECT COUNT(*) FROM (
            SELECT name, at - at % {HOUR} AS hour, COALESCE(user_id, '') AS user_id,
                COUNT(*) AS requests, {_SUMS} FROM usage_events GROUP BY 1, 2, 3
            EXCEPT SELECT name, hour, user_id, requests, {_AMOUNTS} FROM usage_hourly) x"""
    ).fetchone() or (0,)
    assert wrong == 0, wrong


def run(conn: Conn, label: str, count: int, work: Callable[[], int], rollups: bool = True) -> None:
    conn.execute("TRUNCATE usage_events, usage_hourly, usage_totals")
    conn.execute("CHECKPOINT")  # each method starts with nothing dirty to flush
    start = time.perf_counter()
    written = work()
    seconds = time.perf_counter() - start
    assert written == count
    check(conn, count, rollups)
    print(f"| {label} | {seconds:.2f} s | {count / seconds:,.0f}/s |", flush=True)


def sqlite_raw(rows: list[Row]) -> None:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "raw.db"
        Registry(path).close()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA synchronous = FULL")
        names = sorted({row[0] for row in rows})
        conn.executemany(
            "INSERT INTO query_llms VALUES (?, NULL, '{}', 'm', 'x', 'y', 0, NULL)",
            [[n] for n in names],
        )
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            INSERT_EVENT + " ON CONFLICT (request_id) DO NOTHING",
            [(*r[:1], None, *r[2:], None) for r in rows],
        )
        conn.execute("COMMIT")
        seconds = time.perf_counter() - start
        rate = f"{len(rows) / seconds:,.0f}/s"
        print(f"| sqlite raw executemany, no rollups | {seconds:.2f} s | {rate} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, action="append", help="rows per statement")
    parser.add_argument("--dsn", help="a server to use instead of starting one")
    args = parser.parse_args(argv)
    sizes = args.chunk or [10_000, 100_000]
    with scratch(args.dsn, {"max_connections": "20"}) as pg:  # a migrated database, dropped after
        location = pg.dsn(pg.create())
        names = [f"llm{i:03d}" for i in range(100)]
        users: list[str | None] = [None, *(f"user{i}" for i in range(9))]
        rows = make_rows(args.events, names, users)
        print(f"PostgreSQL {pg.version}, {args.events:,} events, one transaction each\n")
        print("| method | time | events/s |\n| --- | --- | --- |")
        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute("INSERT INTO users SELECT 'user' || g, 0 FROM generate_series(0, 8) g")
            conn.cursor().executemany(
                "INSERT INTO query_llms VALUES (%s, NULL, '{}', 'm', 'x', 'y', 0, NULL)",
                [[n] for n in names],
            )
            for size in sizes:
                for binary in (False, True):
                    run(
                        conn,
                        f"staging + {'binary' if binary else 'text'} COPY, merge, {size:,}/chunk",
                        len(rows),
                        lambda s=size, b=binary: staging(conn, rows, s, b),  # type: ignore[misc]
                    )
                run(
                    conn,
                    f"executemany (pipeline) + rollups, {size:,}/chunk",
                    len(rows),
                    lambda s=size: executemany(conn, rows, s),  # type: ignore[misc]
                )
            for binary in (False, True):
                run(
                    conn,
                    f"raw {'binary' if binary else 'text'} COPY into usage_events, no rollups",
                    len(rows),
                    lambda b=binary: raw_copy(conn, rows, b),  # type: ignore[misc]
                    rollups=False,
                )
        sqlite_raw(rows)


if __name__ == "__main__":
    main()
