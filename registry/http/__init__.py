"""The HTTP API of the registry (``qllm serve``); needs the ``server`` extra.

`create_app` builds the ASGI application on one registry file. It is imported
on first use, so that the parts that need no server (the dashboard page, which
``qllm usage series --format html`` also writes) import without Starlette.
"""

from __future__ import annotations

from typing import Any

from registry.extras import missing

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        try:
            from registry.http.app import create_app  # noqa: PLC0415 - lazy on purpose
        except ImportError as exc:
            raise ImportError(missing("the HTTP server", exc.name, "server")) from exc
        return create_app
    raise AttributeError(f"module 'registry.http' has no attribute {name!r}")
