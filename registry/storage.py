"""The registry file: opening, migrating, transactions, Query LLMs, users and tokens.

Usage events and their statistics are in `registry.usage`; the schema is the
migration set in ``migrations/``. Every write is one ``BEGIN IMMEDIATE``
transaction: it takes the write lock up front, so it waits (up to the busy
timeout) for other writers instead of failing half-way, and either all of it
is committed or none.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from sqlite_utils import Database, Migrations

from registry import auth, times, usage
from registry._convert import NOT_A_NAME, validate
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    NotFoundError,
    RegistryError,
    SchemaTooNewError,
    StorageError,
    ValidationError,
)
from registry.model import QueryLlm
from registry.naming import is_name

DEFAULT_TIMEOUT = 10.0
# What `Registry.record_usage_groups` returns (named here: the method `list` shadows the builtin).
Outcomes = list[int | RegistryError]


def default_path() -> Path:
    """``$QLLM_DB``, else ``$XDG_DATA_HOME/qllm/registry.db``, else ``~/.local/share/qllm/``."""
    if os.environ.get("QLLM_DB"):
        return Path(os.environ["QLLM_DB"])
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "qllm" / "registry.db"


@functools.cache
def migration_set() -> Migrations:
    """The migration set: ``registry/_migrations`` in a wheel, ``migrations/`` in a checkout."""
    package = Path(__file__).parent
    for path in (
        package / "_migrations" / "migrations.py",
        package.parent / "migrations" / "migrations.py",
    ):
        if path.is_file():
            spec = importlib.util.spec_from_file_location("registry._migration_set", path)
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return cast(Migrations, module.migrations)
    raise StorageError("the migration set is missing from this installation of qllm")


@functools.cache
def known_migrations() -> frozenset[str]:
    """The names of the migrations this version has: all of them are pending on no file."""
    return frozenset(m.name for m in migration_set().pending(Database(memory=True)))


# What SQLite says, and what it means for the caller.
_EXPLANATIONS = (
    (("locked", "busy"), "{path} is locked by another process (gave up after {timeout:g} s)"),
    (("disk is full",), "cannot write {path}: {text}"),
    # A write that failed part-way, such as one past a file size limit (EFBIG).
    (("disk I/O",), "cannot write {path}: {text} (is the disk full, or the file too large?)"),
    (("readonly", "read-only"), "{path} cannot be written: {text}"),
    (("unable to open",), "cannot open {path}: {text}"),
    (("integer overflow",), "{path}: the totals asked for exceed 64-bit integers"),
    (("not a database", "malformed"), "{path} is not a usable registry: {text}"),
)


class Registry:
    """A registry in one SQLite file, shared safely by many processes.

    ``Registry(path)`` opens or creates the file (mode 0600) and applies
    pending migrations. ``readonly=True`` opens it with SQLite's ``mode=ro``:
    nothing can be written through it, even by mistake. ``timeout`` is how
    long a call waits for another process's write lock before failing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        readonly: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.readonly = readonly
        self.timeout = timeout
        self._known_names: set[str] = set()
        with self._errors():
            self._conn = self._connect()
        try:
            self.db = Database(self._conn, execute_plugins=False)
            with self._errors():
                self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # --- opening ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.is_file():
                raise StorageError(f"no registry at {self.path}")
            uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        else:
            self._create_file()
            uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=rw"
        # isolation_level=None: no implicit transactions; every one is explicit here.
        conn = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: in WAL mode, each commit is synced, so a committed event survives
        # a power cut too, not only a crash of the process.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _create_file(self) -> None:
        """Create the file readable by its owner only; SQLite gives -wal and -shm the same mode."""
        try:
            if self.path.exists():
                return
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileExistsError):  # another process made it first: fine
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:  # e.g. a parent is a regular file, or no permission
            raise StorageError(f"cannot create {self.path}: {exc.strerror or exc}") from exc

    def _migrate(self) -> None:
        migrations = migration_set()
        self._refuse_newer(migrations)
        if self.readonly:
            if migrations.pending(self.db):
                raise StorageError(f"{self.path} needs migrating: open it once without readonly")
            return
        self._use_wal()
        if not migrations.pending(self.db):
            return
        # Several processes may open a brand-new file at once: the write lock
        # makes them take turns, and the ones that come later find nothing pending.
        with self._transaction():
            self._refuse_newer(migrations)
            migrations.apply(self.db)

    def _use_wal(self) -> None:
        """Put the file in WAL mode, so that readers go on while one process writes.

        WAL is a property of the file: set once, by whichever process opens a
        new file first. The switch does not wait for the busy timeout: when
        several processes open a new file at once, the losers get "database is
        locked" at once; they retry until the timeout, and find WAL set.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            (mode,) = self._conn.execute("PRAGMA journal_mode").fetchone()
            if mode == "wal":
                return
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _refuse_newer(self, migrations: Migrations) -> None:
        """A file migrated by a newer version is left alone: its schema may mean other things."""
        unknown = {m.name for m in migrations.applied(self.db)} - known_migrations()
        if unknown:
            raise SchemaTooNewError(str(self.path), sorted(unknown))

    # --- transactions and errors -------------------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` for writes, a consistent snapshot for reads."""
        conn = self._conn
        if write and self.readonly:
            raise StorageError(f"{self.path} is open read-only")
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn SQLite's failures into `StorageError`s that say what to do."""
        try:
            yield
        except RegistryError:
            raise
        except sqlite3.Error as exc:
            raise StorageError(self._explain(exc)) from exc

    def _explain(self, exc: sqlite3.Error) -> str:
        text = str(exc)
        for clues, explanation in _EXPLANATIONS:
            if any(clue in text for clue in clues):
                return explanation.format(path=self.path, timeout=self.timeout, text=text)
        return f"{self.path}: {text}"

    def close(self) -> None:
        self._conn.close()

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
        return f"<Registry {str(self.path)!r}{' readonly' if self.readonly else ''}>"

    # --- users and tokens ------------------------------------------------------------------

    def _caller(self, conn: sqlite3.Connection, token: str | None) -> str | None:
        """The user id behind ``token``; None without one. Unknown or revoked: an error."""
        if token is None:
            return None
        digest = auth.token_hash(token)
        row = conn.execute(
            "SELECT hash, user_id, revoked FROM tokens WHERE hash = ?", [digest]
        ).fetchone()
        if row is None or not auth.matches(row[0], digest):
            raise AuthenticationError("unknown token")
        if row[2] is not None:
            raise AuthenticationError("token was revoked")
        return str(row[1])

    def _me(self, conn: sqlite3.Connection, me: Any, token: str | None) -> str | None:
        """The caller for a ``me`` query (None when ``me`` is false)."""
        caller = self._caller(conn, token)
        if _flag("/me", me):
            if caller is None:
                raise AuthorizationError("me=true needs a token")
            return caller
        return None

    def create_token(self, user_id: str) -> str:
        """A new token for ``user_id`` (a new user is created): returned once, never stored."""
        user_id = auth.check_user_id(user_id)
        token = auth.new_token()
        with self._errors(), self._transaction() as conn:
            now = times.now()
            conn.execute(
                "INSERT INTO users (id, created) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                [user_id, now],
            )
            conn.execute(
                "INSERT INTO tokens (hash, user_id, created) VALUES (?, ?, ?)",
                [auth.token_hash(token), user_id, now],
            )
        return token

    def revoke_token(self, token: str) -> None:
        """Revoke ``token`` from now on; revoking it again changes nothing."""
        digest = auth.token_hash(token)
        with self._errors(), self._transaction() as conn:
            found = conn.execute("SELECT hash FROM tokens WHERE hash = ?", [digest]).fetchone()
            if found is None or not auth.matches(found[0], digest):
                raise AuthenticationError("unknown token")
            conn.execute(
                "UPDATE tokens SET revoked = ? WHERE hash = ? AND revoked IS NULL",
                [times.now(), digest],
            )

    # --- Query LLMs ---------------------------------------------------------------------

    def register(self, body: Any, token: str | None = None) -> QueryLlm:
        """Validate and store ``body``; registering it again changes nothing."""
        with self._errors(), self._transaction() as conn:
            user = self._caller(conn, token)
            llm = body if isinstance(body, QueryLlm) else validate(body)
            conn.execute(
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
                    times.now(),
                    user,
                ],
            )
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
        with self._errors(), self._transaction(write=False) as conn:
            with_metadata = _flag("/metadata", metadata)
            if with_metadata:
                user = self._me(conn, me, token)
                window = usage.Window.of(start, end)
            else:
                self._caller(conn, token)
            if not is_name(name):
                raise ValidationError.one("/name", NOT_A_NAME)
            row = conn.execute(
                "SELECT body, training_table_name, created, user_id FROM query_llms WHERE name = ?",
                [name],
            ).fetchone()
            if row is None:
                raise NotFoundError(name)
            body: dict[str, Any] = json.loads(row[0])
            body["name"] = name
            if row[1] is not None:
                body["training_table_name"] = row[1]
            if with_metadata:
                body["user_id"] = row[3]
                body["created"] = times.render(row[2])
                body.update(usage.totals(conn, name, user, window))
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
        with self._errors(), self._transaction(write=False) as conn:
            user = self._me(conn, me, token)
            page = usage.Page.of(count, offset, sort, start, end)
            return usage.ranked_names(conn, page, user)

    def count(self, me: bool = False, token: str | None = None) -> int:
        """How many Query LLMs are registered; with ``me``, how many ``list(me=True)`` has."""
        with self._errors(), self._transaction(write=False) as conn:
            return usage.count_names(conn, self._me(conn, me, token))

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
    ) -> int:
        """Record one usage event; 1 if written, 0 if its ``request_id`` was recorded before."""
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
        }
        with self._errors(), self._transaction() as conn:
            user = self._caller(conn, token)
            return usage.record_many(conn, [event], user, self._known_names, batch=False)

    def record_usage_many(
        self, events: Iterable[Mapping[str, Any]], token: str | None = None
    ) -> int:
        """Record a batch all-or-nothing; returns how many events were new.

        ``events`` may be any iterable, a generator included: it is read once,
        in chunks, inside one transaction. An error names the event's index.
        """
        with self._errors(), self._transaction() as conn:
            user = self._caller(conn, token)
            return usage.record_many(conn, events, user, self._known_names)

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
        outcomes: Outcomes = []
        with self._errors(), self._transaction() as conn:
            for events, token, batch in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    user = self._caller(conn, token)
                    written = usage.record_many(conn, events, user, self._known_names, batch=batch)
                except RegistryError as exc:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append(exc)
                else:
                    outcomes.append(written)
                conn.execute("RELEASE job")
        return outcomes

    def rebuild_rollups(self) -> dict[str, int]:
        """Recompute the rollups from the usage events; how many rows each rollup has."""
        with self._errors(), self._transaction() as conn:
            return usage.rebuild_rollups(conn)


def _flag(path: str, value: Any) -> bool:
    if value.__class__ is not bool:
        raise ValidationError.one(path, "must be true or false")
    return bool(value)
