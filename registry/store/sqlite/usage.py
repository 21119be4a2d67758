"""Usage events (spec 6) and the statistics over them (spec 7 and 9): their SQLite SQL.

Events are stored one row each, with costs in integer nano-credits. Every
write also adds them into two rollups in the same transaction, so that the
three always agree: ``usage_hourly`` (per Query LLM, hour, user and Query
Model) and ``usage_totals`` (per Query LLM, user and Query Model). The same
functions answer for both subjects, Query LLMs and Query Models (`Subject`):
a Query LLM's rows are those of its name, whatever their Query Model; a
Query Model's are those of its name in ``query_model``. All-time statistics read the
totals. A window ``[start, end)`` is answered from the whole hours inside it
in the hourly rollup, plus the raw events of the partial hours at its edges:
the cost of a query grows with the hours it spans, not with the events in the
file.
"""

from __future__ import annotations

import marshal
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from registry import times
from registry.errors import ConflictError, NotFoundError, ValidationError
from registry.model import AMOUNTS
from registry.query import (
    ANONYMOUS,
    HOUR,
    LLMS,
    NO_MODEL,
    Page,
    Subject,
    Window,
    check_sums,
    chunks,
    credits,
    models_of,
    rows_of,
)
from registry.query import too_large as _too_large

_INSERT = f"""
    INSERT INTO usage_events (name, user_id, at, request_id, {", ".join(AMOUNTS)}, query_model)
    VALUES ({", ".join("?" * (5 + len(AMOUNTS)))})
    ON CONFLICT (request_id) DO NOTHING"""
_ADD = ", ".join(f"{a} = {a} + excluded.{a}" for a in ("requests", *AMOUNTS))
_ROLL_UP_HOURS = f"""
    INSERT INTO usage_hourly (name, hour, user_id, query_model, requests, {", ".join(AMOUNTS)})
    VALUES ({", ".join("?" * (5 + len(AMOUNTS)))})
    ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {_ADD}"""
_ROLL_UP_TOTALS = f"""
    INSERT INTO usage_totals (name, user_id, query_model, requests, {", ".join(AMOUNTS)})
    VALUES ({", ".join("?" * (4 + len(AMOUNTS)))})
    ON CONFLICT (name, user_id, query_model) DO UPDATE SET {_ADD}"""


def hours_of(events: str) -> str:
    """The ``usage_hourly`` rows (key, requests, sums) of the usage events in ``events`` (a
    table, with a WHERE if need be): the one definition of an hourly rollup row, for every
    statement and both backends that derive rollups from events."""
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


_REBUILD = (
    "DELETE FROM usage_hourly",
    "DELETE FROM usage_totals",
    f"""
    INSERT INTO usage_hourly (name, hour, user_id, query_model, requests, {", ".join(AMOUNTS)})
    {hours_of("usage_events")}""",
    f"""
    INSERT INTO usage_totals (name, user_id, query_model, requests, {", ".join(AMOUNTS)})
    SELECT name, user_id, query_model, SUM(requests), {", ".join(f"SUM({a})" for a in AMOUNTS)}
    FROM usage_hourly GROUP BY 1, 2, 3""",
)

# Statements shared by both backends take this: a `sqlite3.Connection`, or the PostgreSQL
# backend's wrapper that speaks SQLite's placeholders (`registry.store.postgres.tx`).
# Unlike ``registry/store/copying.py``, this module stays in the SQLite package although
# half of it is shared (the name, membership and 64-bit checks, the rebuild, statistics,
# list and count; a function is shared when it takes a `Conn`). The other half, SQLite's
# alone (recording, staging, the rollups' upserts), calls the shared checks at every
# write, and `series.py` and `SqliteTx` are shared with PostgreSQL the same way: a
# neutral home for all of it would move several hundred lines and re-lay the SQLite package,
# for no change in behaviour. ``copying.py`` was shared whole, and moved whole.
Conn = Any
Row = list[Any]  # [name, user_id, at, request_id, *amounts, query_model]: one usage_events row
_MODEL = 4 + len(AMOUNTS)  # a row's query_model


# --- recording ------------------------------------------------------------------------


