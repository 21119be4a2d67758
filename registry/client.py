"""`Client`: the registry's methods over HTTP, with the same names, returns and errors.

One `httpx.Client` per `Client` (connections pooled; safe to share between
threads). Error bodies are turned back into `registry.errors` classes, so
``except registry.NotFoundError`` means the same against a file or a server.
Needs the ``client`` extra (httpx).

What the library checks before it reads its database, the Client checks before it
sends anything, with the same rules-layer functions and so the same errors: the
token's shape (`registry.auth.checked`), names (`registry.query.named`: a name is
base62, so no path segment can ever be ``.`` or ``..``), flags, windows, pages
(`Page.of`) and series (`Series.of`). An empty value is refused as the library
refuses it, never dropped from the query. Only the server knows which tokens and
names exist; usage events are checked by the server, whose errors come back with
the same paths. An answer that is not the JSON the route answers with is an error
(`StorageError`): the URL does not lead to a qllm server.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from registry import auth
from registry._convert import dump_model, validate, validate_model
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    RegistryError,
    StorageBusyError,
    StorageError,
    StorageFullError,
    ValidationError,
)
from registry.events import iterate
from registry.model import AMOUNTS, QueryLlm, QueryModel
from registry.query import MODELS, Page, Window, flag, named
from registry.series import GROUPS, Series

DEFAULT_TIMEOUT = 30.0


def _wire(value: Any) -> Any:
    """JSON for what Python callers may pass: exact costs as strings, times in RFC 3339."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def _query_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_query_value(v) for v in value]
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _floats(value: Any) -> Any:
    """Numbers other than costs as the library returns them (floats, not Decimals)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _cost(v) if k.endswith("_cost") else _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


def _cost(value: Any) -> Any:
    """Costs as the library returns them: a `Decimal` always, ``0`` included."""
    return Decimal(value) if isinstance(value, int) else value


class Client:
    """A registry served by ``qllm serve`` at ``base_url``; ``token`` is the default caller."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.token = token
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {str(self._http.base_url)!r}>"

    # --- the one request path ------------------------------------------------------------

    def _token(self, token: str | None) -> str | None:
        """The caller: ``token``, else the Client's; checked as the library checks it."""
        token = token if token is not None else self.token
        return None if token is None else auth.checked(token)

    def _me(self, me: Any, token: str | None) -> bool:
        """``me`` checked as the library checks it, before it asks the database."""
        if flag("/me", me) and token is None:
            raise AuthorizationError("me=true needs a token")
        return bool(me)

    def _call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content: Iterator[bytes] | None = None,
        name: str | None = None,
        subject: str = "Query LLM",
    ) -> Any:
        """One request; ``token`` is the checked caller (`_token`). The answer's JSON, or
        the error it stands for."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        if body is not None:
            content = iter([json.dumps(body, default=_wire).encode()])
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(
                method, path, params=params, headers=headers, content=content
            )
        except httpx.TransportError as exc:
            raise StorageError(
                f"cannot reach the registry at {self._http.base_url}: {exc}"
            ) from exc
        try:
            data = response.json(parse_float=Decimal)
        except ValueError:
            data = None
        if response.status_code == 200 and isinstance(data, dict):
            return _floats(data)
        if not response.is_error:  # another success, a redirect, or not JSON: not our server
            raise self._unexpected(response)
        # A 503 that a retry cannot help (a damaged or read-only file) is not "busy".
        busy = response.headers.get("x-should-retry") != "false"
        if data is None:  # an error page of something in between (a proxy): its status
            data = {"message": response.text[:200]}
        raise _error(response.status_code, data, name, subject, busy=busy)

    def _unexpected(self, response: httpx.Response) -> StorageError:
        kind = response.headers.get("content-type", "no content type")
        return StorageError(
            f"{self._http.base_url} did not answer as a qllm server does: HTTP"
            f" {response.status_code}, {kind} ({response.request.method}"
            f" {response.request.url.path})"
        )

    def _field(self, data: dict[str, Any], key: str, kind: type) -> Any:
        """``data[key]``, which the route always answers with: anything else is unexpected."""
        value = data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise StorageError(
                f"{self._http.base_url} did not answer as a qllm server does: no {key!r}"
            )
        return value

    def health(self) -> dict[str, Any]:
        """``{"status": "ok"}`` once the server has opened and migrated its file."""
        result: dict[str, Any] = self._call("GET", "/health", None)
        self._field(result, "status", str)
        return result

    # --- Query LLMs ----------------------------------------------------------------------

    def register(self, body: Any, token: str | None = None) -> QueryLlm:
        """Validate and store ``body`` on the server; the validated Query LLM."""
        if isinstance(body, QueryLlm):
            from registry._convert import unstructure  # noqa: PLC0415 - only for model input

            body = unstructure(body)
        stored = self._call("POST", "/query_llms", self._token(token), body=body)
        return validate({k: v for k, v in stored.items() if not k.endswith("name")})

    def get(
        self,
        name: str,
        metadata: bool = False,
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """The response body of ``name``; with ``metadata``, its statistics."""
        return self._one("query_llms", "Query LLM", name, metadata, me, start, end, token)

    def list(
        self,
        count: int = 100,
        offset: int = 0,
        sort: str = "created",
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> list[str]:
        """Names, ``count`` at a time from ``offset``: newest first or by usage."""
        return self._names("query_llms", count, offset, sort, me, start, end, token)

    def count(self, me: bool = False, token: str | None = None) -> int:
        """How many Query LLMs are registered; with ``me``, how many ``list(me=True)`` has."""
        return self._count("query_llms", me, token)

    # --- Query Models ---------------------------------------------------------------------

    def register_model(self, body: Any, token: str | None = None) -> QueryModel:
        """Store a Query Model and its members on the server; the validated Query Model."""
        if isinstance(body, QueryModel):
            body = _model_request(dump_model(body))
        stored = self._call("POST", "/query_models", self._token(token), body=body)
        self._field(stored, "models", list)
        return validate_model(_model_request(stored))

    def get_model(
        self,
        name: str,
        metadata: bool = False,
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """The response body of Query Model ``name``; with ``metadata``, its statistics."""
        return self._one("query_models", "Query Model", name, metadata, me, start, end, token)

    def list_models(
        self,
        count: int = 100,
        offset: int = 0,
        sort: str = "created",
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> builtins.list[str]:
        """Query Model names, as `list` gives Query LLM names."""
        return self._names("query_models", count, offset, sort, me, start, end, token)

    def count_models(self, me: bool = False, token: str | None = None) -> int:
        """How many Query Models are registered; with ``me``, how many ``list_models(me=True)``."""
        return self._count("query_models", me, token)

    # The three reads both collections answer alike (the server's `collection` routes),
    # each checking first what `Registry` checks first, in the same order.

    def _one(
        self,
        collection: str,
        subject: str,
        name: str,
        metadata: bool,
        me: bool,
        start: str | datetime | None,
        end: str | datetime | None,
        token: str | None,
    ) -> dict[str, Any]:
        token = self._token(token)
        query: dict[str, Any] = {"metadata": flag("/metadata", metadata)}
        if metadata:
            Window.of(start, end)
            query |= {"me": self._me(me, token), "from": start, "to": end}
        path = f"/{collection}/{quote(named(name, subject), safe='')}"
        result: dict[str, Any] = self._call(
            "GET", path, token, query=query, name=name, subject=subject
        )
        self._field(result, "name", str)
        return result

    def _names(
        self,
        collection: str,
        count: int,
        offset: int,
        sort: str,
        me: bool,
        start: str | datetime | None,
        end: str | datetime | None,
        token: str | None,
    ) -> builtins.list[str]:
        token = self._token(token)
        wants_me = self._me(me, token)
        Page.of(count, offset, sort, start, end)
        query = {"count": count, "offset": offset, "sort": sort, "me": wants_me}
        query |= {"from": start, "to": end}
        data = self._call("GET", f"/{collection}", token, query=query)
        names: builtins.list[str] = self._field(data, "data", list)
        return names

    def _count(self, collection: str, me: bool, token: str | None) -> int:
        token = self._token(token)
        query = {"me": self._me(me, token)}
        data = self._call("GET", f"/{collection}/count", token, query=query)
        return int(self._field(data, "count", int))

    # --- usage ----------------------------------------------------------------------------

    def usage_series(
        self,
        start: str | datetime,
        end: str | datetime | None = None,
        bucket: str = "day",
        group_by: Iterable[str] = (),
        names: Iterable[str] | None = None,
        query_model: str | None = None,
        me: bool = False,
        token: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Usage per bucket and group over ``[start, end)``: ``GET /usage``'s ``data`` list."""
        token = self._token(token)
        wants_me = self._me(me, token)
        keys, chosen = _once(group_by), _once(names)  # read twice: checked, then sent
        Series.of(start, end, bucket, keys, chosen, query_model)  # the library's errors
        query = {
            "from": start,
            "to": end,
            "bucket": bucket,
            "group_by": _strings(keys),
            "name": None if chosen is None else _strings(chosen),
            "query_model": query_model,
            "me": wants_me,
        }
        answer = self._call("GET", "/usage", token, query=query)
        data: builtins.list[dict[str, Any]] = self._field(answer, "data", list)
        for span in data:  # the wire's keys are sorted; the library's put the group first
            span["results"] = [_library_order(row) for row in span["results"]]
        return data

    def record_usage(
        self,
        name: str,
        token: str | None = None,
        at: str | datetime | None = None,
        request_id: str | None = None,
        chat_prompt_tokens: int = 0,
        chat_completion_tokens: int = 0,
        chat_cost: int | float | str | Decimal = 0,
        embedding_prompt_tokens: int = 0,
        embedding_completion_tokens: int = 0,
        embedding_cost: int | float | str | Decimal = 0,
        query_model: str | None = None,
    ) -> int:
        """Record one usage event; 1 if written, 0 if its ``request_id`` was recorded before.

        ``query_model``: the Query Model the request served (``name`` among its members)."""
        event = {
            "name": name,
            "at": at,
            "request_id": request_id,
            "chat_prompt_tokens": chat_prompt_tokens,
            "chat_completion_tokens": chat_completion_tokens,
            "chat_cost": chat_cost,
            "embedding_prompt_tokens": embedding_prompt_tokens,
            "embedding_completion_tokens": embedding_completion_tokens,
            "embedding_cost": embedding_cost,
        }
        if query_model is not None:  # absent and null mean the same: send the smaller body
            event["query_model"] = query_model
        answer = self._call("POST", "/usage", self._token(token), body=event)
        return int(self._field(answer, "written", int))

    def record_usage_many(
        self, events: Iterable[Mapping[str, Any]], token: str | None = None
    ) -> int:
        """Record a batch all-or-nothing; any iterable (of any mappings), streamed as one
        JSON array."""
        token = self._token(token)
        content = _array(iterate(events))  # not iterable: the library's error, before a request
        answer = self._call("POST", "/usage", token, content=content)
        return int(self._field(answer, "written", int))

    # --- completions and training tables -----------------------------------------------------

    def record_completion(
        self,
        id: str,
        query_model: str,
        embedding: Any,
        votes: Any,
        response_format_hash: str = "",
        at: str | datetime | None = None,
        token: str | None = None,
    ) -> int:
        """Record one completion: ``PUT /query/completions/{id}``; 1 if written, 0 if replayed."""
        completion = {
            "query_model": query_model,
            "embedding": _vector(embedding),
            "votes": votes,
            "response_format_hash": response_format_hash,
        }
        if at is not None:
            completion["at"] = at
        answer = self._call("PUT", _completion_path(id), self._token(token), body=completion)
        return int(self._field(answer, "written", int))

    def record_completions(
        self, completions: Iterable[Mapping[str, Any]], token: str | None = None
    ) -> int:
        """Record a batch all-or-nothing: ``POST /query/completions`` with a JSON array."""
        items = (
            {**c, "embedding": _vector(c["embedding"])}
            if isinstance(c, Mapping) and "embedding" in c
            else c
            for c in _completions(completions)
        )
        token = self._token(token)
        answer = self._call("POST", "/query/completions", token, content=_array(items))
        return int(self._field(answer, "written", int))

    def get_completion(
        self, id: str, embedding: bool = False, token: str | None = None
    ) -> dict[str, Any]:
        """A recorded completion, as `Registry.get_completion` returns it."""
        result: dict[str, Any] = self._call(
            "GET",
            _completion_path(id),
            self._token(token),
            query={"embedding": embedding},
            name=id,
            subject="completion",
        )
        return result

    def mark(self, id: str, correct_confidence_id: str, token: str | None = None) -> None:
        """Mark the correct answer: ``POST /query/completions/{id}/training_table``."""
        body = {"correct_confidence_id": correct_confidence_id}
        path = _completion_path(id) + "/training_table"
        self._call("POST", path, self._token(token), body=body, name=id, subject="completion")

    def unmark(self, id: str, token: str | None = None) -> None:
        """Unmark: ``DELETE /query/completions/{id}/training_table``."""
        path = _completion_path(id) + "/training_table"
        self._call("DELETE", path, self._token(token), name=id, subject="completion")

    def weights(
        self,
        query_model: str,
        embedding: Any,
        response_format_hash: str | None = "",
        token: str | None = None,
    ) -> dict[str, Any]:
        """Each member's weight for a prompt: ``POST /query_models/{name}/weights``."""
        body = {"embedding": _vector(embedding), "response_format_hash": response_format_hash}
        path = f"/query_models/{named(query_model, MODELS.kind)}/weights"
        result: dict[str, Any] = self._call(
            "POST", path, self._token(token), body=body, name=query_model, subject="Query Model"
        )
        return result


