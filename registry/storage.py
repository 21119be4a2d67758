"""The registry file: opening, migrating, transactions, Query LLMs, users and tokens.

Usage events and their statistics are in `registry.usage`; the schema is the
migration set in ``migrations/``. Every write is one ``BEGIN IMMEDIATE``
transaction: it takes the write lock up front, so it waits (up to the busy
timeout) for other writers instead of failing half-way, and either all of it
is committed or none.
"""

from __future__ import annotations

import builtins
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

from registry import auth, times, usage, usage_series
from registry._convert import (
    NOT_A_MODEL_NAME,
    NOT_A_NAME,
    model_body,
    unstructure_strategy,
    validate,
    validate_model,
)
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    NoRegistryError,
    NotARegistryError,
    NotFoundError,
    RegistryError,
    SchemaTooNewError,
    StorageError,
    ValidationError,
)
from registry.model import QueryLlm, QueryModel
from registry.naming import is_name
from registry.series import Series

DEFAULT_TIMEOUT = 10.0
# SQLite's header field for "which application's file is this": "QLLM" in ASCII.
# Set on every registry, checked before anything is written to a file.
APPLICATION_ID = 0x514C4C4D
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
    (
        ("readonly", "read-only"),
        "{path} cannot be written: {text} (to read it only, open it read-only: --readonly)",
    ),
    (("unable to open",), "cannot open {path}: {text}"),
    (("integer overflow",), "{path}: the totals asked for exceed 64-bit integers"),
    (("not a database", "malformed"), "{path} is not a usable registry: {text}"),
)


