"""The HTTP API (``qllm serve``): a list of routes and a table of error handlers.

Endpoints only translate: query fields and body in, one `Registry` call, a
JSON response out; the registry's own validation and errors do all the
checking. Reads and registrations are plain ``def`` endpoints (Starlette runs
them in its thread pool), each thread with its own `Registry` connection on a file,
one `Registry` and its connection pool shared by all on PostgreSQL, except
``GET`` of one name, answered on the event loop (it is cheaper than the hop);
``POST /usage`` is ``async`` and waits for the group-commit writer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    SchemaTooNewError,
    StorageBusyError,
    StorageError,
    StorageFullError,
    ValidationError,
)
from registry.events import EventLines, read_body
from registry.http import openapi
from registry.http.writer import Writer
from registry.location import is_postgres, location_of
from registry.query import Window
from registry.registry import DEFAULT_TIMEOUT, Registry
from registry.render import dashboard
from registry.series import Series

log = logging.getLogger("qllm.http")

MiB = 1024 * 1024
BODY_LIMIT = 1 * MiB  # a Query LLM or Query Model body
USAGE_LIMIT = 256 * MiB  # POST /usage
SPOOL_IN_MEMORY = 8 * MiB  # a JSON Lines upload past this goes to a temporary file
RETRY_AFTER = "1"  # seconds, on 503: the lock is usually free again soon
JSON = "application/json"
NDJSON = "application/x-ndjson"

# --- JSON out ----------------------------------------------------------------------------


def _decimal(value: Decimal) -> str:
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


class _Inexact(Exception):
    """A `Decimal` that no int or float is written as: render it the slow way."""


def _plain(value: Any) -> Any:
    """``value`` with each `Decimal` as the int or float that JSON writes as its exact text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        text = _decimal(value)
        if "." not in text:
            return int(text)
        number = float(text)
        if repr(number) != text:  # more digits than a float keeps, or an exponent form
            raise _Inexact
        return number
    return value


