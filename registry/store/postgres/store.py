"""A registry's PostgreSQL database: the pool, transactions with retries, and errors.

One `psycopg_pool.ConnectionPool` per store, opened once at start (a bad
location fails there, with libpq's reason). Every call borrows a connection
for ONE transaction and hands it back idle. Writes run at READ COMMITTED,
PostgreSQL's way for ``INSERT ... ON CONFLICT`` upserts: each statement sees
what concurrent writers committed, and unique keys make them wait for each
other rather than fail. Reads run at REPEATABLE READ, READ ONLY: one
snapshot for all the statements of a call, and never a serialization
failure. psycopg errors are mapped by class, once, in `translate`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg
import psycopg_pool
from attrs import frozen
from psycopg import IsolationLevel, errors
from psycopg.conninfo import conninfo_to_dict

from registry.errors import (
    RegistryError,
    StorageBusyError,
    StorageError,
    StorageFullError,
)
from registry.location import BadLocation, describe, postgres_url, redact
from registry.query import too_large
from registry.store.postgres import migrate
from registry.store.postgres.tx import Overtaken, Portable, PostgresTx, prepare

Connection = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")

# While the server is away, the pool warns at each failed reconnection ("error connecting
# in 'qllm'"). A library keeps quiet unless its user configures logging: without a handler
# anywhere, Python's last-resort handler would print these on the user's stderr. The
# records still propagate: `qllm serve`, which configures logging, writes them to its log.
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 5
DEFAULT_MAX_SIZE = 10
# The same refusal as SQLite's rollup checks: one message, made in registry.query.
OVERFLOW = too_large().errors[0][1]

# Errors after which the whole transaction may simply run again.
RETRYABLE: tuple[type[Exception], ...] = (
    errors.SerializationFailure,
    errors.DeadlockDetected,
    Overtaken,
)


class PostgresStore:
    """A registry in a PostgreSQL database, shared safely by many processes and machines.

    ``timeout`` (seconds) bounds the wait for a row or table lock
    (``lock_timeout``), for a connection from the pool and for connecting.
    ``statement_timeout`` (seconds, None for none) bounds one statement.
    ``retries``: how many times a transaction that hit a serialization
    failure or a deadlock runs again before `StorageBusyError`.
    ``readonly``: the server refuses every write (``default_transaction_read_only``),
    and a database with pending migrations is refused.
    """

    def __init__(
        self,
        location: str,
        *,
        readonly: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        statement_timeout: float | None = None,
        retries: int = DEFAULT_RETRIES,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        try:
            postgres_url(location)  # before libpq reads it, and may quote its password
        except BadLocation as exc:
            raise StorageError(f"not a usable PostgreSQL URL: {exc}") from None
        self.location = location
        self.where = describe(location)
        self.sums = False  # a batch is summed in SQL (`PostgresTx.add_events`)
        self.readonly = readonly
        self.timeout = timeout
        self.statement_timeout = statement_timeout
        self.retries = retries
        self.max_size = max_size
        self._db: Portable | None = None
        kwargs = self._connection_kwargs()
        self._migrate(kwargs)
        self._pool: psycopg_pool.ConnectionPool[Connection] = psycopg_pool.ConnectionPool(
            location,
            kwargs=kwargs,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=timeout,
            # While the server is down, the pool retries each lost connection with a
            # doubling pause, which after a minute's outage would leave the pool waiting
            # another minute once the server is back. Giving up after ``timeout`` ends
            # that chain; the next caller who finds the pool empty starts a new one at
            # once, so a server that is back is found within about one ``timeout``.
            reconnect_timeout=max(timeout, 1.0),
            name="qllm",
            # The temporary tables a write stages its rows in, once per connection (a
            # read-only session may not create them, and never writes).
            configure=None if readonly else prepare,
        )
        try:
            self._pool.open(wait=True, timeout=max(timeout, 1.0))
        except psycopg.Error as exc:
            self._pool.close()
            raise self._unreachable(exc) from exc

    # --- opening ----------------------------------------------------------------------

    def _connection_kwargs(self) -> dict[str, Any]:
        """Session settings sent with the startup packet: no extra round trip per connection."""
        try:
            given = conninfo_to_dict(self.location)
        except psycopg.Error as exc:
            raise StorageError(
                f"not a PostgreSQL location: {self.where}: {self._text(exc)}"
            ) from None
        settings = [f"-c lock_timeout={_ms(self.timeout)}"]
        if self.statement_timeout is not None:
            settings.append(f"-c statement_timeout={_ms(self.statement_timeout)}")
        if self.readonly:
            settings.append("-c default_transaction_read_only=on")
        options = " ".join(filter(None, [str(given.get("options") or ""), *settings]))
        kwargs: dict[str, Any] = {"autocommit": True, "options": options}
        if "application_name" not in given:
            kwargs["application_name"] = "qllm"
        if "connect_timeout" not in given:  # libpq's minimum is 2 s
            kwargs["connect_timeout"] = max(2, math.ceil(self.timeout))
        return kwargs

    def _migrate(self, kwargs: dict[str, Any]) -> None:
        """Connect once, outside the pool, so that a bad location fails with libpq's reason."""
        try:
            conn = psycopg.connect(self.location, **kwargs)
        except psycopg.Error as exc:
            raise self._unreachable(exc) from exc
        with conn, self._errors(write=not self.readonly):
            if not self.readonly:
                migrate.migrate(conn, self.where)
            elif not migrate.identify(conn, self.where) or migrate.pending(conn, self.where):
                raise StorageError(f"{self.where} needs migrating: open it once without readonly")

    def _text(self, exc: BaseException) -> str:
        """The first line of a psycopg error, without the location's password."""
        return redact(_text(exc), self.location)

    def _unreachable(self, exc: psycopg.Error) -> StorageError:
        """The error for a connection that could not be made: `StorageBusyError` when the
        server did not answer, or answered that it cannot take one now (starting, stopping,
        recovering, out of connection slots): the same call may succeed later. A refusal
        for good (no such database or user, a wrong password) is a plain `StorageError`.
        libpq gives no SQLSTATE for a failed connection, so its text is read: a server's
        answer carries a severity (FATAL), its absence means no server answered."""
        text = self._text(exc)
        answered = "FATAL" in text
        message = f"cannot connect to {self.where}: {text}"
        if isinstance(exc, psycopg_pool.PoolTimeout) or not answered:
            return StorageBusyError(message)
        if any(phrase in text for phrase in _NOT_NOW):
            return StorageBusyError(message)
        return StorageError(message)

    # --- transactions ------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[PostgresTx]:
        """One transaction of `Registry`: its SQL (`PostgresTx`), committed at the end.

        One attempt: a serialization failure or deadlock is a `StorageBusyError`
        (writes take rollup rows in key order, so deadlocks are rare).
        """
        with self._translated(write) as conn:
            yield PostgresTx(conn)

    @property
    def db(self) -> Portable:
        """A connection of its own in autocommit, taking SQLite's placeholders: for tools
        and tests that look at the tables, as ``Registry.db`` does on SQLite."""
        if self._db is None:
            try:
                conn = psycopg.connect(self.location, **self._connection_kwargs())
            except psycopg.Error as exc:
                raise self._unreachable(exc) from exc
            self._db = Portable(conn)
        return self._db

    def attempts(self, *, write: bool) -> Iterator[AbstractContextManager[Connection]]:
        """Transactions to run the same block in until one commits::

            for attempt in store.attempts(write=True):
                with attempt as conn:
                    ...

        A serialization failure or deadlock in an attempt rolls it back and
        the loop goes on, after a short random pause, at most ``retries``
        times; then `StorageBusyError`. Other errors end the loop as in
        `transaction`. The block must be safe to run again: it must not
        consume input it cannot read a second time.
        """
        for number in range(self.retries + 1):
            attempt = _Attempt(self, write, last=number == self.retries)
            yield attempt
            if attempt.committed:
                return
            # Jitter, so that writers who collided do not collide again in step.
            time.sleep(random.uniform(0, min(0.002 * 2**number, 0.1)))  # noqa: S311
        raise AssertionError("unreachable: the last attempt raises or commits")

    def run(self, work: Callable[[PostgresTx], T], *, write: bool) -> T:
        """``work(tx)`` in a transaction, run again after a serialization failure or deadlock."""
        for attempt in self.attempts(write=write):
            with attempt as conn:
                result = work(PostgresTx(conn))
        return result

    @contextmanager
    def _translated(self, write: bool) -> Iterator[Connection]:
        with self._errors(write=write), self._raw_transaction(write) as conn:
            yield conn

    @contextmanager
    def _raw_transaction(self, write: bool) -> Iterator[Connection]:
        if write and self.readonly:
            raise StorageError(f"{self.where} is open read-only")
        stack, conn = self._begin(write)
        with stack:
            yield conn

    def _begin(self, write: bool) -> tuple[ExitStack, Connection]:
        """A pooled connection in a new transaction.

        After a server restart, the pool's idle connections are dead; each
        fails at BEGIN, before anything was done, so another one is tried
        (the pool replaces the dead ones) until a connection works or
        ``max_size + 1`` have failed.
        """
        failures = 0
        while True:
            stack = ExitStack()
            conn: Connection | None = None
            try:
                conn = stack.enter_context(self._pool.connection(timeout=self.timeout))
                # Attributes only: psycopg puts them in the BEGIN it sends.
                conn.read_only = not write
                conn.isolation_level = (
                    IsolationLevel.READ_COMMITTED if write else IsolationLevel.REPEATABLE_READ
                )
                stack.enter_context(conn.transaction())
            except psycopg.OperationalError as exc:
                stack.close()  # a broken connection goes back to the pool, which drops it
                failures += 1
                dead = conn is not None and conn.broken  # not an answer of a live server
                if isinstance(exc, psycopg_pool.PoolTimeout) or not dead:
                    raise
                if failures > self.max_size:
                    raise
                continue
            except BaseException:
                stack.close()
                raise
            assert conn is not None
            return stack, conn

    @contextmanager
    def _errors(self, *, write: bool) -> Iterator[None]:
        try:
            yield
        except RegistryError:
            raise
        except psycopg.Error as exc:
            raise translate(
                exc, self.where, write=write, timeout=self.timeout, location=self.location
            ) from exc

    # --- closing ----------------------------------------------------------------------

    def close(self) -> None:
        if self._db is not None:
            self._db.conn.close()
        self._pool.close()

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
        return f"<PostgresStore {self.where!r}{' readonly' if self.readonly else ''}>"


