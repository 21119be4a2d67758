"""m004 on a database that m003 left: every row and answer kept, the rollups unchecked,
the events still checked (a real PostgreSQL)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from registry.registry import Registry
from tests.support.pg import Postgres, import_psycopg

psycopg = import_psycopg()

from registry.store.postgres import migrate  # noqa: E402

TABLES = ("users", "query_llms", "usage_events", "usage_hourly", "usage_totals")
START = "2026-11-01T00:00:00Z"
WINDOW = ("2026-11-01T01:30:00Z", "2026-11-02T00:00:00Z")


def foreign_keys(conn: Any) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f'"
    )
    return set(rows.fetchall())


def answers(reg: Any, names: list[str]) -> list[Any]:
    """What users see: statistics all-time and in a window, a list by cost, a series."""
    return [
        [reg.get(name, metadata=True) for name in names],
        [reg.get(name, metadata=True, start=WINDOW[0], end=WINDOW[1]) for name in names],
        reg.list(sort="cost"),
        reg.usage_series(START, "2026-11-03T00:00:00Z", "day", ["name"]),
    ]


def test_m004_on_a_m003_database_keeps_rows_and_answers(postgres: Postgres, tmp_path: Path) -> None:
    # The rows a m003 registry holds, made by the library on a file: bodies, events
    # and rollups as the library writes them.
    with Registry(tmp_path / "r.db") as source:
        token = source.create_token("alice")
        weight = {"type": "static", "weight": 1}
        bodies = [{"id": f"up/{i}", "mode": "generate", "weight": weight} for i in range(3)]
        names = [source.register(body).name for body in bodies]
        events = [
            {
                "name": names[i % 3],
                "at": f"2026-11-0{1 + i % 2}T0{i % 10}:1{i % 6}:00Z",
                "request_id": f"r{i}",
                "chat_prompt_tokens": i,
                "chat_cost": f"0.00{i}",
            }
            for i in range(40)
        ]
        source.record_usage_many(events[:20], token=token)
        source.record_usage_many(events[20:])
        expected = answers(source, names)
    with contextlib.closing(sqlite3.connect(tmp_path / "r.db")) as db:
        copied = {table: db.execute(f"SELECT * FROM {table}").fetchall() for table in TABLES}
    location = postgres.dsn(postgres.create(migrated=False))
    with psycopg.connect(location, autocommit=True) as conn:
        assert migrate.migrate(conn, "m003", migrate.migration_set()[:3])[-1] == (
            "m003_query_models"
        )
        with conn.transaction():
            for table, rows in copied.items():
                identity = " OVERRIDING SYSTEM VALUE" if table == "usage_events" else ""
                for row in rows:
                    marks = ", ".join(["%s"] * len(row))
                    conn.execute(f"INSERT INTO {table}{identity} VALUES ({marks})", row)
            # ids given: the identity goes on after them
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('usage_events', 'id'), MAX(id))"
                " FROM usage_events"
            )
        before = foreign_keys(conn)
    assert {("usage_hourly", "usage_hourly_name_fkey")} <= before

    with Registry(location) as reg:  # opening applies m004
        assert answers(reg, names) == expected
        with psycopg.connect(location, autocommit=True) as conn:
            after = foreign_keys(conn)
            applied = [n for (n,) in conn.execute("SELECT name FROM _qllm_migrations")]
        assert "m004_rollups_without_foreign_keys" in applied
        assert before - after == {
            ("usage_hourly", "usage_hourly_name_fkey"),
            ("usage_totals", "usage_totals_name_fkey"),
        }
        # The events keep theirs: a name no Query LLM has is refused by the database.
        with (
            psycopg.connect(location, autocommit=True) as conn,
            contextlib.suppress(psycopg.errors.ForeignKeyViolation),
        ):
            conn.execute("INSERT INTO usage_events (name, at) VALUES ('nobody', 0)")
            raise AssertionError("an event of an unknown Query LLM was stored")
        # Writes after the upgrade add up, and the rollups still equal a rebuild.
        more = [{**e, "request_id": f"again-{i}"} for i, e in enumerate(events)]
        assert reg.record_usage_many(more) == len(more)
        doubled = answers(reg, names)
        counts = reg.rebuild_rollups()
        assert answers(reg, names) == doubled
        # 3 Query LLMs, each with events of alice's and without a user
        assert counts["usage_totals"] == 6
    assert [s["requests"] for s in doubled[0]] == [2 * s["requests"] for s in expected[0]]
