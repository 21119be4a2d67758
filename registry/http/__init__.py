"""The HTTP API of the registry (``qllm serve``); needs the ``server`` extra.

`create_app` builds the ASGI application on one registry file.
"""

from __future__ import annotations

try:
    from registry.http.app import create_app
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"the HTTP server needs {exc.name}: pip install 'query-llm-registry[server]'"
    ) from exc

__all__ = ["create_app"]