class Registry:
    """A registry in one SQLite file, shared safely by many processes.

    ``Registry(path)`` opens or creates the file (mode 0600) and applies
    pending migrations; with ``create=False`` a missing file is a
    `NoRegistryError` instead. A file that is another application's database
    is refused untouched (`NotARegistryError`). ``readonly=True`` opens it with
    SQLite's ``mode=ro``: nothing can be written through it, even by mistake;
    a file whose directory the caller cannot write is read as it is on disk
    (SQLite's ``immutable=1``) when it has no pending write-ahead log.
    ``timeout`` is how long a call waits for another process's write lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        readonly: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        create: bool = True,
    ) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.readonly = readonly
        self.timeout = timeout
        self.create = create and not readonly
        # How long the last `record_usage_many` held the write lock (seconds).
        self.last_lock_seconds = 0.0
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
        if self.create:
            self._create_file()
        elif not self.path.is_file():
            raise NoRegistryError(str(self.path))
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        conn = self._open(uri + ("?mode=ro" if self.readonly else "?mode=rw"))
        if self.readonly:
            try:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as exc:
                # A WAL file needs its -shm index, which SQLite creates beside
                # the file: impossible in a directory the caller cannot write.
                # A busy file is another matter: reported as it is.
                conn.close()
                if "locked" in str(exc) or "busy" in str(exc):
                    raise
                conn = self._open(uri + "?" + self._unshared_read())
        conn.execute("PRAGMA foreign_keys = ON")
        # Batches are staged in temporary tables: on disk, so memory stays flat.
        conn.execute("PRAGMA temp_store = FILE")
        # FULL: in WAL mode, each commit is synced, so a committed event survives
        # a power cut too, not only a crash of the process.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _open(self, uri: str) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; every one is explicit here.
        return sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)

    def _unshared_read(self) -> str:
        """The URI query to read a file that cannot be opened as shared; or why not.

        ``immutable=1`` reads the file alone, with no locks and no -shm: right
        for a backup, a copy or a read-only mount, and safe whenever there is no
        write-ahead log to apply. With one (a non-empty -wal beside the file),
        the file alone may miss committed writes, so that is refused.
        """
        wal = Path(f"{self.path}-wal")
        try:
            pending = wal.stat().st_size > 0
        except FileNotFoundError:
            pending = False
        except OSError as exc:
            raise StorageError(f"cannot read {wal}: {exc.strerror or exc}") from exc
        if pending:
            raise StorageError(
                f"cannot read {self.path} read-only: its recent writes are still in {wal}, and "
                f"reading them needs {self.path}-shm, which cannot be created in "
                f"{self.path.parent}. Either copy the file and its -wal into a directory you can "
                "write and read the copy, or ask a user who can write that directory to open it "
                "(e.g. `qllm count`) once no process has it open: the last to close it folds "
                "the log into the file"
            )
        return "mode=ro&immutable=1"

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
        stamped = self._identify()
        self._refuse_newer(migrations)
        if self.readonly:
            if migrations.pending(self.db):
                raise StorageError(f"{self.path} needs migrating: open it once without readonly")
            return
        self._use_wal()
        if stamped and not migrations.pending(self.db):
            return
        # Several processes may open a brand-new file at once: the write lock
        # makes them take turns, and the ones that come later find nothing pending.
        with self._transaction() as conn:
            self._identify()
            self._refuse_newer(migrations)
            migrations.apply(self.db)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def _identify(self) -> bool:
        """Whether the file is stamped as a registry; `NotARegistryError` if it is another's.

        Reads only, so a foreign file is refused exactly as it was found. An
        empty database becomes a registry; a file of the first release (no
        stamp yet, but our migration set applied) is recognised, and stamped
        by the caller.
        """
        (application_id,) = self._conn.execute("PRAGMA application_id").fetchone()
        if application_id == APPLICATION_ID:
            return True
        if application_id != 0:
            raise NotARegistryError(
                str(self.path),
                f"its application_id is {application_id:#x}, a registry's is {APPLICATION_ID:#x}",
            )
        tables = {name for (name,) in self._conn.execute("SELECT name FROM sqlite_master")}
        if not tables:
            return False
        if (
            "_sqlite_migrations" in tables
            and self._conn.execute(
                "SELECT 1 FROM _sqlite_migrations WHERE migration_set = 'qllm' LIMIT 1"
            ).fetchone()
        ):
            return False
        raise NotARegistryError(str(self.path), "it holds other tables and no registry stamp")

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
            _store_llm(conn, llm, user, times.now())
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
            body = _llm_body(name, row[0], row[1])
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

    # --- Query Models ---------------------------------------------------------------------

    def register_model(self, body: Any, token: str | None = None) -> QueryModel:
        """Validate and store a Query Model and its members, all in one transaction.

        Members are registered as by `register`, for the same caller; registering
        the model again changes nothing.
        """
        with self._errors(), self._transaction() as conn:
            user = self._caller(conn, token)
            model = body if isinstance(body, QueryModel) else validate_model(body)
            now = times.now()
            for llm in {m.name: m for m in model.members}.values():
                _store_llm(conn, llm, user, now)
            inserted = conn.execute(
                """
                INSERT INTO query_models (name, training_table_name, body, weight, weight_type,
                    members, created, user_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (name) DO NOTHING""",
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
            ).rowcount
            if inserted:
                conn.executemany(
                    "INSERT INTO query_model_members (model, position, member) VALUES (?, ?, ?)",
                    [(model.name, i, m.name) for i, m in enumerate(model.members)],
                )
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
        with self._errors(), self._transaction(write=False) as conn:
            with_metadata = _flag("/metadata", metadata)
            if with_metadata:
                user = self._me(conn, me, token)
                window = usage.Window.of(start, end)
            else:
                self._caller(conn, token)
            if not is_name(name):
                raise ValidationError.one("/name", NOT_A_MODEL_NAME)
            row = conn.execute(
                "SELECT training_table_name, weight, created, user_id FROM query_models"
                " WHERE name = ?",
                [name],
            ).fetchone()
            if row is None:
                raise NotFoundError(name)
            members = []
            for member, body, table in conn.execute(
                """
                SELECT q.name, q.body, q.training_table_name
                FROM query_model_members m JOIN query_llms q ON q.name = m.member
                WHERE m.model = ? ORDER BY m.position""",
                [name],
            ):
                members.append(_llm_body(member, body, table))
            result = model_body(name, row[0], members, json.loads(row[1]))
            if with_metadata:
                result["user_id"] = row[3]
                result["created"] = times.render(row[2])
                result.update(usage.totals(conn, name, user, window, usage.MODELS))
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
        with self._errors(), self._transaction(write=False) as conn:
            user = self._me(conn, me, token)
            page = usage.Page.of(count, offset, sort, start, end)
            return usage.ranked_names(conn, page, user, usage.MODELS)

    def count_models(self, me: bool = False, token: str | None = None) -> int:
        """How many Query Models are registered; with ``me``: as ``list_models(me=True)``."""
        with self._errors(), self._transaction(write=False) as conn:
            return usage.count_names(conn, self._me(conn, me, token), usage.MODELS)

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
        with self._errors(), self._transaction() as conn:
            user = self._caller(conn, token)
            return usage.record_many(conn, [event], user, self._known_names, batch=False)

    def record_usage_many(
        self, events: Iterable[Mapping[str, Any]], token: str | None = None
    ) -> int:
        """Record a batch all-or-nothing; returns how many events were new.

        ``events`` may be any iterable, a generator included: it is read once,
        in chunks, validated and staged in a temporary table of this connection
        before the write lock is taken, so a long or slow input never blocks
        other writers; then one short transaction moves the events in (see
        ``last_lock_seconds``). An error names the event's index.
        """
        if self.readonly:
            raise StorageError(f"{self.path} is open read-only")
        with self._errors():
            with self._transaction(write=False) as conn:
                user = self._caller(conn, token)
            with usage.staging(self._conn):
                staged = usage.stage(self._conn, events, user, self._known_names)
                if not staged:
                    self.last_lock_seconds = 0.0
                    return 0
                with self._transaction() as conn:
                    locked = time.monotonic()
                    written = usage.commit_stage(conn, staged)
                self.last_lock_seconds = time.monotonic() - locked
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
        with self._errors(), self._transaction(write=False) as conn:
            user = self._me(conn, me, token)
            query = Series.of(start, end, bucket, group_by, names, query_model)
            return usage_series.series(conn, query, user)

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


def _store_llm(conn: sqlite3.Connection, llm: QueryLlm, user: str | None, now: int) -> None:
    """Insert a Query LLM unless its name is there already (first registration wins)."""
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
            now,
            user,
        ],
    )


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
