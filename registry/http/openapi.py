"""The OpenAPI 3.1 document of ``/openapi.json``; its body schemas come from `registry.schema`."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.routing import BaseRoute, Route

from registry import model, schema
from registry.query import MAX_PAGE, SORTS
from registry.series import BUCKETS, GROUPS

_BOOL = {"type": "boolean", "default": False}
_TIME = schema.TIME
_WINDOW = [
    ("metadata", _BOOL, "include creation facts and usage totals"),
    ("me", _BOOL, "count only the caller's usage (needs a token)"),
    ("from", _TIME, "count events at or after this RFC 3339 time"),
    ("to", _TIME, "count events before this RFC 3339 time"),
]
_PAGE = [
    ("count", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100}, "page size"),
    ("offset", {"type": "integer", "minimum": 0, "default": 0}, "names to skip"),
    (
        "sort",
        {"type": "string", "enum": list(SORTS), "default": "created"},
        "newest first, or by usage over from/to, largest first",
    ),
    ("me", _BOOL, "only the caller's Query LLMs (needs a token)"),
    ("from", _TIME, "start of the usage window"),
    ("to", _TIME, "end of the usage window"),
]
_NAME = {"type": "string", "pattern": "^[0-9A-Za-z]{22}$"}
_LIST_NOTE = "; repeat it, or write name[]=, for more than one"
_SERIES = [
    ("from", _TIME, "start of the window (required)"),
    ("to", _TIME, "end of the window, exclusive (default: now)"),
    (
        "bucket",
        {"type": "string", "enum": list(BUCKETS), "default": "day"},
        "bucket width, aligned in UTC (weeks from Monday)",
    ),
    (
        "group_by",
        {"type": "array", "items": {"type": "string", "enum": list(GROUPS)}},
        "keys to group each bucket's results by; also comma-separated",
    ),
    ("name", {"type": "array", "items": _NAME}, "only these Query LLMs" + _LIST_NOTE),
    ("query_model", _NAME, "only events recorded for this Query Model"),
    ("me", _BOOL, "only the caller's events (needs a token)"),
]
_SERIES_RESULT = {
    "type": "object",
    "properties": {
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["start", "end", "results"],
                "properties": {
                    "start": _TIME,
                    "end": _TIME,
                    "results": {"type": "array", "items": {"type": "object"}},
                },
            },
        }
    },
}
_DASHBOARD = [
    ("from", _TIME, "start of the window (default: 30 days ago, midnight UTC)"),
    ("to", _TIME, "end of the window (default: the coming midnight UTC)"),
    ("bucket", {"type": "string", "enum": list(BUCKETS), "default": "day"}, "bar width"),
    ("format", {"type": "string", "enum": ["html", "json"]}, "json: the page's data"),
]
_COUNT = {"type": "integer", "minimum": 0}
_ERROR = {
    "type": "object",
    "required": ["code", "message", "error"],
    "additionalProperties": False,
    "properties": {
        "code": {"type": "integer", "minimum": 400, "maximum": 599},
        "message": {"type": "string"},
        # OpenAI's shape: its own code and message, `type` to tell 401s apart, and
        # for an unregistered name inside a body the `name` at fault.
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "integer", "minimum": 400, "maximum": 599},
                "message": {"type": "string"},
                "type": {"type": "string"},
                "name": {"type": "string"},
            },
        },
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["path", "message"],
                "additionalProperties": False,
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
# What `metadata=true` adds to a response body: all of it or none of it.
_METADATA: dict[str, Any] = {
    "user_id": {"type": ["string", "null"]},
    "created": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"},
    "requests": _COUNT,
    **{
        f"{kind}_{amount}": _COUNT if amount != "cost" else {"type": "number", "minimum": 0}
        for kind in ("chat", "embedding")
        for amount in ("completion_tokens", "prompt_tokens", "cost")
    },
}


def response_of(body: dict[str, Any]) -> dict[str, Any]:
    """A response body: the normalized ``body`` plus ``name`` (and ``training_table_name``
    when its weight has one), plus the metadata keys all together or not at all."""
    return {
        "type": "object",
        "required": [*body.get("required", []), "name"],
        "additionalProperties": False,
        "properties": {
            **body["properties"],
            "name": _NAME,
            "training_table_name": _NAME,
            **_METADATA,
        },
        "dependentRequired": {"created": list(_METADATA)},
    }


_LOOSE_RESPONSE = {  # a body whose precise response schema is not derived here
    "type": "object",
    "required": ["name"],
    "properties": {"name": _NAME, **_METADATA},
    "dependentRequired": {"created": list(_METADATA)},
}


def _params(fields: list[tuple[str, Any, str]]) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "schema": s, "description": d} for n, s, d in fields]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


# Every status an operation may answer besides 200 (docs/http.md says when): the route's
# own, and those of the server around it (a known path with another method: 405; a request
# too slow to arrive: 408; a request line or head too long: 414, 431).
ERRORS = (400, 401, 404, 405, 408, 409, 413, 414, 415, 431, 503, 507)


def _ok(content: dict[str, Any], description: str = "success") -> dict[str, Any]:
    errors = {str(code): {"$ref": "#/components/responses/Error"} for code in ERRORS}
    return {
        "200": {"description": description, "content": {"application/json": {"schema": content}}},
        **errors,
    }


def _json_body(content: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": content}}}


def collection(
    prefix: str, body: str, what: str, response: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The four operations of a collection (``/query_llms``...) whose body schema is ``body``
    and response body schema ``response`` (a `_ref`; by default only name and metadata)."""
    answer = response or _LOOSE_RESPONSE
    names = {
        "type": "object",
        "required": ["data"],
        "additionalProperties": False,
        "properties": {"data": {"type": "array", "maxItems": MAX_PAGE, "items": _NAME}},
    }
    count = {
        "type": "object",
        "required": ["count"],
        "additionalProperties": False,
        "properties": {"count": _COUNT},
    }
    return {
        prefix: {
            "post": {
                "summary": f"register a {what} (idempotent)",
                "parameters": _params(_WINDOW),
                "requestBody": _json_body(_ref(body)),
                "responses": _ok(answer),
            },
            "get": {
                "summary": f"list {what} names",
                "parameters": _params(_PAGE),
                "responses": _ok(names),
            },
        },
        f"{prefix}/count": {
            "get": {
                "summary": f"how many {what}s are registered",
                "parameters": _params(_WINDOW[1:2]),
                "responses": _ok(count),
            },
        },
        f"{prefix}/{{name}}": {
            "get": {
                "summary": f"a {what}, with metadata its usage totals",
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": _NAME,
                    },
                    *_params(_WINDOW),
                ],
                "responses": _ok(answer),
            },
        },
    }


