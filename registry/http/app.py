"""The HTTP API (``qllm serve``): a list of routes, a table of error handlers, a list of
middleware, and the lifespan that opens the registry. Each concern lives in its module:
`registry.http.endpoints` (what each route does), `registry.http.wire` (JSON, errors,
request fields), `registry.http.service` (the registry per thread, the writer),
`registry.http.middleware`, `registry.http.openapi`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from registry.http import endpoints, openapi, pages, training
from registry.http.middleware import AccessLog, Body, Head
from registry.http.service import Service
from registry.http.wire import HANDLERS
from registry.location import location_of
from registry.registry import DEFAULT_TIMEOUT

ROUTES: list[BaseRoute] = [
    *endpoints.collection("/query_llms", endpoints.QUERY_LLMS),
    *endpoints.collection("/query_models", endpoints.QUERY_MODELS),
    *training.ROUTES,
    Route("/usage", endpoints.record_usage, methods=["POST"]),
    Route("/usage", endpoints.usage_series, methods=["GET"]),
    Route("/", endpoints.home, methods=["GET"]),
    # The dashboard's page per Query LLM and per Query Model: not under /query_llms,
    # whose sub-paths are the API's.
    Route("/query-llm/{name}", pages.llm_page, methods=["GET"]),
    Route("/query-model/{name}", pages.model_page, methods=["GET"]),
    Route("/health", endpoints.health, methods=["GET"]),
    Route("/openapi.json", endpoints.openapi_json, methods=["GET"]),
]
# Outermost first: every request is logged, its head measured, its body held to its
# route's limits.
MIDDLEWARE = [Middleware(AccessLog), Middleware(Head), Middleware(Body)]


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

    app = Starlette(
        routes=ROUTES, middleware=MIDDLEWARE, exception_handlers=HANDLERS, lifespan=lifespan
    )
    app.router.redirect_slashes = False  # a redirect is no answer for an API client
    return app
