"""`Registry`: the rules of the registry over one store (a SQLite file or a PostgreSQL
database), one store call per transaction.

Validation, tokens, windows, pages and the response bodies are decided here,
once for every backend; the SQL is in ``registry.store`` (``sqlite/``,
``postgres/``). The location picks the backend: a path or ``sqlite:PATH`` is a
SQLite file (the embedded default), a ``postgresql://`` URL a PostgreSQL database.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from registry import auth, times
from registry._convert import (
    NOT_A_MODEL_NAME,
    NOT_A_NAME,
    model_body,
    validate,
    validate_model,
)
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    RegistryError,
    StorageError,
    ValidationError,
)
from registry.model import QueryLlm, QueryModel
from registry.naming import is_name
from registry.query import MODELS, Page, Window
from registry.series import Series
from registry.store import Store, Tx, is_postgres, open_store, sqlite_path
from registry.store.sqlite import (
    APPLICATION_ID,
    DEFAULT_TIMEOUT,
    SqliteStore,
    known_migrations,
    migration_set,
)

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_TIMEOUT",
    "Outcomes",
    "Registry",
    "default_location",
    "default_path",
    "known_migrations",
    "location_of",
    "migration_set",
]

# What `Registry.record_usage_groups` returns (named here: the method `list` shadows the builtin).
Outcomes = list[int | RegistryError]


def default_path() -> Path:
    """``$QLLM_DB``, else ``$XDG_DATA_HOME/qllm/registry.db``, else ``~/.local/share/qllm/``."""
    if os.environ.get("QLLM_DB"):
        return Path(os.environ["QLLM_DB"])
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "qllm" / "registry.db"


def default_location() -> str | Path:
    """`default_path`, or the PostgreSQL URL that ``$QLLM_DB`` holds (kept as text: a
    `Path` would fold its ``//``)."""
    if is_postgres(os.environ.get("QLLM_DB")):
        return os.environ["QLLM_DB"]
    return default_path()


def location_of(location: str | os.PathLike[str]) -> str | Path:
    """A location as given: a PostgreSQL URL stays text, anything else is a file's `Path`."""
    return str(location) if is_postgres(location) else sqlite_path(location)


class Registry:
    """A registry in one SQLite file or one PostgreSQL database, shared safely by many
    processes (and, on PostgreSQL, machines).

    ``Registry(path)`` opens or creates the file (mode 0600) and applies
    pending migrations; with ``create=False`` a missing file is a
    `NoRegistryError` instead. A file that is another application's database
    is refused untouched (`NotARegistryError`). ``readonly=True``: nothing can
    be written through it, even by mistake (SQLite's ``mode=ro``; on
    PostgreSQL, read-only transactions, and pending migrations are refused);
    a file whose directory the caller cannot write is read as it is on disk
    (SQLite's ``immutable=1``) when it has no pending write-ahead log.
    ``Registry("postgresql://user@host/db")`` opens a PostgreSQL database
    (psycopg 3 and psycopg_pool), applying pending migrations; ``create`` is
    about files and is ignored there (a database is never created by qllm).
    ``timeout`` is how long a call waits for another writer's lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        readonly: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        create: bool = True,
    ) -> None:
        location = location_of(path) if path is not None else default_location()
        self.location = str(location)
        self.readonly = readonly
        self.timeout = timeout
        self.create = create and not readonly
        # How long the last `record_usage_many` held the write lock (seconds).
        self.last_lock_seconds = 0.0
        self._known_names: set[str] = set()
        self.store: Store = open_store(location, readonly=readonly, timeout=timeout, create=create)

    @property
    def path(self) -> Path:
        """The SQLite file (a PostgreSQL registry has none: `StorageError`)."""
        return self._sqlite().path

    @property
    def db(self) -> Any:
        """For tools and tests that look at the tables: the SQLite file's
        `sqlite_utils.Database`, or on PostgreSQL a connection of its own whose
        ``execute`` takes the same placeholders."""
        db = getattr(self.store, "db", None)
        if db is None:
            raise StorageError(f"{self.store.where} offers no direct connection")
        return db

    @property
    def _conn(self) -> Any:
        """The SQLite file's connection (tests put a recorder in its place)."""
        return self._sqlite().conn

    @_conn.setter
    def _conn(self, conn: Any) -> None:
        self._sqlite().conn = conn

    def _sqlite(self) -> SqliteStore:
        if not isinstance(self.store, SqliteStore):
            raise StorageError(f"{self.store.where} is not a SQLite file")
        return self.store

    def _transaction(self, *, write: bool = True) -> AbstractContextManager[Tx]:
        return self.store.transaction(write=write)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Registry {self.store.where!r}{' readonly' if self.readonly else ''}>"

    # --- users and tokens ------------------------------------------------------------------

    def _caller(self, tx: Tx, token: str | None) -> str | None:
        """The user id behind ``token``; None without one. Unknown or revoked: an error."""
        if token is None:
            return None
        digest = auth.token_hash(token)
        row = tx.token(digest)
        if row is None or not auth.matches(row[0], digest):
            raise AuthenticationError("unknown token")
        if row[2] is not None:
            raise AuthenticationError("token was revoked")
        return row[1]

    def _me(self, tx: Tx, me: Any, token: str | None) -> str | None:
        """The caller for a ``me`` query (None when ``me`` is false)."""
        caller = self._caller(tx, token)
        if _flag("/me", me):
            if caller is None:
                raise AuthorizationError("me=true needs a token")
            return caller
        return None

    def create_token(self, user_id: str) -> str:
        """A new token for ``user_id`` (a new user is created): returned once, never stored."""
        user_id = auth.check_user_id(user_id)
        token = auth.new_token()
        with self._transaction() as tx:
            tx.add_token(user_id, auth.token_hash(token), times.now())
        return token

    def revoke_token(self, token: str) -> None:
        """Revoke ``token`` from now on; revoking it again changes nothing."""
        digest = auth.token_hash(token)
        with self._transaction() as tx:
            found = tx.token(digest)
            if found is None or not auth.matches(found[0], digest):
                raise AuthenticationError("unknown token")
            tx.revoke_token(digest, times.now())

    # --- Query LLMs ---------------------------------------------------------------------

    def register(self, body: Any, token: str | None = None) -> QueryLlm:
        """Validate and store ``body``; registering it again changes nothing."""

        def work(tx: Tx) -> QueryLlm:
            user = self._caller(tx, token)
            llm = body if isinstance(body, QueryLlm) else validate(body)
            tx.insert_llm(llm, user, times.now())
            return llm

        llm = self.store.run(work, write=True)
        self._known_names.add(llm.name)
        return llm

    def get(
        self,
        name: str,
        metadata: bool = False,
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """The response body of ``name`` (spec 5); with ``metadata``, its statistics (spec 7).

        When ``metadata`` is false, ``me``, ``start`` and ``end`` are ignored.
        """
        with self._transaction(write=False) as tx:
            with_metadata = _flag("/metadata", metadata)
            if with_metadata:
                user = self._me(tx, me, token)
                window = Window.of(start, end)
            else:
                self._caller(tx, token)
            if not is_name(name):
                raise ValidationError.one("/name", NOT_A_NAME)
            row = tx.llm(name)
            if row is None:
                raise NotFoundError(name)
            body = _llm_body(name, row[0], row[1])
            if with_metadata:
                body["user_id"] = row[3]
                body["created"] = times.render(row[2])
                body.update(tx.totals(name, user, window))
        return body

    def list(
        self,
        count: int = 100,
        offset: int = 0,
        sort: str = "created",
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> list[str]:
        """Names, ``count`` at a time from ``offset``: newest first or by usage (spec 9)."""
        with self._transaction(write=False) as tx:
            user = self._me(tx, me, token)
            page = Page.of(count, offset, sort, start, end)
            return tx.ranked_names(page, user)

    def count(self, me: bool = False, token: str | None = None) -> int:
        """How many Query LLMs are registered; with ``me``, how many ``list(me=True)`` has."""
        with self._transaction(write=False) as tx:
            return tx.count_names(self._me(tx, me, token))

    # --- Query Models ---------------------------------------------------------------------

    def register_model(self, body: Any, token: str | None = None) -> QueryModel:
        """Validate and store a Query Model and its members, all in one transaction.

        Members are registered as by `register`, for the same caller; registering
        the model again changes nothing.
        """

        def work(tx: Tx) -> QueryModel:
            user = self._caller(tx, token)
            model = body if isinstance(body, QueryModel) else validate_model(body)
            now = times.now()
            for llm in {m.name: m for m in model.members}.values():
                tx.insert_llm(llm, user, now)
            tx.insert_model(model, user, now)
            return model

        model = self.store.run(work, write=True)
        self._known_names.update(m.name for m in model.members)
        return model

    def get_model(
        self,
        name: str,
        metadata: bool = False,
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """The response body of a Query Model; with ``metadata``, the statistics of the
        usage events recorded for it (``me``, ``start`` and ``end`` as for `get`)."""
        with self._transaction(write=False) as tx:
            with_metadata = _flag("/metadata", metadata)
            if with_metadata:
                user = self._me(tx, me, token)
                window = Window.of(start, end)
            else:
                self._caller(tx, token)
            if not is_name(name):
                raise ValidationError.one("/name", NOT_A_MODEL_NAME)
            row = tx.model(name)
            if row is None:
                raise NotFoundError(name, kind="Query Model")
            members = [_llm_body(*member) for member in tx.members(name)]
            result = model_body(name, row[0], members, json.loads(row[1]))
            if with_metadata:
                result["user_id"] = row[3]
                result["created"] = times.render(row[2])
                result.update(tx.totals(name, user, window, MODELS))
        return result

    def list_models(
        self,
        count: int = 100,
        offset: int = 0,
        sort: str = "created",
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> builtins.list[str]:  # `list` here is the method above
        """Query Model names, as `list` gives Query LLM names (same sorts, paging and ``me``)."""
        with self._transaction(write=False) as tx:
            user = self._me(tx, me, token)
            page = Page.of(count, offset, sort, start, end)
            return tx.ranked_names(page, user, MODELS)

    def count_models(self, me: bool = False, token: str | None = None) -> int:
        """How many Query Models are registered; with ``me``: as ``list_models(me=True)``."""
        with self._transaction(write=False) as tx:
            return tx.count_names(self._me(tx, me, token), MODELS)

    # --- usage ------------------------------------------------------------------------

    def record_usage(
        self,
        name: str,
        token: str | None = None,
        at: str | datetime | None = None,
        request_id: str | None = None,
        chat_prompt_tokens: int = 0,
        chat_completion_tokens: int = 0,
        chat_cost: int | float | str | Decimal = 0,
        embedding_prompt_tokens: int = 0,
        embedding_completion_tokens: int = 0,
        embedding_cost: int | float | str | Decimal = 0,
        query_model: str | None = None,
    ) -> int:
        """Record one usage event; 1 if written, 0 if its ``request_id`` was recorded before.

        ``query_model``: the Query Model the request served, which must have ``name``
        among its members."""
        event = {
            "name": name,
            "at": at,
            "request_id": request_id,
            "chat_prompt_tokens": chat_prompt_tokens,
            "chat_completion_tokens": chat_completion_tokens,
            "chat_cost": chat_cost,
            "embedding_prompt_tokens": embedding_prompt_tokens,
            "embedding_completion_tokens": embedding_completion_tokens,
            "embedding_cost": embedding_cost,
            "query_model": query_model,
        }

        def work(tx: Tx) -> int:
            user = self._caller(tx, token)
            return tx.record([event], user, self._known_names, batch=False)

        return self.store.run(work, write=True)

    def record_usage_many(
        self, events: Iterable[Mapping[str, Any]], token: str | None = None
    ) -> int:
        """Record a batch all-or-nothing; returns how many events were new.

        ``events`` may be any iterable, a generator included: it is read once,
        in chunks, validated and staged before the write lock is taken (on
        SQLite, in a temporary table of this connection), so a long or slow
        input never blocks other writers; then one short transaction moves the
        events in (see ``last_lock_seconds``). An error names the event's index.
        """
        if self.readonly:
            raise StorageError(f"{self.store.where} is open read-only")
        with self._transaction(write=False) as tx:
            user = self._caller(tx, token)
        written, self.last_lock_seconds = self.store.record_batch(events, user, self._known_names)
        return written

    def usage_series(
        self,
        start: str | datetime,
        end: str | datetime | None = None,
        bucket: str = "day",
        group_by: Iterable[str] = (),
        names: Iterable[str] | None = None,
        query_model: str | None = None,
        me: bool = False,
        token: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Usage per bucket and group over ``[start, end)`` (USAGE_SERIES.md): the ``data`` list.

        ``bucket``: hour, day, week (from Monday) or month, aligned in UTC; ``group_by``:
        any of name, model, user_id; ``names``: only these Query LLMs.
        """
        with self._transaction(write=False) as tx:
            user = self._me(tx, me, token)
            query = Series.of(start, end, bucket, group_by, names, query_model)
            return tx.series(query, user)

    def record_usage_groups(
        self, jobs: Sequence[tuple[Iterable[Mapping[str, Any]], str | None, bool]]
    ) -> Outcomes:
        """Record several independent batches in ONE transaction (one commit, one sync).

        Each job is ``(events, token, batch)``; it runs in its own SAVEPOINT, so a
        job that fails rolls back alone and its outcome is the error, while the
        others' outcomes are their counts written. ``batch=False`` reports errors
        as `record_usage` does (no index). If the commit itself fails, the
        `StorageError` is raised: no job was written. This is what lets a server
        share one commit between concurrent requests (group commit).
        """

        def work(tx: Tx) -> Outcomes:
            outcomes: Outcomes = []
            for events, token, batch in jobs:
                try:
                    with tx.savepoint():
                        user = self._caller(tx, token)
                        written = tx.record(events, user, self._known_names, batch=batch)
                except RegistryError as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(written)
            return outcomes

        # Run again after a conflict only when every job's events can be read twice.
        if all(isinstance(events, list | tuple) for events, _, _ in jobs):
            return self.store.run(work, write=True)
        with self._transaction() as tx:
            return work(tx)

    def rebuild_rollups(self) -> dict[str, int]:
        """Recompute the rollups from the usage events; how many rows each rollup has."""
        with self._transaction() as tx:
            return tx.rebuild_rollups()


def _llm_body(name: str, body: str, training_table_name: str | None) -> dict[str, Any]:
    """A stored Query LLM's response body (spec 5) without metadata."""
    result: dict[str, Any] = json.loads(body)
    result["name"] = name
    if training_table_name is not None:
        result["training_table_name"] = training_table_name
    return result


def _flag(path: str, value: Any) -> bool:
    if value.__class__ is not bool:
        raise ValidationError.one(path, "must be true or false")
    return bool(value)