def document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of the routes served; body schemas generated from the model."""
    paths: dict[str, Any] = {}
    paths.update(collection("/query_llms", "QueryLlm", "Query LLM", _ref("QueryLlmResponse")))
    paths.update(collection("/query_models", "QueryModel", "Query Model"))
    events = {"oneOf": [_ref("UsageEvent"), {"type": "array", "items": _ref("UsageEvent")}]}
    paths["/usage"] = {
        "post": {
            "summary": "record usage: one event, an array, or JSON Lines (all or nothing)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": events},
                    "application/x-ndjson": {"schema": _ref("UsageEvent")},
                },
            },
            "responses": _ok(
                {
                    "type": "object",
                    "required": ["written"],
                    "additionalProperties": False,
                    "properties": {"written": _COUNT},
                }
            ),
        },
        "get": {
            "summary": "usage per time bucket and group, over [from, to)",
            "parameters": _params(_SERIES),
            "responses": _ok(_SERIES_RESULT),
        },
    }
    paths["/"] = {
        "get": {
            "summary": "the dashboard: an HTML page, or its data with format=json",
            "parameters": _params(_DASHBOARD),
            "responses": {
                "200": {
                    "description": "the page (text/html) or its data (application/json)",
                    "content": {
                        "text/html": {"schema": {"type": "string"}},
                        "application/json": {"schema": {"type": "object"}},
                    },
                }
            },
        }
    }
    paths["/health"] = {
        "get": {
            "summary": "ok once the file is open and migrated",
            "responses": _ok(
                {
                    "type": "object",
                    "required": ["status"],
                    "additionalProperties": False,
                    "properties": {"status": {"const": "ok"}},
                }
            ),
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "summary": "this document",
            "responses": _ok(
                {"type": "object", "required": ["openapi", "info", "paths", "components"]}
            ),
        }
    }
    paths.update(_training())
    served = {r.path for r in routes if isinstance(r, Route)}
    paths = {p: ops for p, ops in paths.items() if p in served}  # only what this server has
    try:
        release = version("query-llm-registry")
    except PackageNotFoundError:  # a source checkout that was never installed
        release = "0"
    components = schema.components(
        model.QueryLlm,
        model.QueryModel,
        model.UsageEvent,
        model.Completion,
        model.Mark,
        model.WeightsQuery,
    )
    components["QueryLlmResponse"] = response_of(components["QueryLlm"])
    components["CompletionBody"] = _without_id(components["Completion"])
    components["CompletionResponse"] = _completion_response(components["Completion"])
    return {
        "openapi": "3.1.0",
        "info": {"title": "Query LLM Registry", "version": release},
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": {
                "Error": {
                    "description": "an error",
                    "content": {"application/json": {"schema": _ERROR}},
                }
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


# --- training tables ---------------------------------------------------------------------------

_ID = {"type": "string", "minLength": 1, "maxLength": 256}
_EMPTY = {"type": "object", "additionalProperties": False, "maxProperties": 0}
_WRITTEN = {
    "type": "object",
    "required": ["written"],
    "additionalProperties": False,
    "properties": {"written": _COUNT},
}
_WEIGHTS = {
    "type": "object",
    "required": ["query_model", "rows", "models"],
    "additionalProperties": False,
    "properties": {
        "query_model": _NAME,
        "rows": _COUNT,
        "models": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "weight", "rows", "score"],
                "additionalProperties": False,
                "properties": {
                    "index": _COUNT,
                    "weight": {"type": "number", "minimum": 0},
                    "rows": _COUNT,
                    "score": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                },
            },
        },
    },
}


def _without_id(completion: dict[str, Any]) -> dict[str, Any]:
    """The body of ``PUT /query/completions/{id}``: a completion whose id is the path's."""
    properties = {k: v for k, v in completion["properties"].items() if k != "id"}
    required = [k for k in completion.get("required", []) if k != "id"]
    return {**completion, "properties": properties, "required": required}