def record_many(
    conn: sqlite3.Connection,
    events: Iterable[Any],
    user: str | None,
    known_names: set[str],
    *,
    batch: bool = True,
) -> int:
    """Validate and insert ``events`` inside the caller's transaction; the number written.

    Read in chunks, so a generator of any length is never held in memory.
    With ``batch``, errors name the event's index (``/3/chat_cost``).
    """
    now = times.now()
    written = 0
    first = 0  # the index of the chunk's first event
    for chunk in chunks(events):
        rows, timeless = rows_of(chunk, user, now, first, batch)
        where = first if batch else None
        _check_names(conn, rows, known_names, where)
        check_members(conn, rows, where)
        (last_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM usage_events").fetchone()
        before = conn.total_changes
        conn.executemany(_INSERT, rows)
        if conn.total_changes - before < len(rows):  # some request_ids were seen before
            rows = _inserted(conn, rows, timeless, last_id, where)
        hours: Hours = {}
        add_hours(hours, rows)
        check_all_totals(conn, _roll_up(conn, hours, user))
        written += len(rows)
        first += len(chunk)
    return written


def copy_events(conn: sqlite3.Connection, rows: list[Row]) -> int:
    """Insert rows read from another registry as they are (user, time and all), inside the
    caller's transaction, adding them into both rollups as `record_many` does; the number
    inserted. Fewer than ``rows`` means some request_ids were there already: the caller
    decides (nothing of this call is rolled up then, so it must roll back)."""
    before = conn.total_changes
    conn.executemany(_INSERT, rows)
    written: int = conn.total_changes - before
    if written == len(rows):
        # Rows from another registry are of many users; the rollups sum one user's at a time.
        users: dict[str | None, list[Row]] = {}
        for row in rows:
            users.setdefault(row[1], []).append(row)
        touched: list[tuple[str, str]] = []
        for user, own in users.items():
            hours: Hours = {}
            add_hours(hours, own)
            touched += _roll_up(conn, hours, user)
        check_all_totals(conn, touched)
    return written


# --- staged batches: validated before the write lock, moved in one short transaction ---------

# A batch's rows wait for the write lock in a spool: marshal's dump of each
# chunk, kept in memory up to this size, then in an anonymous temporary file,
# so memory stays flat however long the batch is. (Measured against the TEMP
# table it replaces: one C call per chunk instead of a B-tree insert per row
# that the move then read back.)
_SPOOL_IN_MEMORY = 32 * 2**20
# Hourly sums are added up in memory and written out to a TEMP table (to be
# added once more by the rollups' upsert) when this many are held: memory stays
# flat either way.
_MAX_HOURS_HELD = 50_000
_STAGE_AMOUNTS = ", ".join(f"{a} INTEGER NOT NULL" for a in AMOUNTS)
# A TEMP table belongs to this connection alone, in SQLite's temp schema: filling
# it takes no lock on the registry file, so other processes write meanwhile.
_STAGE_HOURS_TABLE = f"""
    CREATE TEMP TABLE IF NOT EXISTS qllm_stage_hours (
        name TEXT NOT NULL, hour INTEGER NOT NULL, user_id TEXT NOT NULL,
        query_model TEXT NOT NULL, requests INTEGER NOT NULL, {_STAGE_AMOUNTS})"""
_STAGE_HOURS = f"""
    INSERT INTO temp.qllm_stage_hours VALUES ({", ".join("?" * (5 + len(AMOUNTS)))})"""
_HOURS_OF = f"""
    INSERT INTO temp.qllm_stage_hours {hours_of("main.usage_events WHERE id > ?")}"""
_ROLL_UP_STAGED = (
    f"""
    INSERT INTO usage_hourly (name, hour, user_id, query_model, requests, {", ".join(AMOUNTS)})
    SELECT * FROM temp.qllm_stage_hours WHERE true
    ON CONFLICT (name, hour, user_id, query_model) DO UPDATE SET {_ADD}""",
    f"""
    INSERT INTO usage_totals (name, user_id, query_model, requests, {", ".join(AMOUNTS)})
    SELECT name, user_id, query_model, SUM(requests), {", ".join(f"SUM({a})" for a in AMOUNTS)}
    FROM temp.qllm_stage_hours WHERE true GROUP BY 1, 2, 3
    ON CONFLICT (name, user_id, query_model) DO UPDATE SET {_ADD}""",
)


class Stage:
    """One batch, validated and waiting for the write lock: its rows in a spool (see
    `_SPOOL_IN_MEMORY`), each chunk with the positions of its events that left out ``at``;
    its hourly sums in memory, and past `_MAX_HOURS_HELD` in ``temp.qllm_stage_hours``."""

    def __init__(self, conn: sqlite3.Connection, user: str | None) -> None:
        self.conn = conn
        self.user = user
        self.count = 0
        # Closed by `close` (the spool outlives this call: `staging` owns it).
        self.spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        self.hours: Hours = {}
        self.spilled = False  # some hourly sums are in the TEMP table

    def add(self, rows: list[Row], timeless: set[int]) -> None:
        data = marshal.dumps((rows, timeless))
        self.spool.write(len(data).to_bytes(8, "little"))
        self.spool.write(data)
        add_hours(self.hours, rows)
        if len(self.hours) >= _MAX_HOURS_HELD:
            self.flush_hours()
        self.count += len(rows)

    def chunks(self) -> Iterator[tuple[list[Row], set[int]]]:
        self.spool.seek(0)
        while size := self.spool.read(8):
            data = self.spool.read(int.from_bytes(size, "little"))
            # Only bytes that `add` wrote in this process, to a file no one else can open.
            rows, timeless = marshal.loads(data)  # noqa: S302
            yield rows, timeless

    def flush_hours(self) -> None:
        """Write the hourly sums held in memory to the TEMP table (no lock on the file)."""
        if not self.spilled:
            self.conn.execute(_STAGE_HOURS_TABLE)
            self.conn.execute("DELETE FROM temp.qllm_stage_hours")
            self.spilled = True
        rolled = ANONYMOUS if self.user is None else self.user
        # One transaction (without one, every row would be a commit of its own); it
        # writes only the temp schema, so the file's lock stays free.
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(
                _STAGE_HOURS, [[n, h, rolled, m, *sums] for (n, h, m), sums in self.hours.items()]
            )
        except OverflowError as exc:  # one hour's sum in the batch itself is past 64 bits
            self.conn.execute("ROLLBACK")
            raise _too_large("Query LLM") from exc
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        self.hours.clear()

    def close(self) -> None:
        self.spool.close()
        if self.spilled:
            self.conn.execute("DROP TABLE IF EXISTS temp.qllm_stage_hours")


@contextmanager
def staging(conn: sqlite3.Connection, user: str | None) -> Iterator[Stage]:
    """An empty `Stage` for one batch of ``user``'s, emptied afterwards whatever happens."""
    staged = Stage(conn, user)
    try:
        yield staged
    finally:
        staged.close()


def stage(staged: Stage, events: Iterable[Any], known_names: set[str]) -> int:
    """Validate ``events`` into ``staged``, outside any transaction; how many were staged.

    Read in chunks, so memory stays flat however long the input is (or however
    slowly it comes). Errors name the event's index (``/3/chat_cost``); names
    are checked here too, since a registered name is never removed.
    """
    conn, user = staged.conn, staged.user
    now = times.now()
    first = staged.count
    for chunk in chunks(events):
        # The events without `at` are remembered, so that a retry's time need not match.
        rows, timeless = rows_of(chunk, user, now, first, batch=True)
        _check_names(conn, rows, known_names, first)
        check_members(conn, rows, first)
        staged.add(rows, timeless)
        first += len(chunk)
    if staged.spilled and staged.hours:  # all in one place, before the write lock
        staged.flush_hours()
    return staged.count


def commit_stage(conn: sqlite3.Connection, staged: Stage) -> int:
    """Move the staged events in, inside the caller's write transaction; the number new.

    The only work done under the write lock: the inserts, the request_id checks
    when some were recorded before, the rollups and the 64-bit check.
    """
    last_id = "SELECT COALESCE(MAX(id), 0) FROM main.usage_events"
    (since,) = conn.execute(last_id).fetchone()
    before_chunk = since
    written = 0
    first = 0  # the batch index of the chunk's first event
    for rows, timeless in staged.chunks():
        before = conn.total_changes
        conn.executemany(_INSERT, rows)
        new = conn.total_changes - before
        if new < len(rows):  # some request_ids were seen before: each must repeat its event
            _inserted(conn, rows, timeless, before_chunk, first)
        written += new
        first += len(rows)
        (before_chunk,) = conn.execute(last_id).fetchone()
    if written == staged.count and not staged.spilled:
        touched = _roll_up(conn, staged.hours, staged.user)
    else:
        touched = _roll_up_in_sql(conn, staged, since, written < staged.count)
    check_all_totals(conn, touched)
    return written


def _roll_up_in_sql(
    conn: sqlite3.Connection, staged: Stage, since: int, skipped: bool
) -> list[tuple[str, str]]:
    """The rollups from ``temp.qllm_stage_hours``: the staged hourly sums, or when some
    events were skipped as repeats, the sums of the events written after id ``since``."""
    if skipped:  # the hourly sums counted the repeats too: summed again from what was written
        staged.hours.clear()
        if staged.spilled:
            conn.execute("DELETE FROM temp.qllm_stage_hours")
        else:
            conn.execute(_STAGE_HOURS_TABLE)
            staged.spilled = True
        conn.execute(_HOURS_OF, [since])
    try:
        for statement in _ROLL_UP_STAGED:
            conn.execute(statement)
    except sqlite3.IntegrityError as exc:  # the rollups' checks for exact 64-bit sums
        raise _too_large("Query LLM") from exc
    except sqlite3.OperationalError as exc:  # SUM() past 64 bits
        if "integer overflow" not in str(exc):
            raise
        raise _too_large("Query LLM") from exc
    touched = conn.execute("SELECT DISTINCT name, query_model FROM temp.qllm_stage_hours")
    return touched.fetchall()


def _check_names(conn: Conn, rows: list[Row], known: set[str], first: int | None) -> None:
    """Every row names a registered Query LLM. ``first``: the batch index of ``rows[0]``."""
    # Names are never deleted, so a name seen once stays known for this process.
    unseen = {row[0] for row in rows} - known
    if not unseen:
        return
    marks = ", ".join("?" * len(unseen))
    found = conn.execute(f"SELECT name FROM query_llms WHERE name IN ({marks})", list(unseen))
    known.update(name for (name,) in found)
    for position, row in enumerate(rows):
        if row[0] not in known:
            raise NotFoundError(row[0], None if first is None else first + position)


def check_members(conn: Conn, rows: list[Row], first: int | None) -> None:
    """Every row with a ``query_model`` names a registered Query Model that has the row's
    Query LLM among its members (QUERY_MODEL.md section 5)."""
    wanted = {row[_MODEL] for row in rows if row[_MODEL] is not None}
    if not wanted:
        return
    marks = ", ".join("?" * len(wanted))
    registered = {
        model
        for (model,) in conn.execute(
            f"SELECT name FROM query_models WHERE name IN ({marks})", list(wanted)
        )
    }
    pairs = {
        (model, member)
        for model, member in conn.execute(
            f"SELECT model, member FROM query_model_members WHERE model IN ({marks})",
            list(wanted),
        )
    }
    for position, row in enumerate(rows):
        model = row[_MODEL]
        if model is None or (model, row[0]) in pairs:
            continue
        path = "/query_model" if first is None else f"/{first + position}/query_model"
        if model not in registered:
            raise ValidationError.one(path, f"{model} is not a registered Query Model")
        raise ValidationError.one(
            path, f"Query Model {model} does not have the Query LLM {row[0]} among its members"
        )


def _inserted(
    conn: sqlite3.Connection,
    rows: list[Row],
    timeless: set[int],
    last_id: int,
    first: int | None,
) -> list[Row]:
    """The rows the insert kept; each one it skipped must repeat its stored event exactly.

    ``ON CONFLICT (request_id) DO NOTHING`` skipped them in order, so of rows
    sharing a ``request_id`` the first new one is the one kept.
    """
    kept = {
        request_id
        for (request_id,) in conn.execute(
            "SELECT request_id FROM usage_events WHERE id > ? AND request_id IS NOT NULL",
            [last_id],
        )
    }
    result = []
    for position, row in enumerate(rows):
        request_id = row[3]
        if request_id is None or request_id in kept:
            kept.discard(request_id)
            result.append(row)
            continue
        stored = conn.execute(
            f"SELECT name, user_id, at, request_id, {', '.join(AMOUNTS)}, query_model"
            " FROM usage_events"
            " WHERE request_id = ?",
            [request_id],
        ).fetchone()
        # A retry that leaves out `at` means "the same request": its stored time stands.
        same = stored[:2] == tuple(row[:2]) and stored[3:] == tuple(row[3:])
        if not same or (position not in timeless and stored[2] != row[2]):
            path = "/request_id" if first is None else f"/{first + position}/request_id"
            raise ConflictError.one(path, "was recorded before with different content")
    return result


# (name, hour, query_model) -> [requests, *amounts]: one user's events summed per hour.
Hours = dict[tuple[str, int, str], list[int]]


def add_hours(hours: Hours, rows: list[Row]) -> None:
    """Add ``rows`` (all of one user) into their hours' sums."""
    for name, _, at, _, a, b, c, d, e, f, model in rows:
        key = (name, at - at % HOUR, NO_MODEL if model is None else model)
        total = hours.get(key)
        if total is None:
            hours[key] = [1, a, b, c, d, e, f]
        else:
            total[0] += 1
            total[1] += a
            total[2] += b
            total[3] += c
            total[4] += d
            total[5] += e
            total[6] += f


def _roll_up(conn: sqlite3.Connection, hours: Hours, user: str | None) -> list[tuple[str, str]]:
    """Add ``user``'s hourly sums into the hourly and all-time rollups; the (name,
    query_model) pairs touched."""
    rolled = ANONYMOUS if user is None else user
    totals: dict[tuple[str, str], list[int]] = {}
    for (name, _, model), sums in hours.items():
        total = totals.get((name, model))
        if total is None:
            totals[name, model] = sums.copy()
        else:
            for i, value in enumerate(sums):
                total[i] += value
    try:
        conn.executemany(
            _ROLL_UP_HOURS, [[n, h, rolled, m, *sums] for (n, h, m), sums in hours.items()]
        )
        conn.executemany(
            _ROLL_UP_TOTALS, [[n, rolled, m, *sums] for (n, m), sums in totals.items()]
        )
    except (sqlite3.IntegrityError, OverflowError) as exc:  # the rollups' 64-bit checks
        raise _too_large("Query LLM") from exc
    return list(totals)


# --- the 64-bit guarantee -------------------------------------------------------------------


def check_totals(
    conn: Conn,
    touched: Iterable[str],
    *,
    column: str = "name",
    table: str = "usage_totals",
    group: str = "Query LLM",
) -> None:
    """Refuse (ValidationError) a write that took a touched group's totals past 64 bits.

    Call it inside the write's transaction, after the write: raising rolls it
    all back. ``touched`` are the values of ``column`` (the group key: a
    Query LLM's name, or another grouping) that the write added events to;
    ``table`` holds one or more rows per group with the amount columns
    (``usage_totals``: one per user). Each amount summed over the group, and
    each combined sort key, must stay a 64-bit integer.
    """
    keys = sorted(set(touched))
    sums = ", ".join(f"SUM({amount})" for amount in AMOUNTS)
    for start in range(0, len(keys), 500):  # SQLite binds at most 32766 values
        part = keys[start : start + 500]
        marks = ", ".join("?" * len(part))
        try:
            found = conn.execute(
                f"SELECT {sums} FROM {table} WHERE {column} IN ({marks}) GROUP BY {column}",
                part,
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "integer overflow" not in str(exc):
                raise
            raise _too_large(group) from exc
        for amounts in found:
            check_sums(dict(zip(AMOUNTS, amounts, strict=True)), group)


def check_all_totals(conn: Conn, touched: Iterable[tuple[str, str | None]]) -> None:
    """`check_totals` for the Query LLMs and the Query Models of ``(name, query_model)`` pairs."""
    pairs = list(touched)
    check_totals(conn, {name for name, _ in pairs})
    models = models_of(pairs)
    if models:
        check_totals(conn, models, column="query_model", group="Query Model")


def rebuild_rollups(conn: Conn) -> dict[str, int]:
    """Recompute both rollups from the events; how many rows each now has."""
    for statement in _REBUILD:
        conn.execute(statement)
    return {
        table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("usage_hourly", "usage_totals")
    }


# --- statistics for one Query LLM or Query Model ----------------------------------------------


# BIGINT: 64 bits in PostgreSQL too, where SUM of integers is NUMERIC.
_SUMS = ", ".join(f"COALESCE(CAST(SUM({a}) AS BIGINT), 0)" for a in AMOUNTS)


def totals(
    conn: Conn,
    name: str,
    user: str | None,
    window: Window,
    subject: Subject = LLMS,
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
            conn.execute(
                f"SELECT COALESCE(CAST(SUM(requests) AS BIGINT), 0), {_SUMS} FROM {table}"
                f" WHERE {column} = :name{hours}{mine}",
                params,
            ).fetchone()
        )
    for low, high in edges:
        parts.append(
            conn.execute(
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


def _range(column: str, bounds: tuple[int | None, int | None], params: dict[str, Any]) -> str:
    sql = ""
    if bounds[0] is not None:
        params["first"] = bounds[0]
        sql += f" AND {column} >= :first"
    if bounds[1] is not None:
        params["last"] = bounds[1]
        sql += f" AND {column} < :last"
    return sql


# --- list and count -----------------------------------------------------------------------


# Sort keys, summed per Query LLM: over rollup rows, and over raw event rows.
_METRICS = {
    "requests": ("requests", "1"),
    "tokens": (
        "chat_completion_tokens + chat_prompt_tokens"
        " + embedding_completion_tokens + embedding_prompt_tokens",
    )
    * 2,
    "prompt_tokens": ("chat_prompt_tokens + embedding_prompt_tokens",) * 2,
    "completion_tokens": ("chat_completion_tokens + embedding_completion_tokens",) * 2,
    "cost": ("chat_cost + embedding_cost",) * 2,
}
_MINE = (
    " AND (q.user_id = :user"
    " OR q.name IN (SELECT {column} FROM usage_totals WHERE user_id = :user))"
)


def ranked_names(conn: Conn, page: Page, user: str | None, subject: Subject = LLMS) -> list[str]:
    """One page of names: newest first, or by usage over the window, largest first."""
    # An offset past SQLite's largest integer is past the last row all the same (an empty
    # page); bound as is, it would raise OverflowError.
    offset = min(page.offset, 2**63 - 1)
    params: dict[str, Any] = {"user": user, "count": page.count, "offset": offset}
    mine = _MINE.format(column=subject.column) if user is not None else ""
    key = "created" if page.sort == "created" else _usage_of_q(page, user, params, subject)
    sql = f"SELECT name FROM {subject.table} q WHERE 1 = 1{mine} ORDER BY {key} DESC, name"
    rows = conn.execute(sql + " LIMIT :count OFFSET :offset", params)
    return [name for (name,) in rows]


def _usage_of_q(page: Page, user: str | None, params: dict[str, Any], subject: Subject) -> str:
    """The sort key of Query LLM (or Model) ``q`` over the window, as a SQL expression.

    Each piece is a subquery on ``q.name``, so that every Query LLM costs a few
    seeks in the rollups' and events' ``(name, ...)`` keys, rather than a scan
    of the whole window grouped afterwards.
    """
    rolled, raw = _METRICS[page.sort]
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


def count_names(conn: Conn, user: str | None, subject: Subject = LLMS) -> int:
    """How many Query LLMs (or Models) are registered, or how many ``list(me=True)`` returns."""
    mine = _MINE.format(column=subject.column) if user is not None else ""
    (count,) = conn.execute(
        f"SELECT COUNT(*) FROM {subject.table} q WHERE 1 = 1{mine}", {"user": user}
    ).fetchone()
    return int(count)
