"""``POST /usage`` bodies in, validated as they stream, never on the event loop.

The event loop only moves bytes: it hands the body's pieces, as they arrive, through a
bounded `Feed` to a worker thread, which frames them (`registry.framing`: JSON Lines
lines or array elements, each bounded), reads each (`registry.events.EventLines`) and
validates them (`Registry.prepare_usage`) while the rest is still on its way. The
writer thread is then handed only the resulting `Spool` of validated rows, so the
write lock is held for inserts and rollups alone, and memory stays that of a few
pieces whatever the body's size.

A body of one event object is read whole (it is at most `EVENT_TEXT`) and read and
validated in Starlette's thread pool, as any other short call.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.concurrency import run_in_threadpool

from registry import framing
from registry.errors import ValidationError
from registry.events import EventLines, read_body
from registry.http.limits import EVENT_TEXT, FEED_PIECES
from registry.http.wire import parse_json
from registry.store.spool import Spool

# The worker's task: the events (lazily read), and whether they are a batch -> a Spool.
Prepare = Callable[[Iterable[Any], bool], Spool]


class Abandoned(Exception):
    """The request ended before its body did (the client went away, or took too long):
    the worker stops where it is, and what it prepared is closed."""


_END = object()
_ABANDON = object()


class Feed:
    """Body pieces from the event loop to one worker thread, at most `FEED_PIECES` of them
    in flight: when the worker falls behind, the event loop stops reading the body (and
    TCP tells the client to wait), so no body is ever buffered whole."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._pieces: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._room = asyncio.Semaphore(FEED_PIECES)
        self.stopped = False  # the worker stopped reading: it is done, or failed early

    async def put(self, piece: bytes) -> bool:
        """Hand ``piece`` on, waiting while the worker is `FEED_PIECES` behind; False once
        the worker has stopped reading (nothing more is wanted)."""
        if not self.stopped:
            await self._room.acquire()
        if self.stopped:
            return False
        self._pieces.put(piece)
        return True

    def end(self) -> None:
        self._pieces.put(_END)

    def abandon(self) -> None:
        self._pieces.put(_ABANDON)

    def __iter__(self) -> Iterator[bytes]:
        """The pieces, in the worker thread, as they come; `Abandoned` if the request ended."""
        while True:
            piece = self._pieces.get()
            if piece is _END:
                return
            if piece is _ABANDON:
                raise Abandoned
            self._call(self._room.release)
            yield piece

    def run(self, work: Callable[[Iterator[bytes]], Spool]) -> Spool:
        """``work`` over the pieces, in the worker thread."""
        try:
            return work(iter(self))
        finally:
            self._call(self._stop)

    def _stop(self) -> None:
        self.stopped = True
        self._room.release()  # wakes a `put` waiting for room

    def _call(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: the server stopped
            self._loop.call_soon_threadsafe(callback)


class Upload:
    """One ``POST /usage`` body: JSON Lines (``lines``) or JSON; `prepare` turns it into a
    `Spool`, and `where` names an event of it as the client counts (``/17``: line 17 of
    JSON Lines; ``/3``: element 3 of an array)."""

    def __init__(self, *, lines: bool) -> None:
        self.lines = lines
        self._events: EventLines | None = None

    def where(self, index: int | None) -> str:
        if index is None:
            return ""
        if self.lines and self._events is not None:
            return f"/{self._events.line_of(index)}"
        return f"/{index}"

    async def prepare(
        self,
        body: AsyncIterator[bytes],
        prepare: Prepare,
        uploads: ThreadPoolExecutor,
    ) -> Spool:
        """The body's events validated into a `Spool` by ``prepare``: streamed through a
        worker of ``uploads`` for JSON Lines and arrays; a single event read whole, then
        prepared in Starlette's thread pool."""
        pieces = body.__aiter__()
        first = b""
        if not self.lines:  # JSON: an array streams; anything else is one event
            async for piece in pieces:
                first += piece
                if first.lstrip(framing.WHITESPACE) or len(first) > EVENT_TEXT:
                    break
            if first.lstrip(framing.WHITESPACE)[:1] != b"[":
                data = await _whole(first, pieces)
                return await run_in_threadpool(_one, data, prepare)
        try:
            return await self._stream(first, pieces, prepare, uploads)
        except ValidationError as exc:
            raise exc.located(self.where) from None

    async def _stream(
        self,
        first: bytes,
        pieces: AsyncIterator[bytes],
        prepare: Prepare,
        uploads: ThreadPoolExecutor,
    ) -> Spool:
        feed = Feed()

        def work(arrived: Iterator[bytes]) -> Spool:
            if self.lines:
                self._events = EventLines(framing.lines(arrived, EVENT_TEXT))
                return prepare(self._events, True)
            return prepare(EventLines(framing.elements(arrived, EVENT_TEXT)), True)

        worker = asyncio.get_running_loop().run_in_executor(uploads, feed.run, work)
        try:
            wanted = await feed.put(first) if first else True
            async for piece in pieces:
                if wanted:
                    wanted = await feed.put(piece)
                # else the worker has its answer already (enough problems found): the rest
                # of the body is read and dropped, so that the client gets to read it.
            feed.end()
        except BaseException:
            feed.abandon()  # the worker raises `Abandoned` at its next piece
            worker.cancel()  # and if it has not started, it never will
            raise
        return await worker


async def _whole(first: bytes, pieces: AsyncIterator[bytes]) -> bytes | None:
    """A body of one event, whole; None when it is over `EVENT_TEXT` (the rest is read
    and dropped, so that the client gets to read the answer)."""
    data = bytearray(first)
    async for piece in pieces:
        if len(data) <= EVENT_TEXT:
            data += piece
    return bytes(data) if len(data) <= EVENT_TEXT else None


def _one(data: bytes | None, prepare: Prepare) -> Spool:
    """A JSON body that is not an array: one event (or, read as JSON, what it turns out to
    be), validated as `record_usage` validates one."""
    if data is None:
        raise ValidationError.one(
            "",
            f"is over the limit of {EVENT_TEXT // framing.MiB} MiB for one usage event"
            " (send many as a JSON array or JSON Lines)",
        )
    typed = read_body(data)  # as JSON Lines are read: typed where it can be, else JSON
    body = parse_json(data) if typed is None else typed
    if isinstance(body, list):
        return prepare(body, True)
    if isinstance(body, dict) or typed is not None:
        return prepare([body], False)
    raise ValidationError.one("", "must be a usage event object or an array of them")