def _completion_path(id_: Any) -> str:
    if not isinstance(id_, str):
        # No path could carry it: the library's answer, without a request.
        from registry.completions import check_id  # noqa: PLC0415 - numpy only when used

        check_id(id_)
    return f"/query/completions/{quote(str(id_), safe='')}"


def _completions(completions: Any) -> Iterator[Any]:
    try:
        return iter(completions)
    except TypeError:
        raise ValidationError.one("", "must be an iterable of completions") from None


def _vector(value: Any) -> Any:
    """An embedding as JSON can carry it: a numpy array as its list of numbers."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) and not isinstance(value, list | tuple) else value


def _once(value: Any) -> Any:
    """An iterable (a generator too) as a list, so that it can be read twice; anything
    else as it is, for the rules to refuse."""
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | dict):
        return list(value)
    return value


def _strings(value: str | builtins.list[str]) -> builtins.list[str]:
    """A string or strings (checked by `Series.of`), as a list to repeat in the query."""
    return [value] if isinstance(value, str) else value


def _library_order(row: dict[str, Any]) -> dict[str, Any]:
    """A series result's keys as the library orders them: group keys, requests, amounts."""
    first = [k for k in (*GROUPS, "requests", *AMOUNTS) if k in row]
    return {k: row[k] for k in [*first, *sorted(set(row) - set(first))]}


