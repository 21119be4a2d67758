"""The SQL both backends write alike, once: `SqlTx`, the base of each backend's transaction.

SQLite and PostgreSQL hold the same tables, and most statements read the same
in both dialects: users and tokens, Query LLM and Query Model bodies, the
name checks of events, statistics, list sorts, series, the rollups' rebuild,
the 64-bit check, and the raw pages that `registry.copy` reads and compares.
They are written here in SQLite's placeholder style (``?`` and ``:name``),
over a `Conn`: a ``sqlite3.Connection`` is one, and the PostgreSQL backend
wraps its psycopg connection in one that translates the placeholders. What
differs lives in each backend's subclass, and neither backend imports the
other: recording usage (`SqlTx.write`), savepoints, and the month of a
series (`SqlTx.month_key`).

Events are stored one row each, with costs in integer nano-credits. Every
write also adds them into two rollups in the same transaction, so that the
three always agree: ``usage_hourly`` (per Query LLM, hour, user and Query
Model) and ``usage_totals`` (per Query LLM, user and Query Model). The same
statements answer for both subjects, Query LLMs and Query Models (`Subject`):
a Query LLM's rows are those of its name, whatever their Query Model; a Query
Model's are those of its name in ``query_model``. All-time statistics read the
totals. A window ``[start, end)`` is answered from the whole hours inside it
in the hourly rollup, plus the raw events of the partial hours at its edges:
the cost of a question grows with the hours it spans, not with the events
stored.

Copying reads every table by keyset pages (``WHERE key > last ORDER BY key
LIMIT n``), never by ``OFFSET``: one index seek per page. Text keys compare
bytewise on both backends (SQLite's BINARY, PostgreSQL's ``COLLATE "C"``),
which is also Python's ``str`` order: two streams can be merged in Python.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from registry import series as buckets
from registry import times
from registry._convert import unstructure_strategy
from registry.credits import credits
from registry.errors import ConflictError, ValidationError
from registry.model import AMOUNTS, QueryLlm, QueryModel
from registry.query import (
    ANONYMOUS,
    HOUR,
    LLMS,
    MEASURES,
    NO_MODEL,
    Page,
    Subject,
    Window,
    check_sums,
    models_of,
    too_large,
)
from registry.series import Series
from registry.store.spool import Spool
from registry.store.training import COMPLETION_COLUMNS, TrainingSql

# --- the connection both dialects are driven through ---------------------------------------


class Cursor(Protocol):
    """What a statement returns: rows as tuples (a sum of integers as an int)."""

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """A connection taking SQLite's placeholders: ``?`` with a sequence, ``:name`` with a
    mapping. ``sqlite3.Connection`` is one; PostgreSQL's backend adapts psycopg to it."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any: ...


# --- the rollups, defined once ------------------------------------------------------------------

_A = ", ".join(AMOUNTS)


def hours_of(events: str) -> str:
    """The ``usage_hourly`` rows (key, requests, sums) of the usage events in ``events`` (a
    table, with a WHERE if need be): the one definition of an hourly rollup row in SQL,
    for every statement that derives rollups from events (its Python twin:
    ``registry.store.spool.add_deltas``)."""
    return f"""
    SELECT name, at - at % {HOUR}, COALESCE(user_id, '{ANONYMOUS}'),
        COALESCE(query_model, '{NO_MODEL}'), COUNT(*), {", ".join(f"SUM({a})" for a in AMOUNTS)}
    FROM {events} GROUP BY 1, 2, 3, 4"""


def totals_of(events: str) -> str:
    """The ``usage_totals`` rows of the usage events in ``events``, as `hours_of`."""
    return f"""
    SELECT name, COALESCE(user_id, '{ANONYMOUS}'), COALESCE(query_model, '{NO_MODEL}'),
        COUNT(*), {", ".join(f"SUM({a})" for a in AMOUNTS)}
    FROM {events} GROUP BY 1, 2, 3"""


def added(table: str) -> str:
    """``requests`` and each amount of ``table`` plus the row being inserted (an upsert)."""
    return ", ".join(f"{a} = {table}.{a} + excluded.{a}" for a in ("requests", *AMOUNTS))


ROLL_UP_HOURS = f"""
    INSERT INTO usage_hourly (name, hour, user_id, query_model, requests, {_A})
    VALUES ({", ".join("?" * (5 + len(AMOUNTS)))})
    ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {added("usage_hourly")}"""
