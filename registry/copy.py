"""Copy a registry to another location (a SQLite file to PostgreSQL and back), then check
that the two hold the same: `copy_registry`.

What is copied: users, token hashes (a token is never stored, so none is ever
read; the same tokens keep working on the target), Query LLMs and Query Models
as stored (bodies byte for byte, names, owners, creation times), the members of
each Query Model, and every usage event (user, time, request_id, exact
nano-credit amounts, Query Model), every completion (embedding bytes and votes as
stored) and mark, and each training table's version. The rollups are not copied: each batch of
events goes through the target's own write path for events, which adds them
into both rollups in the same transaction (as any `record_usage_many` does), so
the target's rollups are its own events' from the first batch on.

How, in constant memory: every table is read by keyset pages in key order, and
written one page per transaction (all or nothing), parents before children.

What it refuses to copy: a source whose rows break the rules the registry
applies to input today (`check_source`): a user id or a usage event's
``request_id`` with a control or format character (a NUL, which SQLite keeps
and PostgreSQL cannot), a name that is not a name. Such rows were taken under
older rules; the whole source is read and checked before anything is written,
so the copy is refused with the first such row named and the target left
untouched. Correct or delete that row in the source, then copy again.

When it may start: only on a target that holds nothing but (part of) the
source. Before anything is written, the target is compared with the source:
each of its rows must be the source's row under the same key, and its usage
events must be the first events of the source, in order (none, some left by
an interrupted copy, or all). Anything else (another body under a name, a
token or user of its own, usage of its own) is a `CopyConflictError`, and
nothing is written. That one rule makes a copy safe to run again, after it
finished (nothing to do) or after it was killed (it goes on from the first
event the target lacks), including for events without a request_id, which
nothing else could tell apart from new ones.

When it is done: both registries are read again and compared row by row
(every table, every event in order, the rollups), their statistics compared per
Query LLM, per user and per Query Model, and the target's rollups compared with
a rebuild from its events. A difference is a `CopyMismatchError`. The source is
read in many short transactions: it must not be written during the copy.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

from attrs import frozen

from registry.errors import ConflictError, CopyConflictError, CopyMismatchError
from registry.events import Chunk, stored_problem
from registry.ids import identifier_problem
from registry.registry import DEFAULT_TIMEOUT, Registry
from registry.store import Store, Tx
from registry.store.spool import Spool
from registry.store.sql import COPIED, LAYOUTS, ROLLUPS, STATISTICS

__all__ = ["Copied", "copy_registry"]

PAGE = 2_000  # rows of a table read (and written) at a time
BATCH = 10_000  # usage events per write transaction

# What a row of each table is, in messages.
_WHAT = {
    "users": "user",
    "tokens": "token hash",
    "query_llms": "Query LLM",
    "query_models": "Query Model",
    "query_model_members": "member of Query Model",
    "completions": "completion",
    "completion_marks": "mark of completion",
    "training_tables": "version of training table",
    "usage_hourly": "hourly rollup of Query LLM",
    "usage_totals": "all-time rollup of Query LLM",
}
_BY = {"name": "Query LLM", "user_id": "user", "query_model": "Query Model"}

Row = tuple[Any, ...]


@frozen
class Copied:
    """What `copy_registry` did: how many of each the target now holds, like the source."""

    source: str
    target: str
    users: int
    tokens: int
    query_llms: int
    query_models: int
    events: int
    new_events: int  # of ``events``, how many this run wrote
    seconds: float
    completions: int = 0
    marks: int = 0

    def summary(self) -> str:
        return (
            f"copied {self.source} to {self.target}: {self.users} users, {self.tokens} tokens,"
            f" {self.query_llms} Query LLMs, {self.query_models} Query Models,"
            f" {self.events} usage events ({self.new_events} new),"
            f" {self.completions} completions ({self.marks} marked); verified;"
            f" {self.seconds:.1f} s"
        )


def copy_registry(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    batch: int = BATCH,
) -> Copied:
    """Make ``target`` (created and migrated if new) hold exactly what ``source`` holds,
    then check it; ``batch``: usage events per transaction. See the module's text."""
    started = time.monotonic()
    with (
        Registry(source, readonly=True, create=False, timeout=timeout) as src,
        Registry(target, timeout=timeout) as dst,
    ):
        copy = _Copy(src.store, dst.store)
        copy.check_source()
        after = copy.check_target()
        counts = {table: copy.table(table) for table in COPIED}
        new = copy.events(after, batch)
        events = copy.verify()
    return Copied(
        source=copy.source,
        target=copy.target,
        users=counts["users"],
        tokens=counts["tokens"],
        query_llms=counts["query_llms"],
        query_models=counts["query_models"],
        events=events,
        new_events=new,
        seconds=time.monotonic() - started,
        completions=counts["completions"],
        marks=counts["completion_marks"],
    )


