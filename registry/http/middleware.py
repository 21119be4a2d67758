"""Pure ASGI middleware (no `BaseHTTPMiddleware`): the body's bounds and the access log.

(The request head's bounds are the protocol's: `registry.http.server`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.framing import MiB
from registry.http.limits import (
    BODY_LIMIT,
    HEAD_LIMIT,
    LIMITS,
    LINE_LIMIT,
    MIN_BODY_RATE,
    request_timeout,
)
from registry.http.wire import error_response, log, printable

CLOSE = (b"connection", b"close")


def _has_body(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return value.strip() not in (b"0", b"")
        if key == b"transfer-encoding":
            return True
    return False


class Body:
    """Each request body held to its route's size and to a minimum rate of arrival.

    - Size: 413 for a body over its route's limit, by Content-Length before reading,
      else counted as it arrives.
    - Time: reading the body may wait `request_timeout` seconds, plus one second for
      each `MIN_BODY_RATE` bytes received; only the time spent waiting for the client
      counts (not the time the server takes between two reads). Past it: 408.
    - A response sent before its request's body was read to the end (an error found
      early, 408, 413) says ``Connection: close``: the rest of that body is never read,
      so the connection cannot carry another request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.timeout = request_timeout()
        self.too_slow = (
            f"the request body did not arrive in time: {self.timeout:g} s,"
            f" then at least {MIN_BODY_RATE // 1024} KiB/s"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = LIMITS.get(scope["path"], BODY_LIMIT)
        too_large = f"the body is over the limit of {limit // MiB} MiB for this route"
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                refused = error_response(413, too_large, headers={"Connection": "close"})
                await refused(scope, receive, send)
                return
        loop = asyncio.get_running_loop()
        received = 0
        waited = 0.0
        done = not _has_body(scope)

        async def limited() -> Message:
            nonlocal received, waited, done
            allowed = self.timeout + received / MIN_BODY_RATE - waited
            began = loop.time()
            try:
                async with asyncio.timeout(max(allowed, 0.0)):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, self.too_slow) from None
            finally:
                waited += loop.time() - began
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large)
                done = not message.get("more_body", False)
            return message

        async def closing_early(message: Message) -> None:
            if message["type"] == "http.response.start" and not done:
                message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        await self.app(scope, limited, closing_early)


class Head:
    """A request line over `LINE_LIMIT` is a 414, a head over `HEAD_LIMIT` a 431. (h11
    holds back an incomplete head past `HEAD_LIMIT`, which the protocol answers the same
    way; one that arrives whole in one read is measured here.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            line = len(scope["method"]) + len(scope["raw_path"]) + len(scope["query_string"]) + 12
            head = line + sum(len(key) + len(value) + 4 for key, value in scope["headers"])
            refused = too_long(line, head)
            if refused is not None:
                await error_response(*refused)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def too_long(line: int, head: int) -> tuple[int, str] | None:
    """The status and message for a request line and head of these sizes, if over."""
    if line > LINE_LIMIT:
        return 414, f"the request line (the URL) is over {LINE_LIMIT // 1024} KiB"
    if head > HEAD_LIMIT:
        return 431, f"the request head is over {HEAD_LIMIT // 1024} KiB"
    return None


STOPPED = error_response(
    503,
    "the server stopped before answering; retry (with the same request_id, an event is"
    " counted once)",
    headers={"Connection": "close"},
)


class AccessLog:
    """One line per request: method, path (never the query: it may carry secrets), status,
    milliseconds. Every value is escaped (`printable`), so no request can write a line of
    its own or reach the terminal with a control sequence. A request the server stopped
    before answering (cancelled at shutdown) says so instead of a status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        outcome = "500"
        try:
            await self.app(scope, receive, watched)
            outcome = str(status)
        except asyncio.CancelledError:
            # The server is stopping and gave up waiting for this request (`qllm serve
            # --shutdown-timeout`). Unanswered, it gets a 503 that says so; re-raised,
            # uvicorn would log a traceback and answer a plain-text 500.
            if status is not None:
                outcome = f"{status}, cancelled before its answer was complete"
                raise
            outcome = "503, cancelled: the server stopped before answering"
            with contextlib.suppress(Exception):
                await STOPPED(scope, receive, send)
        except BaseException:
            outcome = str(status or 500)
            raise
        finally:
            ms = (time.perf_counter() - started) * 1000
            path = printable(scope["path"])
            log.info("%s %s %s %.1fms", printable(scope["method"]), path, outcome, ms)