def _render_exact(value: Any) -> str:
    if isinstance(value, dict):
        items = (
            json.dumps(k, ensure_ascii=False) + ":" + _render_exact(value[k]) for k in sorted(value)
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_render_exact(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return _decimal(value)
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def render(value: Any) -> str:
    """Compact JSON, keys in canonical (sorted) order, a `Decimal` written exactly.

    One C-encoder pass when every cost is written alike by a float (``0.125``): profiled,
    one `json.dumps` per value was half the time of a ``GET`` with metadata. Otherwise the
    value-by-value path, which writes any `Decimal` as its exact text."""
    try:
        return _ENCODER.encode(_plain(value))
    except _Inexact:
        return _render_exact(value)


class JsonResponse(Response):
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return render(content).encode()


# --- errors: one table from error class to status ------------------------------------------

STATUS: dict[type[Exception], int] = {
    ValidationError: 400,
    ConflictError: 409,
    AuthenticationError: 401,
    AuthorizationError: 401,
    NotFoundError: 404,
    StorageError: 503,
    SchemaTooNewError: 503,
    ClientDisconnect: 400,
}
# Told apart on the wire by `error.type` (one status covers both); `registry.Client` reads it.
KIND = {AuthenticationError: "authentication_error", AuthorizationError: "authorization_error"}


def error_response(
    status: int,
    message: str,
    errors: list[tuple[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    kind: str | None = None,
    **extra: Any,
) -> JsonResponse:
    """The body every error has: ObjectiveAI's ``code``/``message``, OpenAI's ``error``."""
    inner: dict[str, Any] = {"code": status, "message": message}
    if kind:
        inner["type"] = kind
    inner.update(extra)
    content: dict[str, Any] = {"code": status, "message": message, "error": inner}
    if errors is not None:
        content["errors"] = [{"path": path or "/", "message": text} for path, text in errors]
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status in (409, 507):  # retrying cannot help: tell OpenAI-style clients not to
        headers["x-should-retry"] = "false"
    return JsonResponse(content, status_code=status, headers=headers)


def _storage_status(exc: StorageError) -> tuple[int, dict[str, str]]:
    """503 with Retry-After when busy; 507 for a full disk or database: by type, any backend."""
    if isinstance(exc, StorageBusyError):
        return 503, {"Retry-After": RETRY_AFTER}
    if isinstance(exc, StorageFullError):
        return 507, {}
    return 503, {"x-should-retry": "false"}


async def registry_error(request: Request, exc: Exception) -> Response:
    status = next(STATUS[c] for c in type(exc).__mro__ if c in STATUS)
    headers: dict[str, str] = {}
    if isinstance(exc, StorageError):
        status, headers = _storage_status(exc)
    if isinstance(exc, ValidationError):
        return error_response(status, "\n".join(exc.lines()), exc.errors, headers)
    kind = next((KIND[c] for c in type(exc).__mro__ if c in KIND), None)
    message = "the client went away" if isinstance(exc, ClientDisconnect) else str(exc)
    return error_response(status, message, headers=headers, kind=kind)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, message, headers=dict(exc.headers or {}))


async def defect(request: Request, exc: Exception) -> Response:
    log.error("defect answering %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error: this is a defect of the registry")


HANDLERS: dict[Any, Callable[[Request, Exception], Any]] = {
    **dict.fromkeys(STATUS, registry_error),
    HTTPException: http_error,
    Exception: defect,
}

# --- request in ---------------------------------------------------------------------------


def bearer(request: Request) -> str | None:
    """The caller's token: ``Bearer <token>``; no header or an empty credential is none."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError("the Authorization header must be: Bearer <token>")
    return credential.strip() or None


class Query:
    """Query fields as HTTP.md reads them: empty means absent, problems collected."""

    def __init__(self, request: Request) -> None:
        self.fields = request.query_params
        self.problems: list[tuple[str, str]] = []

    def flag(self, key: str) -> bool:
        value = self.fields.get(key, "")
        if value in ("", "false"):
            return False
        if value == "true":
            return True
        self.problems.append((f"/{key}", "must be true or false"))
        return False

    def integer(self, key: str, default: int) -> int | str:
        """A decimal integer; anything else is passed on as text for the library to refuse."""
        value = self.fields.get(key, "")
        if value == "":
            return default
        digits = value[1:] if value.startswith("-") else value
        if digits.isascii() and digits.isdigit() and len(digits) < 40:
            return int(value)
        return value

    def text(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, "") or default

    def time(self, key: str) -> str | None:
        """An RFC 3339 time, or None; a space (a ``+`` decoded by the URL rules) is refused."""
        value = self.fields.get(key, "")
        if " " in value:
            self.problems.append(
                (
                    f"/{key}",
                    "contains a space: a '+' in a URL query means a space,"
                    " so write a UTC offset's '+' as %2B",
                )
            )
            return None
        return value or None

    def check(self, start: str | None = None, end: str | None = None) -> None:
        """Raise every problem found; with a window, the library's problems with it too."""
        if not self.problems:
            return
        if start is not None or end is not None:
            try:
                Window.of(start, end)
            except ValidationError as exc:
                self.problems.extend(exc.errors)
        raise ValidationError(sorted(set(self.problems)))


def window(request: Request) -> dict[str, Any]:
    """``metadata``, ``me``, ``from``, ``to``; with metadata false the others are ignored."""
    query = Query(request)
    metadata = query.flag("metadata")
    query.check()
    if not metadata:
        return {"metadata": False}
    start, end = query.time("from"), query.time("to")
    fields: dict[str, Any] = {"metadata": True, "me": query.flag("me"), "start": start, "end": end}
    query.check(start, end)
    return fields


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def parse_json(data: bytes | str, path: str = "") -> Any:
    """JSON text; NaN and Infinity are read, so the rules refuse them at their own path."""
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise ValidationError.one(path, f"is not UTF-8 text: {exc.reason}") from None
    except RecursionError:
        raise ValidationError.one(path, "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError
        raise ValidationError.one(path, f"is not valid JSON: {exc}") from None


def _expect(request: Request, *types: str) -> None:
    if media_type(request) not in types:
        raise HTTPException(415, f"the body must be {' or '.join(types)}")


# --- the registry: a connection per thread (file) or one pool (PostgreSQL), one writer ------


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
        with self._lock:
            shared, self._shared = self._shared, None
        if shared is not None:
            shared.close()


def service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found


# --- endpoints ------------------------------------------------------------------------------


def collection(prefix: str, *, register: str, get: str, list: str, count: str) -> list[BaseRoute]:
    """The four routes of a collection (``/query_llms``...), by `Registry` method names."""

    async def register_one(request: Request) -> Response:
        _expect(request, JSON)
        token = bearer(request)
        fields = window(request)
        body = parse_json(await request.body())
        if fields["metadata"]:  # refuse a bad query before anything is written
            Window.of(fields["start"], fields["end"])
            if fields["me"] and token is None:
                raise AuthorizationError("me=true needs a token")

        def work() -> dict[str, Any]:
            reg = service(request).registry()
            name = getattr(reg, register)(body, token=token).name
            return getattr(reg, get)(name, token=token, **fields)  # type: ignore[no-any-return]

        return JsonResponse(await run_in_threadpool(work))

    # On a file, on the event loop, not in the thread pool: a read answered from the
    # rollups takes about 0.2 ms, less than the hop to a worker thread and back costs the
    # loop (profiled under wrk: the hop, not SQLite, held GET to 0.35x /health). WAL
    # readers never wait for the writer, so this does not stall the loop behind a write.
    # On PostgreSQL the read waits on the network: it goes to the thread pool.
    async def get_one(request: Request) -> Response:
        token = bearer(request)
        fields = window(request)
        name = request.path_params.get("name", "")
        shared = service(request)

        def work() -> dict[str, Any]:
            return getattr(shared.registry(), get)(name, token=token, **fields)  # type: ignore[no-any-return]

        return JsonResponse(work() if shared.reads_inline else await run_in_threadpool(work))

    def list_names(request: Request) -> Response:
        token = bearer(request)
        query = Query(request)
        start, end = query.time("from"), query.time("to")
        page = {
            "count": query.integer("count", 100),
            "offset": query.integer("offset", 0),
            "sort": query.text("sort", "created"),
            "me": query.flag("me"),
            "start": start,
            "end": end,
        }
        query.check(start, end)
        reg = service(request).registry()
        return JsonResponse({"data": getattr(reg, list)(token=token, **page)})

    def count_names(request: Request) -> Response:
        token = bearer(request)
        query = Query(request)
        me = query.flag("me")
        query.check()
        return JsonResponse({"count": getattr(service(request).registry(), count)(me, token)})

    return [
        Route(f"{prefix}/count", count_names, methods=["GET"]),  # before {name}: first match wins
        Route(f"{prefix}/{{name}}", get_one, methods=["GET"]),
        Route(f"{prefix}/", get_one, methods=["GET"]),  # an empty name: 400 at /name, not a 404
        Route(prefix, register_one, methods=["POST"]),
        Route(prefix, list_names, methods=["GET"]),
    ]


async def _spool(request: Request) -> IO[bytes]:
    """The body in a temporary file (in memory while small): never whole in memory."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned
    try:
        async for chunk in request.stream():
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


async def record_usage(request: Request) -> Response:
    """One event object, a JSON array of events, or JSON Lines: one group-committed job.

    The body is read, parsed and validated in a worker thread (`Registry.prepare_usage`),
    outside any transaction; the writer is handed only the validated rows."""
    token = bearer(request)
    _expect(request, JSON, NDJSON)
    svc = service(request)
    if media_type(request) == NDJSON:
        with await _spool(request) as spool:
            lines = EventLines(spool)
            try:
                prepared = await run_in_threadpool(
                    lambda: svc.registry().prepare_usage(lines, token)
                )
            except NotFoundError as exc:
                where = f"/{lines.line_of(exc.index)}" if exc.index is not None else ""
                return _unregistered(exc, where)
            except ValidationError as exc:
                raise exc.located(lambda index: f"/{lines.line_of(index)}") from None
    else:
        data = await request.body()
        typed = read_body(data)  # as JSON Lines are read: typed where it can be, else JSON
        body = parse_json(data) if typed is None else typed
        if isinstance(body, list):
            events, batch = body, True
        elif isinstance(body, dict) or typed is not None:
            events, batch = [body], False
        else:
            raise ValidationError.one("", "must be a usage event object or an array of them")
        try:
            prepared = await run_in_threadpool(
                lambda: svc.registry().prepare_usage(events, token, batch=batch)
            )
        except NotFoundError as exc:
            return _unregistered(exc, f"/{exc.index}" if exc.index is not None else "")
    with prepared:
        written = await svc.writer.record(prepared)
    return JsonResponse({"written": written})


def _lists(query: Query, key: str, *, commas: bool = False) -> list[str] | None:
    """A list field in the forms clients send: ``key=a&key=b``, ``key[]=a`` and, where
    ``commas``, ``key=a,b``; None when absent (empty values are dropped, as elsewhere)."""
    values = [*query.fields.getlist(key), *query.fields.getlist(f"{key}[]")]
    if commas:
        values = [part.strip() for value in values for part in value.split(",")]
    values = [value for value in values if value]
    return values or None


def usage_series(request: Request) -> Response:
    """``GET /usage``: usage per bucket and group (USAGE_SERIES.md); the library checks it."""
    token = bearer(request)
    query = Query(request)
    start, end = query.time("from"), query.time("to")
    fields: dict[str, Any] = {
        "bucket": query.text("bucket", "day"),
        "group_by": _lists(query, "group_by", commas=True) or (),
        "names": _lists(query, "name"),
        "query_model": query.text("query_model"),
        "me": query.flag("me"),
    }
    if query.problems:  # a bad time field: list the library's problems with the rest too
        seen = {path for path, _ in query.problems}
        try:
            placeholder = "1970-01-01T00:00:00Z" if "/from" in seen else None  # refused already
            Series.of(start or placeholder, end, **fields_of_query(fields))
        except ValidationError as exc:
            query.problems.extend(e for e in exc.errors if e[0] not in seen)
        query.check()
    reg = service(request).registry()
    # An absent `from` goes through too: the library says it is required.
    window: dict[str, Any] = {"start": start, "end": end}
    return JsonResponse({"data": reg.usage_series(**window, token=token, **fields)})


def fields_of_query(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields `Series.of` checks (``me`` is the registry's: it needs the caller)."""
    return {k: v for k, v in fields.items() if k != "me"}


# The dashboard runs only its own inline script and style, and loads nothing else.
DASHBOARD_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline';"
        " img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def wants_json(request: Request) -> bool:
    """``?format=json``, or an Accept header preferring JSON to HTML (browsers put HTML first)."""
    chosen = request.query_params.get("format", "")
    if chosen:
        return chosen == "json"
    accept = [
        part.partition(";")[0].strip().lower()
        for part in request.headers.get("accept", "").split(",")
    ]
    if "application/json" not in accept:
        return False
    return "text/html" not in accept or accept.index("application/json") < accept.index("text/html")


def home(request: Request) -> Response:
    """``GET /``: the dashboard, as an anonymous caller sees the registry; or the same as JSON."""
    reg = service(request).registry()
    if wants_json(request):
        return JsonResponse(dashboard.data(reg, request.query_params), headers=DASHBOARD_HEADERS)
    return HTMLResponse(dashboard.page(reg, request.query_params), headers=DASHBOARD_HEADERS)


def _unregistered(exc: NotFoundError, where: str) -> Response:
    """An unknown name inside a body is the body's fault: 400 at its path (404 is for URLs)."""
    path, message = f"{where}/name", f"no Query LLM named {exc.name} is registered"
    return error_response(
        400, f"{path}: {message}", [(path, message)], kind="not_found_error", name=exc.name
    )


async def health(request: Request) -> Response:
    return JsonResponse({"status": "ok"})


async def openapi_json(request: Request) -> Response:
    return JsonResponse(request.app.state.openapi)


# --- pure ASGI middleware -------------------------------------------------------------------


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


# --- the app --------------------------------------------------------------------------------

ROUTES: list[BaseRoute] = [
    *collection("/query_llms", register="register", get="get", list="list", count="count"),
    *collection(
        "/query_models",
        register="register_model",
        get="get_model",
        list="list_models",
        count="count_models",
    ),
    Route("/usage", record_usage, methods=["POST"]),
    Route("/usage", usage_series, methods=["GET"]),
    Route("/", home, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
]


def create_app(path: str | os.PathLike[str] | None = None, timeout: float | None = None) -> ASGIApp:
    """The ASGI app on the registry at ``path`` (default: ``$QLLM_DB`` or the user's file)."""
    where = location_of(path)
    if timeout is None:
        timeout = float(os.environ.get("QLLM_TIMEOUT") or DEFAULT_TIMEOUT)
    svc = Service(where, timeout)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc.writer.start()  # opens (and migrates) the file: /health answers once this is done
        app.state.service = svc
        app.state.openapi = openapi.document(ROUTES)
        try:
            yield
        finally:
            svc.writer.close()  # in-flight requests are answered first: uvicorn waits for them
            svc.close()

    app = Starlette(routes=ROUTES, exception_handlers=HANDLERS, lifespan=lifespan)
    app.router.redirect_slashes = False  # a redirect is no answer for an API client
    return AccessLog(BodyLimit(app))
