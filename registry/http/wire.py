"""The wire format of the HTTP API: JSON out (costs exact), the error table and error
bodies, and what a request carries in (the bearer token, query fields, a JSON body).

Endpoints and middleware speak HTTP through this module only, so that every route
answers alike: ``{"code", "message", "error"}`` on every error, validation
problems in ``errors``, keys in canonical order.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route

from registry import jsonin
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
from registry.query import Window

log = logging.getLogger("qllm.http")

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
        text = render(content)
        try:
            return text.encode()
        except UnicodeEncodeError:
            # A lone surrogate (a JSON key or value such as "\ud800", echoed in an error)
            # has no UTF-8; in JSON text it can only be inside a string, where its escape
            # means the same.
            return _SURROGATE.sub(_escaped, text).encode()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(found: re.Match[str]) -> str:
    return f"\\u{ord(found[0]):04x}"


def printable(text: str) -> str:
    """``text`` with every character that is not printable (line breaks, escape sequences,
    format and surrogate characters) and every backslash written as a Python escape: a
    value logged this way is one line, shows what it is, and can always be encoded."""
    return jsonin.printable(text.replace("\\", "\\\\"))


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


# What a client reads of a storage failure: never the error's own message, which names
# the server's file or its database (user, host, port, database name); the log has it.
STORAGE_MESSAGES: dict[type[Exception], str] = {
    StorageBusyError: (
        "the database is unavailable for now (locked by another writer, or not answering):"
        " retry in a moment"
    ),
    StorageFullError: "the database is full: its disk, or its size limit",
    SchemaTooNewError: "the database was written by a newer version of qllm than this server",
    StorageError: "the database is unavailable",
}


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
    hidden = next((STORAGE_MESSAGES[c] for c in type(exc).__mro__ if c in STORAGE_MESSAGES), None)
    if hidden is not None:
        log.warning("%s %s: %s", request.method, printable(request.url.path), printable(str(exc)))
        message = hidden
    elif isinstance(exc, ClientDisconnect):
        message = "the client went away"
    else:
        message = str(exc)
    return error_response(status, message, headers=headers, kind=kind)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(allowed(request))
    return error_response(exc.status_code, message, headers=headers)


def allowed(request: Request) -> list[str]:
    """Every method some route serves at this request's path (Starlette's 405 names only
    the first route's, and a path such as /query_llms has a route for GET and one for POST)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


async def defect(request: Request, exc: Exception) -> Response:
    log.error("defect answering %s %s", request.method, printable(request.url.path), exc_info=exc)
    return error_response(500, "internal error: this is a defect of the registry")


HANDLERS: dict[Any, Callable[[Request, Exception], Any]] = {
    **dict.fromkeys(STATUS, registry_error),
    HTTPException: http_error,
    Exception: defect,
}

# --- request in ---------------------------------------------------------------------------


def bearer(request: Request) -> str | None:
    """The caller's token: ``Bearer <token>``. No header, an empty one, or ``Bearer`` with
    an empty credential is no token; two headers are refused (which one would count?)."""
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:
        raise HTTPException(400, f"send one Authorization header, not {len(headers)}")
    header = headers[0].strip() if headers else ""
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
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
    # The one reader of JSON input, as every surface reads it: UTF-8 whatever the
    # locale, no repeated keys, every key Unicode, numbers read exactly.
    return jsonin.loads(data, path)


def expect(request: Request, *types: str) -> None:
    if media_type(request) not in types:
        raise HTTPException(415, f"the body must be {' or '.join(types)}")
