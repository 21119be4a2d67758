"""The endpoints: each translates a request into one `Registry` call and its answer into
a response (`registry.http.wire`); the registry's own rules and errors do all checking.

Reads and registrations are plain ``def`` endpoints (Starlette runs them in its thread
pool) or answered on the event loop where that is cheaper (a read of one name from a
local file); ``POST /usage`` validates in a worker thread and waits for the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from attrs import frozen
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from registry import times
from registry.errors import AuthorizationError, NotFoundError, ValidationError
from registry.http.ingest import Upload
from registry.http.service import service
from registry.http.wire import (
    JSON,
    NDJSON,
    JsonResponse,
    Query,
    bearer,
    error_response,
    expect,
    media_type,
    parse_json,
    window,
)
from registry.model import QueryLlm, QueryModel
from registry.query import HOUR, Window
from registry.registry import Registry
from registry.series import Series
from registry.store.spool import Spool


@frozen
class Calls:
    """The four `Registry` methods a collection's routes call (``Registry.get``...)."""

    register: Callable[..., QueryLlm | QueryModel]
    get: Callable[..., dict[str, Any]]
    list: Callable[..., list[str]]
    count: Callable[..., int]


QUERY_LLMS = Calls(Registry.register, Registry.get, Registry.list, Registry.count)
QUERY_MODELS = Calls(
    Registry.register_model, Registry.get_model, Registry.list_models, Registry.count_models
)


def collection(prefix: str, calls: Calls) -> list[BaseRoute]:
    """The routes of a collection (``/query_llms``...), each one call of ``calls``."""

    async def register_one(request: Request) -> Response:
        expect(request, JSON)
        token = bearer(request)
        fields = window(request)
        body = parse_json(await request.body())
        if fields["metadata"]:  # refuse a bad query before anything is written
            Window.of(fields["start"], fields["end"])
            if fields["me"] and token is None:
                raise AuthorizationError("me=true needs a token")

        def work() -> dict[str, Any]:
            reg = service(request).registry()
            name = calls.register(reg, body, token=token).name
            return calls.get(reg, name, token=token, **fields)

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
            return calls.get(shared.registry(), name, token=token, **fields)

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
        return JsonResponse({"data": calls.list(reg, token=token, **page)})

    def count_names(request: Request) -> Response:
        token = bearer(request)
        query = Query(request)
        me = query.flag("me")
        query.check()
        return JsonResponse({"count": calls.count(service(request).registry(), me, token)})

    return [
        Route(f"{prefix}/count", count_names, methods=["GET"]),  # before {name}: first match wins
        Route(f"{prefix}/{{name}}", get_one, methods=["GET"]),
        Route(f"{prefix}/", get_one, methods=["GET"]),  # an empty name: 400 at /name, not a 404
        Route(prefix, register_one, methods=["POST"]),
        Route(prefix, list_names, methods=["GET"]),
    ]


async def record_usage(request: Request) -> Response:
    """One event object, a JSON array of events, or JSON Lines: one group-committed job.

    The body is framed, read and validated in a worker thread as it arrives
    (`registry.http.ingest`), outside any transaction; the writer is handed only the
    validated rows."""
    token = bearer(request)
    expect(request, JSON, NDJSON)
    svc = service(request)
    upload = Upload(lines=media_type(request) == NDJSON)

    def prepare(events: Iterable[Any], batch: bool) -> Spool:
        return svc.registry().prepare_usage(events, token, batch=batch)

    try:
        prepared = await upload.prepare(request.stream(), prepare, svc.uploads)
    except NotFoundError as exc:
        return _unregistered(exc, upload.where(exc.index))
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
    if query.problems:  # a refused time: with it, every problem that stands on its own
        refused = {path for path, _ in query.problems}
        try:
            Series.of(*_stand_ins(start, end, refused), **fields_of_query(fields))
        except ValidationError as exc:
            query.problems.extend(e for e in exc.errors if e[0] not in refused)
        query.check()
    reg = service(request).registry()
    # An absent `from` goes through too: the library says it is required.
    window: dict[str, Any] = {"start": start, "end": end}
    return JsonResponse({"data": reg.usage_series(**window, token=token, **fields)})


_STAND_IN = times.parse("2000-01-01T00:00:00Z")


def _stand_ins(start: str | None, end: str | None, refused: set[str]) -> tuple[str, str | None]:
    """``from`` and ``to`` with each refused one replaced so that the window is one hour
    next to the other (a fixed hour if both are refused): the other fields are checked on
    their own, and no problem of the window's length or order can come from a stand-in
    (such as a window from 1970, too many day buckets). A time that is given but not a
    time is kept: the library says what is wrong with it."""

    def micros(value: str | None) -> int | None:
        try:
            return None if value is None else times.parse(value)
        except times.TimeError:
            return None

    low = micros(start)
    high = (times.now() if end is None else micros(end)) if "/to" not in refused else None
    try:
        if "/from" in refused:
            start = times.render((high if high is not None else _STAND_IN + HOUR) - HOUR)
        if "/to" in refused:
            end = times.render((low if low is not None else _STAND_IN) + HOUR)
    except (ValueError, OverflowError):  # a window at the edge of time: any other hour
        start = times.render(_STAND_IN) if "/from" in refused else start
        end = times.render(_STAND_IN + HOUR) if "/to" in refused else end
    return start or times.render(_STAND_IN), end


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
    "Vary": "Accept",  # HTML or JSON by the Accept header: caches must keep both
}


def wants_json(request: Request) -> bool:
    """``?format=json``; else whether the Accept header prefers JSON to HTML, q-values read
    as HTTP says: the most specific range that names a type gives its q (``q=0``: not at
    all). On a tie (``*/*``, or no header) the one listed first wins, HTML if neither."""
    chosen = request.query_params.get("format", "")
    if chosen:
        return chosen == "json"
    ranges = _accepted(request.headers.get("accept", ""))
    json_q, json_at = _preference(ranges, "application", "json")
    html_q, html_at = _preference(ranges, "text", "html")
    return json_q > html_q or (json_q == html_q > 0 and json_at < html_at)


def _accepted(header: str) -> list[tuple[str, str, float]]:
    """The media ranges of an Accept header, in order: (type, subtype, q)."""
    ranges = []
    for part in header.split(","):
        kind, *parameters = part.split(";")
        main, _, sub = kind.strip().lower().partition("/")
        q = 1.0
        for parameter in parameters:
            key, _, value = parameter.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0  # a q that is not a number accepts nothing
        if main and sub:
            ranges.append((main, sub, q))
    return ranges


def _preference(ranges: list[tuple[str, str, float]], main: str, sub: str) -> tuple[float, int]:
    """(q, position) of the most specific range that matches ``main/sub``; (0, -1) if none."""
    best = (-1, 0.0, -1)
    for at, (kind, subtype, q) in enumerate(ranges):
        if (kind, subtype) == (main, sub):
            specific = 2
        elif kind == main and subtype == "*":
            specific = 1
        elif (kind, subtype) == ("*", "*"):
            specific = 0
        else:
            continue
        if specific > best[0]:
            best = (specific, q, at)
    return best[1], best[2]


def home(request: Request) -> Response:
    """``GET /``: the dashboard, as an anonymous caller sees the registry; or the same as JSON."""
    from registry.http import pages  # noqa: PLC0415 - pages imports this module's negotiation

    return pages.dashboard_page(request)


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
