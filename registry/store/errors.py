"""Kinds of `StorageError` a caller can act on by type, whatever the backend.

They live in `registry.errors` with every other error (and are exported by
``registry``); this module keeps the names importable from here too.
"""

from __future__ import annotations

from registry.errors import StorageBusyError, StorageFullError

__all__ = ["StorageBusyError", "StorageFullError"]
