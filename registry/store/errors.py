"""Kinds of `StorageError` a caller can act on by type, whatever the backend.

An HTTP surface answers 503 (retry later) for `StorageBusyError` and 507 for
`StorageFullError`; any other `StorageError` is a fault to report. Both are
`StorageError`s, so ``except registry.StorageError`` still catches them.
"""

from __future__ import annotations

from registry.errors import StorageError


class StorageBusyError(StorageError):
    """The database cannot do it now, and the same call may succeed later.

    Locked past the timeout, a statement timeout, conflicts with concurrent
    writers that outlasted the retries, or a server restarting or out of
    connections. Nothing of the call was committed, except where the
    connection was lost during COMMIT: retry with the same ``request_id``s.
    """


class StorageFullError(StorageError):
    """The database has no room left (disk full): nothing of the call was written."""
