"""What the endpoints share in a server process: the registry, and the writer.

On a file, a `Registry` per thread: sqlite3 connections stay in the thread that made
them, and opening one is cheap. On PostgreSQL, ONE `Registry` for the process, so ONE
connection pool. The writer (`registry.http.writer`) is the one thread that commits
usage, handed validated rows.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from starlette.requests import Request

from registry.http.limits import UPLOADS
from registry.http.writer import Writer
from registry.location import is_postgres
from registry.registry import Registry


class Service:
    """What the endpoints share: the registry and the writer.

    On a file, a `Registry` per thread: sqlite3 connections stay in the thread that made
    them, and opening one is cheap. On PostgreSQL, ONE `Registry` for the process, so
    ONE connection pool: a `Registry` per thread would be a pool per thread, up to
    Starlette's 40 threads times the pool's size in connections to the server. The pool
    is thread-safe and lends each call a connection for one transaction; the writer
    borrows from it like any reader.
    """

    def __init__(self, path: str | Path, timeout: float) -> None:
        self.path = path  # a file, or a PostgreSQL URL
        self.timeout = timeout
        self.pooled = is_postgres(path)
        # A read from a local file costs less than a hop to a worker thread; a read from a
        # database server waits on the network, which must never stall the event loop.
        self.reads_inline = not self.pooled
        self._local = threading.local()
        self._shared: Registry | None = None
        self._lock = threading.Lock()
        self.writer = Writer(self.open, self.release)
        # The worker threads that validate array and JSON Lines bodies as they stream in
        # (`registry.http.ingest`): their own pool, so that slow uploads never take the
        # threads that reads and registrations run in.
        self.uploads = ThreadPoolExecutor(UPLOADS, thread_name_prefix="qllm-upload")

    def open(self) -> Registry:
        """A registry for the calling thread: its own on a file, the process's on PostgreSQL."""
        if not self.pooled:
            return Registry(self.path, timeout=self.timeout)
        with self._lock:
            if self._shared is None:
                self._shared = Registry(self.path, timeout=self.timeout)
            return self._shared

    def release(self, reg: Registry) -> None:
        """Done with ``reg``: a file's connection is closed; the shared pool stays open."""
        if reg is not self._shared:
            reg.close()

    def registry(self) -> Registry:
        """This thread's registry (on PostgreSQL, the one shared by every thread)."""
        if self._shared is not None:
            return self._shared
        reg: Registry | None = getattr(self._local, "registry", None)
        if reg is None:
            reg = self.open()
            if not self.pooled:
                self._local.registry = reg
        return reg

    def close(self) -> None:
        """Close the shared pool (after the writer has stopped: it borrows from it)."""
        self.uploads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            shared, self._shared = self._shared, None
        if shared is not None:
            shared.close()


def service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found