def _completion_response(completion: dict[str, Any]) -> dict[str, Any]:
    """A recorded completion: its fields (``at`` as RFC 3339 text, the embedding when asked),
    who recorded it and when, and the correct answer once marked."""
    properties = completion["properties"]
    return {
        "type": "object",
        "required": [
            "id",
            "query_model",
            "response_format_hash",
            "votes",
            "at",
            "user_id",
            "created",
        ],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "query_model": _NAME,
            "response_format_hash": properties["response_format_hash"],
            "votes": properties["votes"],
            "embedding": {"type": "array", "items": {"type": "number"}},
            "at": _TIME,
            "user_id": {"type": ["string", "null"]},
            "created": _TIME,
            "correct_confidence_id": {"type": "string", "minLength": 1},
        },
    }


def _id_parameter() -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": _ID,
        "description": "the completion's id, chosen by the caller (a / written as %2F)",
    }


def _training() -> dict[str, Any]:
    """The routes of completions, marks and weights."""
    return {
        "/query/completions": {
            "post": {
                "summary": "record a batch of completions (all or nothing)",
                "requestBody": _json_body({"type": "array", "items": _ref("Completion")}),
                "responses": _ok(_WRITTEN),
            }
        },
        "/query/completions/{id}": {
            "put": {
                "summary": "record a completion (idempotent by id)",
                "parameters": [_id_parameter()],
                "requestBody": _json_body(_ref("CompletionBody")),
                "responses": _ok(_WRITTEN),
            },
            "get": {
                "summary": "a recorded completion",
                "parameters": [
                    _id_parameter(),
                    *_params([("embedding", _BOOL, "include the stored embedding")]),
                ],
                "responses": _ok(_ref("CompletionResponse")),
            },
        },
        "/query/completions/{id}/training_table": {
            "post": {
                "summary": "mark the correct answer: the completion becomes a training row",
                "parameters": [_id_parameter()],
                "requestBody": _json_body(_ref("Mark")),
                "responses": _ok(_EMPTY),
            },
            "delete": {
                "summary": "unmark: the completion leaves its training table",
                "parameters": [_id_parameter()],
                "responses": _ok(_EMPTY),
            },
        },
        "/query_models/{name}/weights": {
            "post": {
                "summary": "each member's weight for a prompt, from the nearest training rows",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": _NAME}],
                "requestBody": _json_body(_ref("WeightsQuery")),
                "responses": _ok(_WEIGHTS),
            }
        },
    }
