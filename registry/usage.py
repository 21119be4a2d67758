"""The rules of usage questions, under their earlier module name.

Windows, pages and sorts live in `registry.query`; the SQL in
``registry.store`` (``sqlite/usage.py``, ``postgres/``). Kept so that code
importing ``registry.usage.Window`` or ``SORTS`` goes on working.
"""

from registry.query import (
    ANONYMOUS,
    CHUNK,
    HOUR,
    LLMS,
    MAX_PAGE,
    MODELS,
    NO_MODEL,
    SORTS,
    Page,
    Subject,
    Window,
    credits,
)

__all__ = [
    "ANONYMOUS",
    "CHUNK",
    "HOUR",
    "LLMS",
    "MAX_PAGE",
    "MODELS",
    "NO_MODEL",
    "SORTS",
    "Page",
    "Subject",
    "Window",
    "credits",
]
