"""The dashboard's pages: ``GET /`` (its body is `home`'s), and a page per Query LLM
(``GET /query-llm/{name}``) and per Query Model (``GET /query-model/{name}``).

Each answers HTML, or the same data as JSON (``format=json``, as ``GET /`` decides);
each is rendered by `registry.render` from library calls, and sent with
`DASHBOARD_HEADERS` (a strict CSP: the page runs its own inline style and script and
loads nothing). A bad query is shown on the page, beside the form, never as an error
status; a name that is not registered is a 404 page (or the API's 404 body in JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from registry.errors import NotFoundError, ValidationError
from registry.http.endpoints import DASHBOARD_HEADERS, wants_json
from registry.http.service import service
from registry.http.wire import JsonResponse, bearer
from registry.render import dashboard, items
from registry.render.page import Form

Page = TypeVar("Page")  # a per-item page's data (`items.LlmPage`, `items.ModelPage`)


def form_of(request: Request) -> Form:
    """The query as typed: every value of every field, as the form shows them back."""
    fields: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        fields.setdefault(key, []).append(value)
    return Form.of(fields)


def dashboard_page(request: Request) -> Response:
    """``GET /``: the dashboard of the query, as HTML or JSON."""
    reg = service(request).registry()
    board = dashboard.gather(reg, form_of(request), bearer(request))
    if wants_json(request):
        return JsonResponse(dashboard.as_json(board), headers=DASHBOARD_HEADERS)
    return HTMLResponse(dashboard.render(board), headers=DASHBOARD_HEADERS)


def llm_page(request: Request) -> Response:
    """``GET /query-llm/{name}``: one Query LLM, its totals and its usage over time."""
    return _item(request, "Query LLM", items.gather_llm, items.llm_json, items.render_llm)


def model_page(request: Request) -> Response:
    """``GET /query-model/{name}``: one Query Model, its members and its usage over time."""
    return _item(request, "Query Model", items.gather_model, items.model_json, items.render_model)


def _item(
    request: Request,
    kind: str,
    gather: Callable[..., Page],
    as_json: Callable[[Page], dict[str, Any]],
    render: Callable[[Page], str],
) -> Response:
    """The page of one registered thing, as HTML or JSON; a missing one's page."""
    reg = service(request).registry()
    try:
        page = gather(reg, request.path_params["name"], form_of(request), bearer(request))
    except (NotFoundError, ValidationError) as exc:
        return _missing(request, exc, kind)
    if wants_json(request):
        return JsonResponse(as_json(page), headers=DASHBOARD_HEADERS)
    return HTMLResponse(render(page), headers=DASHBOARD_HEADERS)


def _missing(request: Request, exc: NotFoundError | ValidationError, kind: str) -> Response:
    """No such name: the API's error body in JSON, else a page that says so."""
    if wants_json(request):
        raise exc  # the error handlers answer it as every endpoint's (404 or 400)
    status = 404 if isinstance(exc, NotFoundError) else 400
    return HTMLResponse(items.missing(exc, kind), status_code=status, headers=DASHBOARD_HEADERS)