ROLL_UP_TOTALS = f"""
    INSERT INTO usage_totals (name, user_id, query_model, requests, {_A})
    VALUES ({", ".join("?" * (4 + len(AMOUNTS)))})
    ON CONFLICT (name, user_id, query_model) DO UPDATE SET {added("usage_totals")}"""
INSERT_EVENT = f"""
    INSERT INTO usage_events (name, user_id, at, request_id, {_A}, query_model)
    VALUES ({", ".join("?" * (5 + len(AMOUNTS)))})"""
# A usage_events row as the stores write it (`registry.events.Row`); pages put ``id`` first.
EVENT_COLUMNS = ("name", "user_id", "at", "request_id", *AMOUNTS, "query_model")
# A stored event read back to compare with a repeat of its request_id.
STORED_EVENT = f"SELECT {', '.join(EVENT_COLUMNS)} FROM usage_events WHERE request_id = ?"

# Claiming anonymous events (`SqlTx.claim`): the stored event (with its id) of a request_id,
# the event given to its user, and what leaves the anonymous rollup rows.
_CLAIMED_EVENT = f"SELECT id, {', '.join(EVENT_COLUMNS)} FROM usage_events WHERE request_id = ?"
_CLAIM = "UPDATE usage_events SET user_id = ? WHERE id = ?"
_LESS = ", ".join(f"{a} = {a} - ?" for a in ("requests", *AMOUNTS))
_HOUR_KEY = f"name = ? AND hour = ? AND user_id = '{ANONYMOUS}' AND query_model = ?"
_TOTAL_KEY = f"name = ? AND user_id = '{ANONYMOUS}' AND query_model = ?"
_UNROLL_HOUR = f"UPDATE usage_hourly SET {_LESS} WHERE {_HOUR_KEY}"
_UNROLL_TOTAL = f"UPDATE usage_totals SET {_LESS} WHERE {_TOTAL_KEY}"
# A rollup row left with no request is gone, as a rebuild would leave it.
_EMPTY_HOUR = f"DELETE FROM usage_hourly WHERE {_HOUR_KEY} AND requests = 0"
_EMPTY_TOTAL = f"DELETE FROM usage_totals WHERE {_TOTAL_KEY} AND requests = 0"


def _unclaimable(found: Sequence[Any] | None, row: Sequence[Any], timeless: bool, user: str) -> str:
    """Why the stored event ``found`` (id first) cannot be claimed for ``user`` as ``row``;
    empty when it can be (or was, by ``user``)."""
    if found is None:
        return "was never recorded: import the event with the token instead"
    stored = found[1:]
    if stored[1] == user:
        return ""
    if stored[1] is not None:
        return f"was recorded by {stored[1]!r}: only events recorded without a token are claimed"
    differ = [column for column, _ in differences(stored, row, timeless)]
    if differ:
        return (
            f"was recorded with other content ({', '.join(differ)}): claim the events as they"
            " were imported"
        )
    return ""


_REBUILD = (
    "DELETE FROM usage_hourly",
    "DELETE FROM usage_totals",
    f"INSERT INTO usage_hourly (name, hour, user_id, query_model, requests, {_A})"
    + hours_of("usage_events"),
    f"""
    INSERT INTO usage_totals (name, user_id, query_model, requests, {_A})
    SELECT name, user_id, query_model, SUM(requests), {", ".join(f"SUM({a})" for a in AMOUNTS)}
    FROM usage_hourly GROUP BY 1, 2, 3""",
)


def repeated(
    index: int | None, stored: Sequence[Any], row: Sequence[Any], timeless: bool
) -> ConflictError:
    """The refusal of ``row``, whose ``request_id`` was stored as ``stored`` (both in
    `EVENT_COLUMNS` order) with other content: what differs, and how to go on. ``index``:
    the row's in its batch (None for a single event). The one message of both backends."""
    said = "; ".join(
        _difference(column, stored[at], row[at])
        for column, at in differences(stored, row, timeless)
    )
    problem = ConflictError.one(
        "/request_id",
        f"was recorded before with other content: {said}. A request_id names one request:"
        " to retry it, send what was sent the first time; for another request, use a new"
        " request_id",
    )
    return problem if index is None else problem.of_event(index)