class _Copy:
    def __init__(self, source: Store, target: Store) -> None:
        self.src = source
        self.dst = target
        self.source = source.where
        self.target = target.where

    # --- before writing: the source keeps today's rules ---------------------------------------

    def check_source(self) -> None:
        """Refuse a source holding a user id or a usage event that the rules of input
        refuse now (`registry.events.stored_problem`), before anything is written."""
        for page in _pages(self.src, "users"):
            for user, *_ in page:
                problem = identifier_problem(user)
                if problem:
                    self._unfit(f"a user {user!r}", "/user_id", problem)
        for event_id, *row in _events(self.src):
            found = stored_problem(row)
            if found is not None:
                rid = "" if row[3] is None else f", request_id {row[3]!r}"
                self._unfit(f"a usage event (id {event_id}{rid})", *found)

    def _unfit(self, what: str, path: str, problem: str) -> NoReturn:
        raise CopyConflictError(
            f"{self.source} holds {what} that qllm refuses today ({path} {problem}): correct"
            " or delete it in the source, then copy again; nothing was written"
        )

    # --- before writing: the target holds nothing but the source's --------------------------

    def check_target(self) -> int:
        """Refuse a target holding what the source does not; the source id after which
        the events still to copy come (0: all of them)."""
        for table in COPIED:
            found = _difference(
                _rows(self.src, table), _rows(self.dst, table), table, missing_ok=True
            )
            if found is not None:
                kind, key = found
                what = f"{_WHAT[table]} {_key_text(key)}"
                if kind == "extra":
                    raise CopyConflictError(
                        f"{self.target} holds a {what} that {self.source} does not have: copy"
                        " into a new registry, or one an earlier copy of it left;"
                        " nothing was written"
                    )
                raise CopyConflictError(
                    f"{self.target} already holds a {what} that differs from {self.source}'s:"
                    " nothing was written"
                )
        return self._events_done()

    def _events_done(self) -> int:
        """The target's events must be the source's first ones, in order: the source id of
        the last of them."""
        with self.dst.transaction(write=False) as tx:
            held = tx.count_events()
        if held == 0:
            return 0
        theirs = _events(self.dst)
        for position, (mine, their) in enumerate(zip(_events(self.src), theirs, strict=False)):
            if mine[1:] != their[1:]:
                raise CopyConflictError(
                    f"{self.target} holds usage events that are not {self.source}'s (its event"
                    f" {position + 1} differs): copy into a new registry; nothing was written"
                )
            if position + 1 == held:
                return int(mine[0])
        raise CopyConflictError(
            f"{self.target} holds more usage events than {self.source}: copy into a new"
            " registry; nothing was written"
        )

    # --- writing --------------------------------------------------------------------------------

    def table(self, table: str) -> int:
        """Copy a table page by page, one transaction each; how many rows the source has."""
        count = 0
        for page in _pages(self.src, table):
            self.dst.run(functools.partial(_put_rows, table=table, rows=page), write=True)
            count += len(page)
        return count

    def events(self, after: int, batch: int) -> int:
        """Copy the source's events with ids above ``after``, ``batch`` per transaction,
        through the target's own write path (rollups included); how many were written."""
        written = 0
        while True:
            with self.src.transaction(write=False) as tx:
                page = tx.event_page(after, batch)
            if not page:
                return written
            rows = [list(row[1:]) for row in page]
            with Spool.of([Chunk(rows, frozenset(), 0)]) as spool:
                written += self.dst.run(functools.partial(self._put, spool=spool), write=True)
            after = page[-1][0]

    def _put(self, tx: Tx, spool: Spool) -> int:
        try:
            written = tx.write(spool)
        except ConflictError:
            written = -1
        if written != spool.count:  # raised inside the transaction: this batch rolls back
            raise CopyConflictError(
                f"{self.target} received usage events from elsewhere during the copy (some"
                f" request_ids were there already): stop its writers, then copy again"
            )
        return written

    # --- after writing: the same on both sides -----------------------------------------------

    def verify(self) -> int:
        """Compare everything; how many events each side holds."""
        for table in LAYOUTS:
            found = _difference(
                _rows(self.src, table), _rows(self.dst, table), table, missing_ok=False
            )
            if found is not None:
                kind, key = found
                side = self.source if kind == "missing" else self.target
                self._mismatch(f"{_WHAT[table]} {_key_text(key)} ({kind} in {side})")
        events = 0
        for mine, their in _zip_all(_events(self.src), _events(self.dst)):
            if mine is None or their is None or mine[1:] != their[1:]:
                self._mismatch(f"usage event {events + 1}")
            events += 1
        for by in STATISTICS:
            for mine, their in _zip_all(_statistics(self.src, by), _statistics(self.dst, by)):
                if mine != their:
                    key = (mine or their or ("?",))[0]
                    self._mismatch(f"the statistics of {_BY[by]} {key!r}")
        self._check_rollups()
        return events

    def _check_rollups(self) -> None:
        """The target's rollups equal a rebuild from its events (the hourly rows from the
        events, then the all-time rows from the hourly ones), a page of rollup rows at a
        time: each page of stored rows, and the rebuilt rows of the same range of keys,
        read in one short transaction. Memory holds two pages, however many rows."""
        for table in ROLLUPS:
            width = len(ROLLUPS[table][0])
            after: Row | None = None
            while True:
                with self.dst.transaction(write=False) as tx:
                    stored = tx.copy_page(table, after, PAGE)
                    # The last page's range runs to the end: rebuilt rows past the last
                    # stored key are a difference too.
                    last = stored[-1][:width] if len(stored) == PAGE else None
                    rebuilt = tx.rebuilt_page(table, after, last, PAGE + 1)
                if stored != rebuilt:
                    first = _first_difference(stored, rebuilt)
                    raise CopyMismatchError(
                        f"{self.target}: the {_WHAT[table]} {_key_text(first[:width])}"
                        " differs from a rebuild from the events"
                        " (qllm rebuild-rollups repairs it)"
                    )
                if last is None:
                    break
                after = last

    def _mismatch(self, what: str) -> NoReturn:
        raise CopyMismatchError(
            f"the copy differs from its source: {what}, between {self.source} and {self.target}"
            " (was either written during the copy?); copy again once neither is written"
        )


