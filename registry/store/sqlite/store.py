"""A registry in one SQLite file: opening, migrating, transactions and errors (the SQL of a
transaction: `registry.store.sqlite.tx`).

Every write is one ``BEGIN IMMEDIATE`` transaction: it takes the write lock
up front, so it waits (up to the busy timeout) for other writers instead of
failing half-way, and either all of it is committed or none.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar, cast

from sqlite_utils import Database, Migrations

from registry.errors import (
    NoRegistryError,
    NotARegistryError,
    RegistryError,
    SchemaTooNewError,
    StorageBusyError,
    StorageError,
    StorageFullError,
)
from registry.store import migrations_folder
from registry.store.sqlite.tx import SqliteTx

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0
# SQLite's header field for "which application's file is this": "QLLM" in ASCII.
# Set on every registry, checked before anything is written to a file.
APPLICATION_ID = 0x514C4C4D


@functools.cache
def migration_set() -> Migrations:
    """The SQLite migration set (``migrations.py`` of `registry.store.migrations_folder`)."""
    path = migrations_folder() / "migrations.py"
    spec = importlib.util.spec_from_file_location("registry._migration_set", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Migrations, module.migrations)


@functools.cache
def known_migrations() -> frozenset[str]:
    """The names of the migrations this version has: all of them are pending on no file."""
    return frozenset(m.name for m in migration_set().pending(Database(memory=True)))


# What SQLite says, and what it means for the caller: (clues in the text, the kind of
# StorageError, the explanation). The kind is chosen by SQLite's error name when it
# has one (`_KINDS`), so that a caller can act on the type, not on these words.
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


def _kind(exc: sqlite3.Error) -> type[StorageError]:
    """Busy (retry later) or full (make room first) by SQLite's error name; else plain."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StorageBusyError
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR_WRITE"):
        return StorageFullError
    return StorageError


class SqliteStore:
    """A registry in one SQLite file, shared safely by many processes.

    Opens or creates the file (mode 0600) and applies pending migrations; with
    ``create=False`` a missing file is a `NoRegistryError` instead. A file that
    is another application's database is refused untouched (`NotARegistryError`).
    ``readonly=True`` opens it with SQLite's ``mode=ro``; a file whose directory
    the caller cannot write is read as it is on disk (SQLite's ``immutable=1``)
    when it has no pending write-ahead log. ``timeout`` is how long a call
    waits for another process's write lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.sums = True  # `SqliteTx.add_events` adds the spool's sums into the rollups
        self.readonly = readonly
        self.timeout = timeout
        self.create = create and not readonly
        with self.errors():
            self.conn = self._connect()
        try:
            self.db = Database(self.conn, execute_plugins=False)
            with self.errors():
                self._migrate()
        except BaseException:
            self.conn.close()
            raise

    # --- opening ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.create:
            self._create_file()
        elif not self.path.is_file():
            raise NoRegistryError(str(self.path))
        try:
            resolved = self.path.resolve()
        except RuntimeError:  # what Python 3.11 raises for a loop (later ones: OSError)
            raise StorageError(f"cannot open {self.path}: a loop of symbolic links") from None
        except OSError as exc:
            raise StorageError(f"cannot open {self.path}: {exc.strerror or exc}") from None
        uri = "file:" + urllib.parse.quote(str(resolved))
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
        # Temporary tables (a large batch's hourly sums) on disk, so memory stays flat.
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
        with self._begin(write=True) as conn:
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
        (application_id,) = self.conn.execute("PRAGMA application_id").fetchone()
        if application_id == APPLICATION_ID:
            return True
        if application_id != 0:
            raise NotARegistryError(
                str(self.path),
                f"its application_id is {application_id:#x}, a registry's is {APPLICATION_ID:#x}",
            )
        tables = {name for (name,) in self.conn.execute("SELECT name FROM sqlite_master")}
        if not tables:
            return False
        if (
            "_sqlite_migrations" in tables
            and self.conn.execute(
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
            (mode,) = self.conn.execute("PRAGMA journal_mode").fetchone()
            if mode == "wal":
                return
            try:
                self.conn.execute("PRAGMA journal_mode = WAL")
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
    def transaction(self, *, write: bool) -> Iterator[SqliteTx]:
        """One transaction, its errors as `StorageError`s: ``BEGIN IMMEDIATE`` for writes,
        a consistent snapshot for reads."""
        with self.errors(), self._begin(write=write) as conn:
            yield SqliteTx(conn)

    def run(self, work: Callable[[SqliteTx], T], *, write: bool) -> T:
        """``work(tx)`` in one transaction (SQLite's writers wait their turn: no retries)."""
        with self.transaction(write=write) as tx:
            return work(tx)

    @contextmanager
    def _begin(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        conn = self.conn
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
    def errors(self) -> Iterator[None]:
        """Turn SQLite's failures into `StorageError`s that say what to do."""
        try:
            yield
        except RegistryError:
            raise
        except sqlite3.Error as exc:
            raise _kind(exc)(self._explain(exc)) from exc

    def _explain(self, exc: sqlite3.Error) -> str:
        text = str(exc)
        for clues, explanation in _EXPLANATIONS:
            if any(clue in text for clue in clues):
                return explanation.format(path=self.path, timeout=self.timeout, text=text)
        return f"{self.path}: {text}"

    # --- closing ----------------------------------------------------------------------

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