def differences(stored: Sequence[Any], row: Sequence[Any], timeless: bool) -> list[tuple[str, int]]:
    """The columns (name, position in `EVENT_COLUMNS`) in which ``row`` differs from the
    ``stored`` event of its request_id; none when it repeats it: all of it the same, but
    ``at`` when the repeat left it out (a retry means "the same request")."""
    return [
        (column, at)
        for at, column in enumerate(EVENT_COLUMNS)
        if column != "request_id" and not (column == "at" and timeless) and stored[at] != row[at]
    ]


def same_event(stored: Sequence[Any], row: Sequence[Any], timeless: bool) -> bool:
    """Whether ``row`` repeats the ``stored`` event of its request_id (`differences`)."""
    return not differences(stored, row, timeless)


def _difference(column: str, before: Any, now: Any) -> str:
    if column == "user_id":
        return f"it was recorded by {_user(before)}, and this time by {_user(now)}"
    return f"{column} was {_value(column, before)}, and is {_value(column, now)} this time"


def _user(user: str | None) -> str:
    return "no user (without a token)" if user is None else repr(user)


def _value(column: str, value: Any) -> str:
    if value is None:
        return "none"
    if column == "at":
        return times.render(value)
    if column.endswith("_cost"):
        return format(credits(value).normalize(), "f")  # 0.5, as it was written
    return repr(value) if isinstance(value, str) else str(value)


# --- what statistics are compared by, and how rows are copied ----------------------------------

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
    # Completions and their marks (the rows of training tables), and each training
    # table's version: a process on the target that kept a table in memory sees it moved.
    "completions": (("id",), COMPLETION_COLUMNS[1:]),  # as the store writes them
    "completion_marks": (
        ("completion",),
        (
            "training_table_name",
            "response_format_hash",
            "dimensions",
            "correct_confidence_id",
            "scores",
            "seq",
            "marked",
        ),
    ),
    "training_tables": (("name",), ("version", "unmarks")),
}
# The rollups: never copied (the events' writes keep them), only compared.
ROLLUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "usage_hourly": (("name", "hour", "user_id", "query_model"), ("requests", *AMOUNTS)),
    "usage_totals": (("name", "user_id", "query_model"), ("requests", *AMOUNTS)),
}
LAYOUTS = COPIED | ROLLUPS
# What statistics are compared by: per Query LLM, per user, per Query Model.
STATISTICS = ("name", "user_id", "query_model")
# A rollup's rows as a rebuild would make them, named as the rollup's columns: the hourly
# rows from the events, the all-time rows from the hourly rows (as `rebuild_rollups` does;
# a check compares the hourly rows with the events first). ``{where}``: a range of the
# source's (name, at) or (name, ...) key, so that a page of keys reads its events only.
_SUMMED = ", ".join(f"SUM({a}) AS {a}" for a in AMOUNTS)
_REBUILDS = {
    "usage_hourly": f"""
        SELECT name, at - at % {HOUR} AS hour, COALESCE(user_id, '{ANONYMOUS}') AS user_id,
            COALESCE(query_model, '{NO_MODEL}') AS query_model, COUNT(*) AS requests, {_SUMMED}
        FROM usage_events WHERE 1 = 1{{where}} GROUP BY 1, 2, 3, 4""",
    "usage_totals": f"""
        SELECT name, user_id, query_model, SUM(requests) AS requests, {_SUMMED}
        FROM usage_hourly WHERE 1 = 1{{where}} GROUP BY 1, 2, 3""",
}

# --- statistics -------------------------------------------------------------------------------

# BIGINT: 64 bits in PostgreSQL too, where SUM of integers is NUMERIC.
_SUMS = ", ".join(f"COALESCE(CAST(SUM({a}) AS BIGINT), 0)" for a in AMOUNTS)
# Each measure summed: over rollup rows, and over raw event rows (which count 1 each).
_MEASURED = {
    name: (" + ".join(columns), " + ".join(columns)) if columns else ("requests", "1")
    for name, columns in MEASURES.items()
}
_MINE = (
    " AND (q.user_id = :user"
    " OR q.name IN (SELECT {column} FROM usage_totals WHERE user_id = :user))"
)
# How each group key of a series reads: (from a rollup row ``u``, from an event row ``u``);
# ``q`` is the Query LLM. The rollups store '' for events recorded without a token, the
# events NULL; the same for query_model.
GROUP_SQL = {
    "name": ("q.name", "q.name"),
    "query_model": (f"NULLIF(u.query_model, '{NO_MODEL}')", "u.query_model"),
    "model": ("q.model", "q.model"),
    "user_id": (f"NULLIF(u.user_id, '{ANONYMOUS}')", "u.user_id"),
}
_ROLLED_SUMS = ", ".join(f"SUM(u.{a})" for a in ("requests", *AMOUNTS))
_RAW_SUMS = "COUNT(*), " + ", ".join(f"SUM(u.{a})" for a in AMOUNTS)


