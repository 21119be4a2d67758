"""The raw rows of a registry, for copying it to another backend and checking the copy:
pages in key order, plain inserts, and the statistics to compare. The same SQL in both
dialects: the SQLite backend runs it on its connection, PostgreSQL through its
`Portable` adapter; so it lives here, beside the interface, in neither backend's
package.

Every page is read by keyset (``WHERE key > last ORDER BY key LIMIT n``), never by
``OFFSET``: each page costs one index seek whatever its position, and a copy of a
million events holds one page in memory at a time. Text keys compare bytewise on
both backends (SQLite's BINARY, PostgreSQL's ``COLLATE "C"``), which is also the
order of Python's ``str`` comparison: two streams can be merged in Python.
"""

from __future__ import annotations

from typing import Any

from registry.model import AMOUNTS
from registry.store.sqlite.usage import hours_of, totals_of

# table -> (key columns, the other columns), parents before children: the order a
# copy writes them in, so that every foreign key finds its row.
COPIED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "users": (("id",), ("created",)),
    "tokens": (("hash",), ("user_id", "created", "revoked")),
    "query_llms": (
        ("name",),
        ("training_table_name", "body", "model", "mode", "weight_type", "created", "user_id"),
    ),
    "query_models": (
        ("name",),
        ("training_table_name", "body", "weight", "weight_type", "members", "created", "user_id"),
    ),
    "query_model_members": (("model", "position"), ("member",)),
}
# The rollups: never copied (the events' writes keep them), only compared.
ROLLUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "usage_hourly": (("name", "hour", "user_id", "query_model"), ("requests", *AMOUNTS)),
    "usage_totals": (("name", "user_id", "query_model"), ("requests", *AMOUNTS)),
}
LAYOUTS = COPIED | ROLLUPS
# A usage_events row as the stores write it (`usage.Row`); pages put ``id`` first.
EVENT_COLUMNS = ("name", "user_id", "at", "request_id", *AMOUNTS, "query_model")
# What statistics are compared by: per Query LLM, per user, per Query Model.
STATISTICS = ("name", "user_id", "query_model")

_SUMS = ", ".join(f"SUM({a})" for a in ("requests", *AMOUNTS))
# The rollups' rows rebuilt from the events (as `usage.rebuild_rollups` does), for the
# Query LLMs of one range of names: what a check of the stored rollups compares with.
_IN_RANGE = "usage_events WHERE name >= ? AND name <= ?"
_REBUILT = {
    "usage_hourly": hours_of(_IN_RANGE) + " ORDER BY 1, 2, 3, 4",
    "usage_totals": totals_of(_IN_RANGE) + " ORDER BY 1, 2, 3",
}

Conn = Any  # a sqlite3.Connection, or PostgreSQL's `Portable`


def page(
    conn: Conn, table: str, after: tuple[Any, ...] | None, limit: int
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows of ``table`` (key columns first) whose key follows ``after``."""
    key, rest = LAYOUTS[table]  # a KeyError for any other name: nothing unknown reaches SQL
    columns = ", ".join((*key, *rest))
    order = ", ".join(key)
    where = ""
    params: list[Any] = []
    if after is not None:
        # A row value compares column by column, as the ORDER BY sorts.
        where = f" WHERE ({order}) > ({', '.join('?' * len(key))})"
        params.extend(after)
    sql = f"SELECT {columns} FROM {table}{where} ORDER BY {order} LIMIT ?"
    return [tuple(row) for row in conn.execute(sql, [*params, limit])]


def event_page(conn: Conn, after: int, limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit`` usage events with an id above ``after``, in id order: ``(id, *row)``."""
    sql = (
        f"SELECT id, {', '.join(EVENT_COLUMNS)} FROM usage_events WHERE id > ? ORDER BY id LIMIT ?"
    )
    return [tuple(row) for row in conn.execute(sql, [after, limit])]


def count_events(conn: Conn) -> int:
    (count,) = conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()
    return int(count)


def insert(conn: Conn, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows of a `COPIED` table as they are; a key already there is left alone."""
    key, rest = COPIED[table]
    columns = (*key, *rest)
    conn.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT ({', '.join(key)}) DO NOTHING",
        rows,
    )


def statistics(conn: Conn, by: str, after: str | None, limit: int) -> list[tuple[Any, ...]]:
    """All-time requests and sums per ``by`` (a `STATISTICS` column) from the totals, in
    order of ``by``, after ``after``: what `get` and ``me`` answer, group by group."""
    if by not in STATISTICS:
        raise ValueError(by)
    where = "" if after is None else f" WHERE {by} > ?"
    params: list[Any] = [] if after is None else [after]
    sql = f"SELECT {by}, {_SUMS} FROM usage_totals{where} GROUP BY {by} ORDER BY {by} LIMIT ?"
    return [tuple(row) for row in conn.execute(sql, [*params, limit])]


def rollup_rows(conn: Conn, table: str, low: str, high: str) -> list[tuple[Any, ...]]:
    """The stored rows of a rollup for the Query LLMs named ``low`` to ``high``, in key order."""
    key, rest = ROLLUPS[table]
    sql = (
        f"SELECT {', '.join((*key, *rest))} FROM {table} WHERE name >= ? AND name <= ?"
        f" ORDER BY {', '.join(key)}"
    )
    return [tuple(row) for row in conn.execute(sql, [low, high])]


def rebuilt_rows(conn: Conn, table: str, low: str, high: str) -> list[tuple[Any, ...]]:
    """`rollup_rows` as a rebuild from the events would make them."""
    return [tuple(row) for row in conn.execute(_REBUILT[table], [low, high])]