def _put_rows(tx: Tx, *, table: str, rows: list[Row]) -> None:
    tx.put_rows(table, rows)


# --- streams of rows, in key order ---------------------------------------------------------------


def _pages(store: Store, table: str) -> Iterator[list[Row]]:
    """A table's rows in key order, one page per short read transaction (none held between)."""
    width = len(LAYOUTS[table][0])
    after: Row | None = None
    while True:
        with store.transaction(write=False) as tx:
            page = tx.copy_page(table, after, PAGE)
        if page:
            yield page
        if len(page) < PAGE:
            return
        after = page[-1][:width]


def _rows(store: Store, table: str) -> Iterator[Row]:
    for page in _pages(store, table):
        yield from page


def _events(store: Store) -> Iterator[Row]:
    """Every usage event, ``(id, *row)``, in id order."""
    after = 0
    while True:
        with store.transaction(write=False) as tx:
            page = tx.event_page(after, BATCH)
        yield from page
        if len(page) < BATCH:
            return
        after = page[-1][0]


def _statistics(store: Store, by: str) -> Iterator[Row]:
    after: str | None = None
    while True:
        with store.transaction(write=False) as tx:
            page = tx.statistics(by, after, PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1][0]


def _difference(
    source: Iterable[Row], target: Iterable[Row], table: str, *, missing_ok: bool
) -> tuple[str, Row] | None:
    """The first difference of two tables read in the same key order, merged as streams:
    ``("missing", key)`` (only in the source), ``("extra", key)`` (only in the target),
    ``("different", key)``; None when they agree (``missing_ok``: the target may lack rows).
    Text keys sort bytewise in both stores, as Python sorts ``str``."""
    width = len(LAYOUTS[table][0])
    mine_rows, their_rows = iter(source), iter(target)
    mine, their = next(mine_rows, None), next(their_rows, None)
    while mine is not None or their is not None:
        if their is None or (mine is not None and mine[:width] < their[:width]):
            assert mine is not None
            if not missing_ok:
                return "missing", mine[:width]
            mine = next(mine_rows, None)
        elif mine is None or their[:width] < mine[:width]:
            return "extra", their[:width]
        else:
            if mine != their:
                return "different", mine[:width]
            mine, their = next(mine_rows, None), next(their_rows, None)
    return None


def _zip_all(left: Iterator[Row], right: Iterator[Row]) -> Iterator[tuple[Row | None, Row | None]]:
    """Pairs of both streams, None for the shorter one's missing rows."""
    while True:
        mine, their = next(left, None), next(right, None)
        if mine is None and their is None:
            return
        yield mine, their


def _first_difference(stored: list[Row], rebuilt: list[Row]) -> Row:
    """The first row, of either list, where two lists in key order part."""
    for mine, their in zip(stored, rebuilt, strict=False):
        if mine != their:
            return min(mine, their)
    return (stored if len(stored) > len(rebuilt) else rebuilt)[min(len(stored), len(rebuilt))]


def _key_text(key: Row) -> str:
    return "/".join(str(part) for part in key)
