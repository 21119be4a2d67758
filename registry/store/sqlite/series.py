"""Usage over time (USAGE_SERIES.md): its SQLite SQL.

A series is summed per bucket and group in SQL: from the hourly rollup for
the whole hours of the window, and from the raw events only for the partial
hours at its two edges (`registry.query.Window.pieces`). Each piece is one grouped
query that walks the Query LLMs and seeks each one's ``(name, hour)`` or
``(name, at)`` range, so its cost follows the window and the number of Query
LLMs, not the events stored outside the window.
"""

from __future__ import annotations

from typing import Any

from registry import series as buckets
from registry.model import AMOUNTS
from registry.query import ANONYMOUS, NO_MODEL, Window, credits
from registry.series import Series

# How each group key reads: (from a rollup row ``u``, from an event row ``u``); ``q`` is
# the Query LLM. The rollups store '' for events recorded without a token; the events NULL.
# The same holds for query_model: '' (rollups) or NULL (events) for no Query Model.
GROUP_SQL = {
    "name": ("q.name", "q.name"),
    "query_model": (f"NULLIF(u.query_model, '{NO_MODEL}')", "u.query_model"),
    "model": ("q.model", "q.model"),
    "user_id": (f"NULLIF(u.user_id, '{ANONYMOUS}')", "u.user_id"),
}
_ROLLED_SUMS = ", ".join(f"SUM(u.{a})" for a in ("requests", *AMOUNTS))
_RAW_SUMS = "COUNT(*), " + ", ".join(f"SUM(u.{a})" for a in AMOUNTS)
_MICRO = 1_000_000


def _bucket_key(column: str, bucket: str, dialect: str = "sqlite") -> str:
    """SQL for the key of the bucket holding ``column`` (UTC microseconds).

    Fixed widths: the bucket's aligned start. Months: ``year * 12 + month - 1``.
    SQLite's ``%`` (and PostgreSQL's) keeps the sign of the dividend, hence
    ``(x % w + w) % w``: a floor. The month is the one statement whose two
    dialects differ: SQLite's ``strftime``, PostgreSQL's ``EXTRACT``.
    """
    if bucket == "month" and dialect == "postgres":
        stamp = f"(TIMESTAMP '1970-01-01' + {column} * INTERVAL '1 microsecond')"
        return f"EXTRACT(YEAR FROM {stamp}) * 12 + EXTRACT(MONTH FROM {stamp}) - 1"
    if bucket == "month":
        seconds = f"(({column} - (({column} % {_MICRO}) + {_MICRO}) % {_MICRO}) / {_MICRO})"
        return (
            f"CAST(strftime('%Y', {seconds}, 'unixepoch') AS INTEGER) * 12"
            f" + CAST(strftime('%m', {seconds}, 'unixepoch') AS INTEGER) - 1"
        )
    width, offset = buckets.FIXED[bucket]
    return f"{column} - ((({column} - {offset}) % {width}) + {width}) % {width}"


def series(
    conn: Any, query: Series, user: str | None, dialect: str = "sqlite"
) -> list[dict[str, Any]]:
    """The ``data`` list of ``query``; only ``user``'s events when given.

    ``conn``: a `sqlite3.Connection`, or any object with its ``execute`` (the
    PostgreSQL backend passes one that speaks SQLite's placeholders)."""
    spans = query.buckets()
    if query.bucket == "month":
        index = {buckets.month_index(low): i for i, (low, _) in enumerate(spans)}
    else:
        index = {buckets.floor(low, query.bucket): i for i, (low, _) in enumerate(spans)}
    sums: list[dict[tuple[Any, ...], list[int]]] = [{} for _ in spans]
    whole, edges = Window(query.start, query.end).pieces()
    width = 1 + len(query.group_by)  # the bucket key and the group keys lead each row
    # The whole hours first: most rows, and no group can be in them twice.
    if whole is not None and whole[0] is not None and whole[1] is not None:
        for row in _piece(conn, query, user, True, whole[0], whole[1], dialect):
            sums[index[row[0]]][row[1:width]] = list(row[width:])
    for low, high in edges:
        for row in _piece(conn, query, user, False, low, high, dialect):
            totals = sums[index[row[0]]].get(row[1:width])
            if totals is None:
                sums[index[row[0]]][row[1:width]] = list(row[width:])
            else:
                for i, value in enumerate(row[width:]):
                    totals[i] += value
    fields = (*query.group_by, "requests", *AMOUNTS)
    costs = [i for i, field in enumerate(fields) if field.endswith("_cost")]
    data = []
    for (low, high), groups in zip(spans, sums, strict=True):
        results = []
        for keys in _ordered(groups):
            values = [*keys, *groups[keys]]
            for i in costs:
                values[i] = credits(values[i])
            results.append(dict(zip(fields, values, strict=True)))
        data.append({"start": buckets.render(low), "end": buckets.render(high), "results": results})
    return data


def _piece(
    conn: Any,
    query: Series,
    user: str | None,
    rolled: bool,
    low: int,
    high: int,
    dialect: str,
) -> list[tuple[Any, ...]]:
    """Rows ``(bucket key, *group keys, requests, *amounts)`` of one piece of the window."""
    which = 0 if rolled else 1
    table, column, sums = (
        ("usage_hourly", "hour", _ROLLED_SUMS) if rolled else ("usage_events", "at", _RAW_SUMS)
    )
    keys = [GROUP_SQL[k][which] for k in query.group_by]
    params: dict[str, Any] = {"low": low, "high": high, "user": user}
    where = ""
    if query.names is not None:
        marks = []
        for i, name in enumerate(query.names):
            params[f"n{i}"] = name
            marks.append(f":n{i}")
        where += f" AND q.name IN ({', '.join(marks) or 'NULL'})"
    if query.query_model is not None:
        # Only the model's members can have its events: the outer loop walks just them.
        params["model"] = query.query_model
        where += (
            " AND u.query_model = :model"
            " AND q.name IN (SELECT member FROM query_model_members WHERE model = :model)"
        )
    if user is not None:
        where += " AND u.user_id = :user"
    # CROSS JOIN keeps query_llms the outer loop: one range seek per Query LLM in the
    # (name, hour) or (name, at) key, never a scan of all history.
    bucket = _bucket_key("u." + column, query.bucket, dialect)
    sql = (
        f"SELECT {', '.join([bucket, *keys])}, {sums}"
        f" FROM query_llms q CROSS JOIN {table} u"
        f" WHERE u.name = q.name AND u.{column} >= :low AND u.{column} < :high{where}"
        f" GROUP BY {', '.join(str(i) for i in range(1, len(keys) + 2))}"
    )
    rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
    return rows


def _ordered(groups: dict[tuple[Any, ...], list[int]]) -> list[tuple[Any, ...]]:
    """Group keys in order; null (no user, no Query Model) before any text."""
    return sorted(groups, key=lambda keys: [(k is not None, k or "") for k in keys])
