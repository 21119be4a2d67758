"""PostgreSQL migrations: numbered ``.sql`` files, applied in order, in one transaction.

Only into a registry or an empty database: one that holds other tables and no
``_qllm_migrations`` belongs to something else and is refused untouched
(`identify`, as the SQLite backend refuses another application's file).

``migrations/postgres/0001_initial.sql`` is the migration ``m001_initial``:
the same names as the SQLite migration set's steps, so that both backends
speak of the same schema versions. Applied names are recorded in
``_qllm_migrations``. Every pending file is applied in ONE transaction under
an advisory lock: several processes opening a new database at once take
turns, and the later ones find nothing pending; a failing file leaves the
database as it was. A database that has a migration this version does not
know was migrated by a newer version and is refused, untouched. A shipped
file is never edited, only followed by a new one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import psycopg
from attrs import frozen

from registry import times
from registry.errors import NotARegistryError, SchemaTooNewError, StorageError
from registry.store import migrations_folder

# The advisory lock that makes migrations take turns: b"qllm" as a number.
LOCK = int.from_bytes(b"qllm", "big")
TABLE = "_qllm_migrations"
_FILE = re.compile(r"(?P<number>[0-9]{4})_(?P<word>[a-z0-9_]+)\.sql")


@frozen
class Migration:
    name: str  # as in the SQLite migration set: m001_initial
    sql: str


def directory() -> Path:
    """The PostgreSQL migration files (``postgres/`` of `registry.store.migrations_folder`)."""
    return migrations_folder() / "postgres"


def load(folder: Path) -> tuple[Migration, ...]:
    """The migrations in ``folder``, in order; their numbers must run 1, 2, 3..."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.fullmatch(path.name)
        if match is None:
            raise StorageError(f"{path.name}: not a migration name (0001_word.sql)")
        found.append((int(match["number"]), match["word"], path))
    numbers = [number for number, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise StorageError(f"PostgreSQL migrations are not numbered 1 to {len(found)}: {numbers}")
    return tuple(
        Migration(f"m{number:03d}_{word}", path.read_text(encoding="utf-8"))
        for number, word, path in found
    )


@functools.cache
def migration_set() -> tuple[Migration, ...]:
    """The migrations this version of qllm has, in order."""
    return load(directory())


def applied(conn: psycopg.Connection[tuple[object, ...]]) -> list[str] | None:
    """The names recorded in ``conn``'s database; None if it has never been migrated."""
    (table,) = _one(conn.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE]).fetchone())
    if not table:
        return None
    return [str(name) for (name,) in conn.execute(f"SELECT name FROM {TABLE} ORDER BY name")]


# What a database holds besides PostgreSQL's own catalogs (and other sessions' temporary
# tables, qllm's staging tables among them): tables, views and sequences of any schema.
_OTHERS = r"""
    SELECT n.nspname || '.' || c.relname FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
        AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
    ORDER BY 1 LIMIT 3"""


def identify(conn: psycopg.Connection[tuple[object, ...]], where: str) -> bool:
    """Whether the database is a registry (our migrations table is there); False for an
    empty one, which may become one. A database holding anything else belongs to something
    else: `NotARegistryError`, and nothing was written (this only reads)."""
    if applied(conn) is not None:
        return True
    found = [str(name) for (name,) in conn.execute(_OTHERS)]
    if found:
        shown = ", ".join(found[:2]) + (", ..." if len(found) > 2 else "")
        raise NotARegistryError(where, f"it holds other tables ({shown}) and no {TABLE}")
    return False


def pending(
    conn: psycopg.Connection[tuple[object, ...]],
    where: str,
    migrations: Sequence[Migration] | None = None,
) -> list[Migration]:
    """The migrations not applied yet; `SchemaTooNewError` if the database has unknown ones."""
    migrations = migration_set() if migrations is None else migrations
    done = set(applied(conn) or ())
    unknown = done - {m.name for m in migrations}
    if unknown:
        raise SchemaTooNewError(where, sorted(unknown))
    return [m for m in migrations if m.name not in done]


def migrate(
    conn: psycopg.Connection[tuple[object, ...]],
    where: str,
    migrations: Sequence[Migration] | None = None,
) -> list[str]:
    """Apply the pending migrations on ``conn`` (in autocommit mode); the names applied.

    ``where`` names the database in errors (no password). A database that holds
    anything but a registry is refused before anything is written (`identify`).
    """
    identify(conn, where)
    if not pending(conn, where, migrations):  # the usual case: no lock taken
        return []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK])
        # Under the lock: whoever held it before may have made it a registry, or (if it
        # was someone else) put other tables in it.
        identify(conn, where)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE}"
            ' (name TEXT COLLATE "C" PRIMARY KEY, applied_at BIGINT NOT NULL)'
        )
        # Under the lock: whoever held it before may have applied some or all.
        todo = pending(conn, where, migrations)
        now = times.now()
        for migration in todo:
            # No parameters: the file goes as one simple query, all its statements.
            conn.execute(migration.sql.encode())
            conn.execute(
                f"INSERT INTO {TABLE} (name, applied_at) VALUES (%s, %s)", [migration.name, now]
            )
    return [m.name for m in todo]


def _one(row: tuple[object, ...] | None) -> tuple[object, ...]:
    assert row is not None  # an aggregate-free SELECT of constants returns one row
    return row
