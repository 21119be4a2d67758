"""Storage backends: all the registry's SQL, one subpackage per database, behind one interface.

`Registry` (``registry.storage``) holds the rules and makes one store call per
transaction; a `Store` opens transactions, and a `Tx` is the SQL of one
transaction. ``sqlite/`` is the embedded default; ``postgres/`` (psycopg 3
and psycopg_pool) is imported only when a ``postgresql://`` location is
used. ``copying.py`` holds the SQL of `registry.copy`, the same in both
dialects. The interface is Protocols: mypy checks each backend against them
structurally.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from registry.model import QueryLlm, QueryModel
from registry.query import Page, Subject, Window
from registry.series import Series
from registry.store.postgres import is_location

T = TypeVar("T")


class Tx(Protocol):
    """The SQL of one transaction. Rows come back as plain tuples; rules stay above."""

    def token(self, digest: str) -> tuple[str, str, int | None] | None: ...
    def add_token(self, user_id: str, digest: str, now: int) -> None: ...
    def revoke_token(self, digest: str, now: int) -> None: ...
    def insert_llm(self, llm: QueryLlm, user: str | None, now: int) -> None: ...
    def llm(self, name: str) -> tuple[str, str | None, int, str | None] | None: ...
    def insert_model(self, model: QueryModel, user: str | None, now: int) -> None: ...
    def model(self, name: str) -> tuple[str | None, str, int, str | None] | None: ...
    def members(self, name: str) -> list[tuple[str, str, str | None]]: ...
    def totals(
        self, name: str, user: str | None, window: Window, subject: Subject = ...
    ) -> dict[str, Any]: ...
    def ranked_names(self, page: Page, user: str | None, subject: Subject = ...) -> list[str]: ...
    def count_names(self, user: str | None, subject: Subject = ...) -> int: ...
    def series(self, query: Series, user: str | None) -> list[dict[str, Any]]: ...
    def record(
        self, events: Iterable[Any], user: str | None, known_names: set[str], *, batch: bool
    ) -> int: ...
    def savepoint(self) -> AbstractContextManager[None]: ...
    def rebuild_rollups(self) -> dict[str, int]: ...

    # Raw rows, for `registry.copy` (tables and columns: ``copying.py``).
    def copy_page(
        self, table: str, after: tuple[Any, ...] | None, limit: int
    ) -> list[tuple[Any, ...]]: ...
    def event_page(self, after: int, limit: int) -> list[tuple[Any, ...]]: ...
    def count_events(self) -> int: ...
    def put_rows(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...
    def put_events(self, rows: list[list[Any]]) -> int: ...
    def statistics(self, by: str, after: str | None, limit: int) -> list[tuple[Any, ...]]: ...
    def rollup_rows(self, table: str, low: str, high: str) -> list[tuple[Any, ...]]: ...
    def rebuilt_rows(self, table: str, low: str, high: str) -> list[tuple[Any, ...]]: ...


class Store(Protocol):
    """A registry's database: transactions, and batches recorded the backend's fastest way.

    ``run(work)`` is ``work(tx)`` in one transaction, run again where the backend may
    fail a transaction for conflicting with concurrent ones (PostgreSQL's serialization
    failures and deadlocks; SQLite's writers take turns instead): ``work`` must be safe
    to run twice, reading no input it cannot read again."""

    where: str  # the location, fit for messages (no password)
    readonly: bool

    def transaction(self, *, write: bool) -> AbstractContextManager[Tx]: ...
    def run(self, work: Callable[[Tx], T], *, write: bool) -> T: ...
    def record_batch(
        self, events: Iterable[Mapping[str, Any]], user: str | None, known_names: set[str]
    ) -> tuple[int, float]: ...
    def close(self) -> None: ...


SQLITE_SCHEME = "sqlite:"
# Whether a location names a PostgreSQL database rather than a file (no psycopg needed).
is_postgres = is_location


def sqlite_path(location: str | os.PathLike[str]) -> Path:
    """The file of a SQLite location: a path, or ``sqlite:PATH`` (``sqlite:///abs`` too)."""
    text = os.fspath(location)
    if isinstance(text, str) and text.startswith(SQLITE_SCHEME):
        rest = text[len(SQLITE_SCHEME) :]
        if rest.startswith("//"):  # sqlite:///abs/path and sqlite://rel as in URLs
            rest = rest[2:]
        return Path(rest)
    return Path(text)


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

        return open_postgres(str(location), readonly=readonly, timeout=timeout, create=create)
    from registry.store.sqlite import SqliteStore  # noqa: PLC0415

    return SqliteStore(sqlite_path(location), readonly=readonly, timeout=timeout, create=create)
