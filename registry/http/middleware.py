"""Pure ASGI middleware (no `BaseHTTPMiddleware`): body limits and the access log."""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.http.wire import error_response, log

MiB = 1024 * 1024
BODY_LIMIT = 1 * MiB  # a Query LLM or Query Model body
USAGE_LIMIT = 256 * MiB  # POST /usage


class BodyLimit:
    """413 for a body over its route's limit: by Content-Length before reading, else counted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = USAGE_LIMIT if scope["path"] == "/usage" else BODY_LIMIT
        too_large = f"the body is over the limit of {limit // MiB} MiB for this route"
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                await error_response(413, too_large)(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large)
            return message

        await self.app(scope, limited, send)


class AccessLog:
    """One line per request: method, path (never the query: it may carry secrets), status, ms."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            ms = (time.perf_counter() - started) * 1000
            log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, ms)
