"""The SQLite backend: one file, WAL, ``BEGIN IMMEDIATE`` writes; the embedded default.

``store`` opens the file and holds the SQL of Query LLMs, Query Models and
tokens; ``usage`` the SQL of usage events, rollups and statistics; ``series``
the SQL of usage over time.
"""

from registry.store.sqlite.store import (
    APPLICATION_ID,
    DEFAULT_TIMEOUT,
    SqliteStore,
    SqliteTx,
    known_migrations,
    migration_set,
)

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_TIMEOUT",
    "SqliteStore",
    "SqliteTx",
    "known_migrations",
    "migration_set",
]
