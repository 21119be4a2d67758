"""Group commit for ``POST /usage``: one writer thread, one transaction per group.

SQLite takes one write at a time, and each commit is synced to disk. So
instead of letting request handlers fight for the write lock and pay one sync
each, they queue their events here; the one writer thread owns the write
connection, drains what is waiting, and records it with
`Registry.record_usage_groups`: one ``BEGIN IMMEDIATE``, one SAVEPOINT per
request (a bad request rolls back alone), one ``COMMIT``. A request's future
is settled only after that commit, so a 200 always means "on disk".
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from registry.errors import RegistryError
from registry.http.wire import log
from registry.registry import Registry
from registry.store.spool import Spool

MAX_GROUP = 256  # requests per commit: bounds how long one group holds the lock
# A job of more rows than this commits alone, after the small jobs queued with it: its
# commit holds the write lock for a while (seconds for 750,000 events), and the small
# ones, already waiting, need not wait for it too.
LARGE = 10_000
SLOW_COMMIT = 1.0  # seconds: a commit that held the write lock longer is logged

Outcome = int | BaseException
_STOP = object()


class _Job:
    __slots__ = ("future", "loop", "spool")

    def __init__(self, spool: Spool, loop: asyncio.AbstractEventLoop) -> None:
        self.spool = spool
        self.loop = loop
        self.future: asyncio.Future[int] = loop.create_future()


def _settle(future: asyncio.Future[int], outcome: Outcome) -> None:
    if future.cancelled():  # the client went away; the commit stands regardless
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class Writer:
    """The one writer thread of a server process. ``open`` makes its registry in that thread;
    ``release`` is handed it when the thread stops (it may be shared, and stay open)."""

    def __init__(
        self,
        open_registry: Callable[[], Registry],
        release: Callable[[Registry], None],
    ) -> None:
        self._open = open_registry
        self._release = release
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="qllm-writer", daemon=True)
        self.groups = 0  # commits made, and requests they carried: for the bench's figures
        self.requests = 0

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    async def record(self, spool: Spool) -> int:
        """Queue one request's validated events (`Registry.prepare_usage`); the number
        written, once committed."""
        job = _Job(spool, asyncio.get_running_loop())
        self._jobs.put(job)
        # Shielded: a client that disconnects does not cancel a write already queued.
        return await asyncio.shield(job.future)

    def close(self) -> None:
        """Finish every queued job (the sentinel queues behind them), then stop."""
        if self._thread.is_alive():
            self._jobs.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        try:
            registry = self._open()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while (job := self._jobs.get()) is not _STOP:
                group = [job]
                stopping = False
                while len(group) < MAX_GROUP:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stopping = True
                        break
                    group.append(more)
                small = [j for j in group if j.spool.count <= LARGE]
                if small:
                    self._commit(registry, small)
                for large in (j for j in group if j.spool.count > LARGE):
                    self._commit(registry, [large])
                if stopping:
                    break
        finally:
            self._release(registry)

    def _commit(self, registry: Registry, group: list[_Job]) -> None:
        outcomes: list[Outcome]
        began = time.monotonic()
        try:
            outcomes = list(registry.record_usage_groups([j.spool for j in group]))
        except RegistryError as exc:
            # BEGIN or COMMIT failed: no job was written; or, when the connection to a
            # PostgreSQL server broke during the COMMIT, no one can know, and a client's
            # retry with the same request_id settles it.
            outcomes = [exc] * len(group)
        except Exception as exc:  # a defect: every job fails, the server goes on
            outcomes = [exc] * len(group)
        held = time.monotonic() - began
        if held > SLOW_COMMIT:  # every other writer waited this long: say so
            events = sum(job.spool.count for job in group)
            log.info(
                "(writer) %d events of %d requests in one commit: the write lock held %.3f s",
                events,
                len(group),
                held,
            )
        self.groups += 1
        self.requests += len(group)
        for job, outcome in zip(group, outcomes, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, outcome)
