"""The PostgreSQL backend: a connection pool, migrations, transactions, error mapping.

Chosen by the location: ``postgresql://`` or ``postgres://`` (a libpq URL).
psycopg is imported only by `open_store`, so that ``import registry`` and the
SQLite backend work without it; without it, `open_store` says what to install.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from registry.errors import StorageError

if TYPE_CHECKING:
    from registry.store.postgres.store import PostgresStore

SCHEMES = ("postgresql://", "postgres://")
INSTALL = "pip install 'query-llm-registry[postgres]'"


def is_location(location: object) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a file."""
    return isinstance(location, str) and location.startswith(SCHEMES)


def describe(location: str) -> str:
    """``location`` fit for a message: without its password, in the URL or its query."""
    try:
        parts = urllib.parse.urlsplit(location)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = user.partition(":")[0] + "@" + host
        query = urllib.parse.urlencode(
            [
                (key, value)
                for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
                if key != "password"
            ]
        )
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:  # not a URL we can take apart: say nothing of it
        return "the PostgreSQL database"


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
    # `create` is about files: a database is made by its administrator, never by qllm,
    # and an empty one is migrated on first use.
    options.pop("create", None)
    return PostgresStore(location, **options)
