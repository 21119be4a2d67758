"""The SQLite backend: one file, WAL, ``BEGIN IMMEDIATE`` writes; the embedded default.

``store`` opens, migrates and guards the file and maps SQLite's errors; ``tx`` is the SQL
of one transaction that is SQLite's own (the rest: ``registry.store.sql``).
"""

from registry.store.sqlite.store import (
    APPLICATION_ID,
    DEFAULT_TIMEOUT,
    SqliteStore,
    known_migrations,
    migration_set,
)
from registry.store.sqlite.tx import SqliteTx

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_TIMEOUT",
    "SqliteStore",
    "SqliteTx",
    "known_migrations",
    "migration_set",
]