class _Attempt:
    """One transaction of `PostgresStore.attempts`; swallows a retryable error unless last."""

    def __init__(self, store: PostgresStore, write: bool, *, last: bool) -> None:
        self._store = store
        self._write = write
        self._last = last
        self._inner: AbstractContextManager[Connection] | None = None
        self.committed = False

    def __enter__(self) -> Connection:
        self._inner = self._store._raw_transaction(self._write)
        try:
            return self._inner.__enter__()
        except psycopg.Error as exc:
            raise self._translate(exc) from exc

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        assert self._inner is not None
        try:
            self._inner.__exit__(exc_type, exc, tb)  # COMMIT, or ROLLBACK on exc
        except psycopg.Error as failure:  # COMMIT failed (or the rollback of exc did)
            exc = failure
        if exc is None:
            self.committed = True
            return False
        if isinstance(exc, RETRYABLE) and not self._last:
            return True  # swallowed: the loop runs the block again
        if isinstance(exc, psycopg.Error):
            raise self._translate(exc, retried=self._store.retries) from exc
        return False  # any other exception goes on as it is

    def _translate(self, exc: psycopg.Error, retried: int = 0) -> RegistryError:
        store = self._store
        return translate(
            exc,
            store.where,
            write=self._write,
            timeout=store.timeout,
            retried=retried,
            location=store.location,
        )


