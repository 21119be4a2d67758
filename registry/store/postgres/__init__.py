"""The PostgreSQL backend: a connection pool, migrations, transactions, error mapping.

Chosen by the location: ``postgresql://`` or ``postgres://`` (a libpq URL).
psycopg is imported only by `open_store`, so that ``import registry`` and the
SQLite backend work without it; without it, `open_store` says what to install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.errors import StorageError
from registry.extras import install
from registry.location import describe

if TYPE_CHECKING:
    from registry.store.postgres.store import PostgresStore

INSTALL = install("postgres")


def open_store(location: str, **options: Any) -> PostgresStore:
    """Connect to ``location``, apply pending migrations, open the pool.

    ``options`` are `PostgresStore`'s keyword arguments. Raises `StorageError`
    when psycopg is not installed or the database cannot be reached.
    """
    try:
        from registry.store.postgres.store import PostgresStore  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("psycopg", "psycopg_pool")):
            raise
        raise StorageError(
            f"{describe(location)} is a PostgreSQL database, which needs psycopg 3 and "
            f"psycopg_pool ({exc.name} is missing): {INSTALL}"
        ) from exc
    return PostgresStore(location, **options)