def _model_request(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A Query Model request body from its response body: members without the keys added."""
    added = ("name", "training_table_name", "index", "training_table_index")
    members = [{k: v for k, v in m.items() if k not in added} for m in stored["models"]]
    return {"models": members, "weight": stored["weight"]}


def _array(events: Iterator[Any]) -> Iterator[bytes]:
    """A JSON array, one event at a time (a generator of any length is never held whole)."""
    yield b"["
    for i, given in enumerate(events):
        # Any mapping, as the library takes it; json.dumps takes only dicts.
        event = dict(given) if isinstance(given, Mapping) and not isinstance(given, dict) else given
        try:
            text = json.dumps(event, default=_wire)
        except (TypeError, ValueError) as exc:
            raise ValidationError.one(f"/{i}", f"cannot be sent as JSON: {exc}") from None
        yield (b"," if i else b"") + text.encode()
    yield b"]"


def _error(  # noqa: PLR0911 - a table
    status: int, data: Any, name: str | None, subject: str, *, busy: bool
) -> RegistryError:
    """The `registry.errors` class of an error body (the server's table, read backwards)."""
    data = data if isinstance(data, dict) else {"message": str(data)}
    message = str(data.get("message", ""))
    detail = data.get("error") if isinstance(data.get("error"), dict) else {}
    errors = [(e["path"], e["message"]) for e in data.get("errors") or []]
    errors = [("" if path == "/" else path, text) for path, text in errors]
    kind = detail.get("type")
    if kind == "not_found_error" and errors:  # an unregistered name inside a body
        head = errors[0][0][1:].partition("/")[0]
        return NotFoundError(str(detail.get("name")), int(head) if head.isdigit() else None)
    if status == 409:
        return ConflictError(errors)
    if status == 400 and errors:
        return ValidationError(errors)
    if status in (400, 413, 415):
        return ValidationError.one("", message)
    if status == 401:
        return (AuthorizationError if kind == "authorization_error" else AuthenticationError)(
            message
        )
    if status == 404 and name is not None:
        return NotFoundError(name, kind=subject)
    if status == 503:
        return StorageBusyError(message) if busy else StorageError(message)
    if status == 507:
        return StorageFullError(message)
    return RegistryError(f"{status}: {message}")