# --- errors --------------------------------------------------------------------------------


def translate(
    exc: psycopg.Error,
    where: str,
    *,
    write: bool,
    timeout: float,
    retried: int = 0,
    location: str = "",
) -> RegistryError:
    """The registry's error for a psycopg error: chosen by class, along its MRO.

    The most specific class of the table wins, as exception handlers are
    found: `errors.DiskFull` before its parent `psycopg.OperationalError`.
    The text taken from psycopg never carries ``location``'s password.
    """
    failure = _Failure(exc, where, write, timeout, retried, location)
    for cls in type(exc).__mro__:
        explain = _MEANINGS.get(cls)
        if explain is not None:
            return explain(failure)
    return StorageError(f"{where}: {failure.text}")


@frozen
class _Failure:
    exc: psycopg.Error
    where: str
    write: bool
    timeout: float
    retried: int
    location: str

    @property
    def text(self) -> str:
        return redact(_text(self.exc), self.location)


def _conflicts(f: _Failure) -> RegistryError:
    tries = f"after {f.retried + 1} attempts" if f.retried else "at once"
    return StorageBusyError(
        f"{f.where} is busy: the transaction kept conflicting with concurrent writers"
        f" ({f.text}); gave up {tries}, try again"
    )


def _overflow(f: _Failure) -> RegistryError:
    if f.write:  # only the rollups' sums can pass 2**63 in a write: the input's fault
        return too_large()
    return StorageError(f"{f.where}: the totals asked for exceed 64-bit integers")


_MEANINGS: dict[type[BaseException], Callable[[_Failure], RegistryError]] = {
    errors.SerializationFailure: _conflicts,
    errors.DeadlockDetected: _conflicts,
    errors.LockNotAvailable: lambda f: StorageBusyError(
        f"{f.where} is locked by another session (gave up after {f.timeout:g} s)"
    ),
    errors.QueryCanceled: lambda f: StorageBusyError(
        f"{f.where}: the statement was cancelled ({f.text}); try again, or with a longer timeout"
    ),
    errors.DiskFull: lambda f: StorageFullError(f"cannot write {f.where}: {f.text}"),
    errors.NumericValueOutOfRange: _overflow,
    errors.ReadOnlySqlTransaction: lambda f: StorageError(f"{f.where} cannot be written: {f.text}"),
    # Every connection in use, or none can be made (the server is down or restarting):
    # the pool cannot tell which, and both may pass.
    psycopg_pool.PoolTimeout: lambda f: StorageBusyError(
        f"{f.where} is busy or unreachable: no connection within {f.timeout:g} s"
    ),
    # Connection lost, server shutting down or restarting, too many
    # connections, out of memory: the same call may succeed later.
    psycopg.OperationalError: lambda f: StorageBusyError(f"{f.where} is unavailable: {f.text}"),
}


# What a server answers a connection it cannot take now (SQLSTATE 57P01, 57P03, 53300):
# its own words, in English (PostgreSQL's default lc_messages).
_NOT_NOW = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "too many clients already",
    "remaining connection slots are reserved",
)


def _text(exc: BaseException) -> str:
    """The first line of the error: the server's primary message, without the SQL context."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _ms(seconds: float) -> int:
    """Seconds as the whole milliseconds a PostgreSQL setting takes (0 would mean no limit)."""
    return max(1, round(seconds * 1000))
