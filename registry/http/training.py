"""The training-table routes: completions recorded and read, marked and unmarked (the hosted
API's own paths, which the ObjectiveAI SDK's ``trainingTableMark`` and
``trainingTableUnmark`` call), and a Query Model's weights for a prompt.

Each endpoint is one `Registry` call; the registry's rules check everything. A
completion's id is read from the raw path (`RawPathRoute`): an id may hold a ``/``,
which a client sends as ``%2F`` and the decoded path would split in two.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from registry import completions
from registry.errors import ValidationError
from registry.http.service import service
from registry.http.wire import JSON, JsonResponse, Query, bearer, expect, parse_json
from registry.model import Mark, WeightsQuery

COMPLETION = "/query/completions/{id}"
MARK = "/query/completions/{id}/training_table"
BATCH = "/query/completions"
WEIGHTS = "/query_models/{name}/weights"


class RawPathRoute(Route):
    """A route matched on the path as the client sent it (``%2F`` kept), its parameters
    then decoded: so that ``/query/completions/a%2Fb`` is the completion ``a/b``."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = scope.get("raw_path")
        if scope["type"] != "http" or not raw:
            return super().matches(scope)
        match, child = super().matches({**scope, "path": raw.decode("latin-1")})
        if "path_params" in child:
            child["path_params"] = {
                key: unquote(value, errors="replace") if isinstance(value, str) else value
                for key, value in child["path_params"].items()
            }
        return match, child


def _body(data: bytes) -> Any:
    return parse_json(data)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError.one("", "must be a JSON object")
    return value


async def completion(request: Request) -> Response:
    """``PUT`` records the completion (the body: its fields but ``id``); ``GET`` reads it."""
    token = bearer(request)
    id_ = request.path_params.get("id", "")
    shared = service(request)
    if request.method == "GET":
        query = Query(request)
        with_embedding = query.flag("embedding")
        query.check()

        def read() -> dict[str, Any]:
            return shared.registry().get_completion(id_, embedding=with_embedding, token=token)

        return JsonResponse(await _in_thread(read))
    expect(request, JSON)
    fields = _object(_body(await request.body()))
    if "id" in fields:  # the path names the completion; a second id could only disagree
        raise ValidationError.one("/id", "unknown key: the id is the path's")

    def record() -> dict[str, Any]:
        written = shared.registry().record_completion_dict({**fields, "id": id_}, token)
        return {"written": written}

    return JsonResponse(await _in_thread(record))


async def record_batch(request: Request) -> Response:
    """``POST /query/completions``: a JSON array of completions, all or nothing."""
    token = bearer(request)
    expect(request, JSON)
    batch = _body(await request.body())
    if not isinstance(batch, list):
        raise ValidationError.one("", "must be a JSON array of completions")
    shared = service(request)

    def record() -> dict[str, Any]:
        return {"written": shared.registry().record_completions(batch, token=token)}

    return JsonResponse(await _in_thread(record))


async def training_table(request: Request) -> Response:
    """``POST`` marks the correct answer (``{"correct_confidence_id": ...}``); ``DELETE``
    unmarks. Both answer ``{}``."""
    token = bearer(request)
    id_ = request.path_params.get("id", "")
    shared = service(request)
    if request.method == "POST":
        expect(request, JSON)
        fields = completions.body_fields(Mark, _body(await request.body()))
        correct: Any = fields.get("correct_confidence_id")  # the registry checks it

        def mark() -> dict[str, Any]:
            shared.registry().mark(id_, correct, token=token)
            return {}

        return JsonResponse(await _in_thread(mark))

    def unmark() -> dict[str, Any]:
        shared.registry().unmark(id_, token=token)
        return {}

    return JsonResponse(await _in_thread(unmark))


async def weights(request: Request) -> Response:
    """``POST /query_models/{name}/weights``: each member's weight for the prompt's embedding."""
    token = bearer(request)
    expect(request, JSON)
    name = request.path_params["name"]
    fields = completions.body_fields(WeightsQuery, _body(await request.body()))
    shared = service(request)

    def weigh() -> dict[str, Any]:
        return shared.registry().weights(
            name, fields.get("embedding"), fields.get("response_format_hash"), token=token
        )

    return JsonResponse(await _in_thread(weigh))


async def _in_thread(work: Any) -> Any:
    return await run_in_threadpool(work)


ROUTES: list[BaseRoute] = [
    RawPathRoute(MARK, training_table, methods=["POST", "DELETE"]),
    RawPathRoute(COMPLETION, completion, methods=["GET", "PUT"]),
    # An empty id: the registry's 400 at /id (with the body's problems), not a 404.
    RawPathRoute("/query/completions//training_table", training_table, methods=["POST", "DELETE"]),
    RawPathRoute("/query/completions/", completion, methods=["GET", "PUT"]),
    Route(BATCH, record_batch, methods=["POST"]),
    Route(WEIGHTS, weights, methods=["POST"]),
]