def _range(column: str, bounds: tuple[int | None, int | None], params: dict[str, Any]) -> str:
    sql = ""
    if bounds[0] is not None:
        params["first"] = bounds[0]
        sql += f" AND {column} >= :first"
    if bounds[1] is not None:
        params["last"] = bounds[1]
        sql += f" AND {column} < :last"
    return sql


def _ordered(groups: dict[tuple[Any, ...], list[int]]) -> list[tuple[Any, ...]]:
    """Group keys in order; null (no user, no Query Model) before any text."""
    return sorted(groups, key=lambda keys: [(k is not None, k or "") for k in keys])


class SqlTx(TrainingSql):
    """The SQL of one transaction that both dialects share, over ``conn`` (a `Conn`).

    A backend's transaction subclasses it with what is its own: `write` (usage
    rows in), `savepoint`, and `month_key`. Rows come back as plain tuples; the
    rules stay above, in `registry.Registry`.
    """

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    # --- what each backend writes its own way -------------------------------------------------

    def write(self, spool: Spool) -> int:
        """Insert the validated rows of ``spool`` and add them into both rollups; how many
        were new. A repeated ``request_id`` must repeat its stored event (else
        `ConflictError`); a total past 64 bits is refused (`registry.query.too_large`)."""
        written = self.add_events(spool)
        self.apply_rollups()
        return written

    def add_events(self, spool: Spool) -> int:
        """`write` but for the rollups, which a backend may leave to `apply_rollups` (the
        totals are checked against 64 bits here all the same). Several calls may share
        one `apply_rollups` (a group commit: one call per savepoint)."""
        raise NotImplementedError

    def apply_rollups(self) -> None:
        """Add into the rollups what `add_events` left for later, if anything; the last
        write of the transaction."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: a `RegistryError` inside rolls back only its writes."""
        raise NotImplementedError

    def month_key(self, column: str) -> str:
        """SQL for ``year * 12 + month - 1`` of ``column`` (UTC microseconds)."""
        raise NotImplementedError

    # --- users and tokens ---------------------------------------------------------------------

    def token(self, digest: str) -> tuple[str, str, int | None] | None:
        """``(hash, user_id, revoked)`` of the token with this hash, if any."""
        row = self.conn.execute(
            "SELECT hash, user_id, revoked FROM tokens WHERE hash = ?", [digest]
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), row[2])

    def add_token(self, user_id: str, digest: str, now: int) -> None:
        """A token for ``user_id``, the user created if new."""
        self.conn.execute(
            "INSERT INTO users (id, created) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
            [user_id, now],
        )
        self.conn.execute(
            "INSERT INTO tokens (hash, user_id, created) VALUES (?, ?, ?)", [digest, user_id, now]
        )

    def revoke_token(self, digest: str, now: int) -> None:
        self.conn.execute(
            "UPDATE tokens SET revoked = ? WHERE hash = ? AND revoked IS NULL", [now, digest]
        )

    # --- Query LLMs and Query Models ----------------------------------------------------------

    def insert_llm(self, llm: QueryLlm, user: str | None, now: int) -> None:
        """Insert a Query LLM unless its name is there already (first registration wins)."""
        self.conn.execute(
            """
            INSERT INTO query_llms
                (name, training_table_name, body, model, mode, weight_type, created, user_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (name) DO NOTHING""",
            [
                llm.name,
                llm.training_table_name,
                llm.canonical.decode(),
                llm.id,
                llm.mode,
                llm.weight.type,
                now,
                user,
            ],
        )

    def insert_model(self, model: QueryModel, user: str | None, now: int) -> None:
        """Insert a Query Model and its members' rows unless its name is there already."""
        inserted = self.conn.execute(
            """
            INSERT INTO query_models (name, training_table_name, body, weight, weight_type,
                members, created, user_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (name) DO NOTHING
            RETURNING name""",
            [
                model.name,
                model.training_table_name,
                model.canonical.decode(),
                json.dumps(unstructure_strategy(model.weight), separators=(",", ":")),
                model.weight.type,
                len(model.members),
                now,
                user,
            ],
        ).fetchall()
        if inserted:
            self.conn.executemany(
                "INSERT INTO query_model_members (model, position, member) VALUES (?, ?, ?)",
                [(model.name, i, m.name) for i, m in enumerate(model.members)],
            )

    def body(self, subject: Subject, name: str) -> tuple[str, str | None, int, str | None] | None:
        """``(body, training_table_name, created, user_id)`` of a Query LLM, or for a Query
        Model ``(weight, training_table_name, created, user_id)``; None if not registered."""
        text = "body" if subject is LLMS else "weight"
        row = self.conn.execute(
            f"SELECT {text}, training_table_name, created, user_id FROM {subject.table}"
            " WHERE name = ?",
            [name],
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def members(self, name: str) -> list[tuple[str, str, str | None]]:
        """``(name, body, training_table_name)`` of a Query Model's members, in order."""
        return [
            (member, body, table)
            for member, body, table in self.conn.execute(
                """
                SELECT q.name, q.body, q.training_table_name
                FROM query_model_members m JOIN query_llms q ON q.name = m.member
                WHERE m.model = ? ORDER BY m.position""",
                [name],
            )
        ]

    # --- what events may name (`registry.events.Known` asks) ----------------------------------

    def registered(self, names: Collection[str]) -> set[str]:
        """Which of ``names`` are registered Query LLMs."""
        found: set[str] = set()
        wanted = list(names)
        for start in range(0, len(wanted), 500):  # SQLite binds at most 32766 values
            part = wanted[start : start + 500]
            marks = ", ".join("?" * len(part))
            sql = f"SELECT name FROM query_llms WHERE name IN ({marks})"
            found.update(name for (name,) in self.conn.execute(sql, part))
        return found

    def memberships(self, models: Collection[str]) -> tuple[set[str], set[tuple[str, str]]]:
        """Which of ``models`` are registered Query Models, and their (model, member) pairs."""
        wanted = list(models)
        marks = ", ".join("?" * len(wanted))
        registered = {
            model
            for (model,) in self.conn.execute(
                f"SELECT name FROM query_models WHERE name IN ({marks})", wanted
            )
        }
        pairs = {
            (model, member)
            for model, member in self.conn.execute(
                f"SELECT model, member FROM query_model_members WHERE model IN ({marks})", wanted
            )
        }
        return registered, pairs

    # --- statistics for one Query LLM or Query Model ------------------------------------------

    def totals(
        self, name: str, user: str | None, window: Window, subject: Subject = LLMS
    ) -> dict[str, Any]:
        """Requests and sums for ``name`` in ``window`` (only ``user``'s events if given)."""
        column = subject.column
        whole, edges = window.pieces()
        mine = "" if user is None else " AND user_id = :user"
        params: dict[str, Any] = {"name": name, "user": user}
        result = [0] * (1 + len(AMOUNTS))
        parts: list[tuple[int, ...]] = []
        if whole is not None:
            hours = _range("hour", whole, params)
            table = "usage_hourly" if hours else "usage_totals"
            parts.append(
                self.conn.execute(
                    f"SELECT COALESCE(CAST(SUM(requests) AS BIGINT), 0), {_SUMS} FROM {table}"
                    f" WHERE {column} = :name{hours}{mine}",
                    params,
                ).fetchone()
            )
        for low, high in edges:
            parts.append(
                self.conn.execute(
                    f"SELECT COUNT(*), {_SUMS} FROM usage_events"
                    f" WHERE {column} = :name AND at >= :low AND at < :high{mine}",
                    {**params, "low": low, "high": high},
                ).fetchone()
            )
        for part in parts:
            for i, value in enumerate(part):
                result[i] += value
        return {"requests": result[0]} | {
            key: credits(value) if key.endswith("_cost") else value
            for key, value in zip(AMOUNTS, result[1:], strict=True)
        }

    # --- list and count -----------------------------------------------------------------------

    def ranked_names(self, page: Page, user: str | None, subject: Subject = LLMS) -> list[str]:
        """One page of names: newest first, or by usage over the window, largest first."""
        # An offset past the largest 64-bit integer is past the last row all the same (an
        # empty page); bound as is, it would raise OverflowError.
        offset = min(page.offset, 2**63 - 1)
        params: dict[str, Any] = {"user": user, "count": page.count, "offset": offset}
        mine = _MINE.format(column=subject.column) if user is not None else ""
        key = "created" if page.sort == "created" else _usage_of_q(page, user, params, subject)
        sql = f"SELECT name FROM {subject.table} q WHERE 1 = 1{mine} ORDER BY {key} DESC, name"
        rows = self.conn.execute(sql + " LIMIT :count OFFSET :offset", params)
        return [name for (name,) in rows]

    def count_names(self, user: str | None, subject: Subject = LLMS) -> int:
        """How many Query LLMs (or Models) are registered, or how many ``list(me=True)`` has."""
        mine = _MINE.format(column=subject.column) if user is not None else ""
        (count,) = self.conn.execute(
            f"SELECT COUNT(*) FROM {subject.table} q WHERE 1 = 1{mine}", {"user": user}
        ).fetchone()
        return int(count)

    # --- usage over time (USAGE_SERIES.md) ----------------------------------------------------

    def series(self, query: Series, user: str | None) -> list[dict[str, Any]]:
        """The ``data`` list of ``query``; only ``user``'s events when given.

        Summed per bucket and group in SQL: from the hourly rollup for the whole
        hours of the window, and from the raw events only for the partial hours at
        its two edges. Each piece is one grouped query that walks the Query LLMs
        and seeks each one's ``(name, hour)`` or ``(name, at)`` range.
        """
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
            for row in self._piece(query, user, True, whole[0], whole[1]):
                sums[index[row[0]]][row[1:width]] = list(row[width:])
        for low, high in edges:
            for row in self._piece(query, user, False, low, high):
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
            data.append(
                {"start": buckets.render(low), "end": buckets.render(high), "results": results}
            )
        return data

    def _bucket_key(self, column: str, bucket: str) -> str:
        """SQL for the key of the bucket holding ``column`` (UTC microseconds).

        Fixed widths: the bucket's aligned start; ``%`` keeps the sign of the
        dividend in both dialects, hence ``(x % w + w) % w``, a floor. Months:
        `month_key`, the one statement whose dialects differ.
        """
        if bucket == "month":
            return self.month_key(column)
        width, offset = buckets.FIXED[bucket]
        return f"{column} - ((({column} - {offset}) % {width}) + {width}) % {width}"

    def _piece(
        self, query: Series, user: str | None, rolled: bool, low: int, high: int
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
        bucket = self._bucket_key("u." + column, query.bucket)
        sql = (
            f"SELECT {', '.join([bucket, *keys])}, {sums}"
            f" FROM query_llms q CROSS JOIN {table} u"
            f" WHERE u.name = q.name AND u.{column} >= :low AND u.{column} < :high{where}"
            f" GROUP BY {', '.join(str(i) for i in range(1, len(keys) + 2))}"
        )
        return list(self.conn.execute(sql, params).fetchall())

    # --- the rollups: 64 bits, and rebuilt from the events ------------------------------------

    def check_totals(
        self,
        touched: Iterable[str],
        *,
        column: str = "name",
        group: str = "Query LLM",
    ) -> None:
        """Refuse (`ValidationError`) a write that took a touched group's totals past 64 bits.

        Call it inside the write's transaction, after the write: raising rolls it
        all back. ``touched`` are the values of ``column`` (a Query LLM's name, or a
        Query Model's) that the write added events to. Each amount summed over the
        group's ``usage_totals`` rows, and each combined measure, must stay a 64-bit
        integer.
        """
        keys = sorted(set(touched))
        sums = ", ".join(f"SUM({amount})" for amount in AMOUNTS)
        for start in range(0, len(keys), 500):  # SQLite binds at most 32766 values
            part = keys[start : start + 500]
            marks = ", ".join("?" * len(part))
            found = self._sums(
                f"SELECT {sums} FROM usage_totals WHERE {column} IN ({marks}) GROUP BY {column}",
                part,
                group,
            )
            for amounts in found:
                check_sums(dict(zip(AMOUNTS, amounts, strict=True)), group)

    def _sums(self, sql: str, params: list[Any], group: str) -> list[Any]:
        """Rows of sums; a backend whose SUM can overflow maps that to `too_large`."""
        return list(self.conn.execute(sql, params).fetchall())

    def check_all_totals(self, touched: Iterable[tuple[str, str | None]]) -> None:
        """`check_totals` for the Query LLMs and Query Models of ``(name, query_model)`` pairs."""
        pairs = list(touched)
        self.check_totals({name for name, _ in pairs})
        models = models_of(pairs)
        if models:
            self.check_totals(models, column="query_model", group="Query Model")

    def claim(self, spool: Spool, user: str) -> int:
        """Give ``user`` the events of ``spool`` (rows as an import without a token would
        have recorded them) that were recorded without a token: each stored event of their
        request_ids must be that anonymous event (`differences`), or already ``user``'s
        (claimed before: skipped). The rollups move with them, in this transaction: the
        anonymous rows lose what the user's rows gain, and a row left with no request is
        deleted, as a rebuild would leave it. How many events were claimed."""
        claimed: list[int] = []
        hours: dict[tuple[Any, ...], list[int]] = {}
        problems: list[tuple[int, str, str]] = []
        seen: set[str] = set()
        for chunk in spool.chunks():
            for position, row in enumerate(chunk.rows):
                index, request_id = chunk.first + position, row[3]
                if request_id is None:
                    problems.append((index, "/request_id", "is needed to claim an event"))
                    continue
                if request_id in seen:  # as in a batch, the first of a request_id counts
                    continue
                seen.add(request_id)
                found = self.conn.execute(_CLAIMED_EVENT, [request_id]).fetchone()
                problem = _unclaimable(found, row, position in chunk.timeless, user)
                if problem:
                    problems.append((index, "/request_id", problem))
                elif found[2] is None:
                    event_id, *stored = found
                    claimed.append(event_id)
                    key = (stored[0], stored[2] - stored[2] % HOUR, stored[-1] or NO_MODEL)
                    sums = hours.setdefault(key, [0] * (1 + len(AMOUNTS)))
                    for at, value in enumerate((1, *stored[4 : 4 + len(AMOUNTS)])):
                        sums[at] += value
        if problems:
            raise ValidationError(events=problems)
        self.conn.executemany(_CLAIM, [[user, event_id] for event_id in claimed])
        totals: dict[tuple[Any, ...], list[int]] = {}
        for (name, hour, model), sums in sorted(hours.items()):
            self.conn.execute(_UNROLL_HOUR, [*sums, name, hour, model])
            self.conn.execute(_EMPTY_HOUR, [name, hour, model])
            self.conn.execute(ROLL_UP_HOURS, [name, hour, user, model, *sums])
            into = totals.setdefault((name, model), [0] * len(sums))
            for at, value in enumerate(sums):
                into[at] += value
        for (name, model), sums in sorted(totals.items()):
            self.conn.execute(_UNROLL_TOTAL, [*sums, name, model])
            self.conn.execute(_EMPTY_TOTAL, [name, model])
            self.conn.execute(ROLL_UP_TOTALS, [name, user, model, *sums])
        return len(claimed)

    def rebuild_rollups(self) -> dict[str, int]:
        """Recompute both rollups from the events; how many rows each now has."""
        for statement in _REBUILD:
            self.conn.execute(statement)
        return {
            table: self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("usage_hourly", "usage_totals")
        }

    # --- raw rows, for copying a registry and checking the copy (`registry.copy`) -------------

    def copy_page(
        self, table: str, after: tuple[Any, ...] | None, limit: int
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
        return [tuple(row) for row in self.conn.execute(sql, [*params, limit])]

    def event_page(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` usage events with an id above ``after``, in id order: ``(id, *row)``."""
        columns = ", ".join(EVENT_COLUMNS)
        sql = f"SELECT id, {columns} FROM usage_events WHERE id > ? ORDER BY id LIMIT ?"
        return [tuple(row) for row in self.conn.execute(sql, [after, limit])]

    def count_events(self) -> int:
        (count,) = self.conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()
        return int(count)

    def put_rows(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows of a `COPIED` table as they are; a key already there is left alone."""
        key, rest = COPIED[table]
        columns = (*key, *rest)
        self.conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)})"
            f" VALUES ({', '.join('?' * len(columns))})"
            f" ON CONFLICT ({', '.join(key)}) DO NOTHING",
            rows,
        )

    def statistics(self, by: str, after: str | None, limit: int) -> list[tuple[Any, ...]]:
        """All-time requests and sums per ``by`` (a `STATISTICS` column) from the totals, in
        order of ``by``, after ``after``: what `get` and ``me`` answer, group by group."""
        if by not in STATISTICS:
            raise ValueError(by)
        where = "" if after is None else f" WHERE {by} > ?"
        params: list[Any] = [] if after is None else [after]
        sums = ", ".join(f"SUM({a})" for a in ("requests", *AMOUNTS))
        sql = f"SELECT {by}, {sums} FROM usage_totals{where} GROUP BY {by} ORDER BY {by} LIMIT ?"
        return [tuple(row) for row in self.conn.execute(sql, [*params, limit])]

    def rebuilt_page(
        self,
        table: str,
        after: tuple[Any, ...] | None,
        last: tuple[Any, ...] | None,
        limit: int,
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` rows of a rollup (a `ROLLUPS` table) as a rebuild would make
        them, in key order, with keys after ``after`` and up to ``last`` (None: no bound):
        what `copy_page` of the stored rollup gives for the same keys, when they agree.
        Only the source rows of that range are read (an index range of the events'
        ``(name, at)``, or of the hourly rollup's key)."""
        key, _ = ROLLUPS[table]
        where, params = "", list[Any]()
        if table == "usage_hourly":  # key (name, hour, ...): events from (name, hour) on
            low = None if after is None else (after[0], after[1])
            high = None if last is None else (last[0], last[1] + HOUR)
            columns = "(name, at)"
        else:  # key (name, user_id, query_model): hourly rows of those names
            low = None if after is None else (after[0], -(2**63))
            high = None if last is None else (last[0], 2**63 - 1)
            columns = "(name, hour)"
        if low is not None:
            where += f" AND {columns} >= (?, ?)"
            params += low
        if high is not None:
            where += (
                f" AND {columns} < (?, ?)"
                if table == "usage_hourly"
                else f" AND {columns} <= (?, ?)"
            )
            params += high
        bounds = ""
        if after is not None:
            bounds += f" AND ({', '.join(key)}) > ({', '.join('?' * len(key))})"
            params += after
        if last is not None:
            bounds += f" AND ({', '.join(key)}) <= ({', '.join('?' * len(key))})"
            params += last
        sql = (
            f"SELECT * FROM ({_REBUILDS[table].format(where=where)}) rebuilt"
            f" WHERE 1 = 1{bounds} ORDER BY {', '.join(key)} LIMIT ?"
        )
        return [tuple(row) for row in self.conn.execute(sql, [*params, limit])]


def _usage_of_q(page: Page, user: str | None, params: dict[str, Any], subject: Subject) -> str:
    """The sort key of Query LLM (or Model) ``q`` over the window, as a SQL expression.

    Each piece is a subquery on ``q.name``, so that every Query LLM costs a few seeks
    in the rollups' and events' ``(name, ...)`` keys, rather than a scan of the whole
    window grouped afterwards.
    """
    rolled, raw = _MEASURED[page.sort]
    column = subject.column
    mine = "" if user is None else " AND user_id = :user"
    whole, edges = page.window.pieces()
    parts = []
    if whole is not None:
        hours = _range("hour", whole, params)
        table = "usage_hourly" if hours else "usage_totals"
        parts.append(f"SELECT SUM({rolled}) FROM {table} WHERE {column} = q.name{hours}{mine}")
    for i, (low, high) in enumerate(edges):
        params[f"low{i}"], params[f"high{i}"] = low, high
        parts.append(
            f"SELECT SUM({raw}) FROM usage_events"
            f" WHERE {column} = q.name AND at >= :low{i} AND at < :high{i}{mine}"
        )
    return " + ".join(f"COALESCE(({part}), 0)" for part in parts) or "0"


__all__ = [
    "COPIED",
    "EVENT_COLUMNS",
    "LAYOUTS",
    "ROLLUPS",
    "STATISTICS",
    "Conn",
    "Cursor",
    "SqlTx",
    "hours_of",
    "same_event",
    "too_large",
    "totals_of",
]
