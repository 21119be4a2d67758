"""Storage backends: all the registry's SQL, behind one interface.

`Registry` (``registry.registry``) holds the rules: it validates input before
any transaction and makes one store call per transaction. A `Store` opens
transactions; a `Tx` is the SQL of one transaction. ``sql.py`` holds what
both dialects write alike (`SqlTx`, the base of each backend's transaction);
``sqlite/`` (the embedded default) and ``postgres/`` (psycopg 3 and
psycopg_pool, imported only when a ``postgresql://`` location is used) hold
only their own, and neither imports the other. ``spool.py`` holds validated
usage rows while they wait for the write lock. The interface is Protocols:
mypy checks each backend against them structurally.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from registry.errors import StorageError
from registry.location import is_postgres, sqlite_path
from registry.model import QueryLlm, QueryModel
from registry.query import Page, Subject, Window
from registry.series import Series
from registry.store.spool import Spool

T = TypeVar("T")


class Tx(Protocol):
    """The SQL of one transaction. Rows come back as plain tuples; rules stay above."""

    def token(self, digest: str) -> tuple[str, str, int | None] | None: ...
    def add_token(self, user_id: str, digest: str, now: int) -> None: ...
    def revoke_token(self, digest: str, now: int) -> None: ...
    def insert_llm(self, llm: QueryLlm, user: str | None, now: int) -> None: ...
    def insert_model(self, model: QueryModel, user: str | None, now: int) -> None: ...
    def body(
        self, subject: Subject, name: str
    ) -> tuple[str, str | None, int, str | None] | None: ...
    def members(self, name: str) -> list[tuple[str, str, str | None]]: ...
    def registered(self, names: Collection[str]) -> set[str]: ...
    def memberships(self, models: Collection[str]) -> tuple[set[str], set[tuple[str, str]]]: ...
    def totals(
        self, name: str, user: str | None, window: Window, subject: Subject = ...
    ) -> dict[str, Any]: ...
    def ranked_names(self, page: Page, user: str | None, subject: Subject = ...) -> list[str]: ...
    def count_names(self, user: str | None, subject: Subject = ...) -> int: ...
    def series(self, query: Series, user: str | None) -> list[dict[str, Any]]: ...
    def write(self, spool: Spool) -> int: ...
    def add_events(self, spool: Spool) -> int: ...
    def apply_rollups(self) -> None: ...
    def savepoint(self) -> AbstractContextManager[None]: ...
    def rebuild_rollups(self) -> dict[str, int]: ...
    def claim(self, spool: Spool, user: str) -> int: ...

    # Completions, marks and training tables (``training.py``).
    def write_completions(
        self,
        rows: Sequence[Sequence[Any]],
        where: Sequence[int | None],
        timeless: Collection[int],
    ) -> int: ...
    def completion(self, completion: str) -> tuple[Any, ...] | None: ...
    def put_mark(self, row: Sequence[Any], correct: str, scores: bytes, now: int) -> bool: ...
    def delete_mark(self, row: Sequence[Any]) -> bool: ...
    def training_state(self, table: str) -> tuple[int, int]: ...
    def training_count(self, table: str, response_format_hash: str, dimensions: int) -> int: ...
    def training_rows(
        self, table: str, response_format_hash: str, dimensions: int, after: int | None = ...
    ) -> Iterator[tuple[str, bytes, bytes, int]]: ...
    def table_scores(self, table: str) -> Iterator[bytes]: ...

    # Raw rows, for `registry.copy` (tables and columns: ``sql.py``).
    def copy_page(
        self, table: str, after: tuple[Any, ...] | None, limit: int
    ) -> list[tuple[Any, ...]]: ...
    def event_page(self, after: int, limit: int) -> list[tuple[Any, ...]]: ...
    def count_events(self) -> int: ...
    def put_rows(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...
    def statistics(self, by: str, after: str | None, limit: int) -> list[tuple[Any, ...]]: ...
    def rebuilt_page(
        self,
        table: str,
        after: tuple[Any, ...] | None,
        last: tuple[Any, ...] | None,
        limit: int,
    ) -> list[tuple[Any, ...]]: ...


class Store(Protocol):
    """A registry's database: transactions.

    ``run(work)`` is ``work(tx)`` in one transaction, run again where the backend may
    fail a transaction for conflicting with concurrent ones (PostgreSQL's serialization
    failures and deadlocks; SQLite's writers take turns instead): ``work`` must be safe
    to run twice, reading no input it cannot read again."""

    where: str  # the location, fit for messages (no password)
    readonly: bool
    # Whether `Tx.add_events` reads a spool's hourly sums (`Spool.runs`): SQLite's does;
    # PostgreSQL sums a batch in SQL, so summing it in Python too would be work thrown away.
    sums: bool

    def transaction(self, *, write: bool) -> AbstractContextManager[Tx]: ...
    def run(self, work: Callable[[Tx], T], *, write: bool) -> T: ...
    def close(self) -> None: ...


@functools.cache
def migrations_folder() -> Path:
    """The migrations: ``registry/_migrations`` in a wheel, ``migrations/`` in a checkout
    (``migrations.py`` for SQLite's set, ``postgres/`` for PostgreSQL's files)."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "_migrations", package.parent / "migrations"):
        if (folder / "migrations.py").is_file():
            return folder
    raise StorageError("the migrations are missing from this installation of qllm")


def open_store(
    location: str | os.PathLike[str],
    *,
    readonly: bool = False,
    timeout: float,
    create: bool = True,
) -> Store:
    """The backend for ``location``: ``postgresql://``/``postgres://`` URLs open PostgreSQL
    (psycopg imported only then); a path or ``sqlite:PATH`` opens a SQLite file."""
    if is_postgres(location):
        from registry.store.postgres import open_store as open_postgres  # noqa: PLC0415

        return open_postgres(str(location), readonly=readonly, timeout=timeout)
    from registry.store.sqlite import SqliteStore  # noqa: PLC0415

    return SqliteStore(sqlite_path(location), readonly=readonly, timeout=timeout, create=create)
