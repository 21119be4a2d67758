"""The schema: migrations on a fresh file and on reopening, a snapshot, the sqlite-utils CLI,
the views, and rollups rebuilt from the events."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

import registry
from registry.registry import Registry
from registry.store.sqlite import migration_set
from tests.support.data import ROOT, body

MIGRATION_SET = migration_set().name

SNAPSHOT = ROOT / "tests" / "fixtures" / "schema.sql"
SQLITE_UTILS = Path(sys.executable).with_name("sqlite-utils")
MIGRATIONS = [
    "m001_initial",
    "m002_rollups",
    "m003_query_models",
    "m005_training_tables",
    "m006_exact_views",
]
# Set QLLM_UPDATE_SCHEMA=1 to rewrite the snapshot after adding a migration, then review it.
UPDATE = os.environ.get("QLLM_UPDATE_SCHEMA") == "1"


def schema(path: Path) -> str:
    """The file's tables, indexes and views, one normalized statement a line, sorted.

    White space is collapsed; the tables sqlite-utils keeps for itself and the
    indexes SQLite makes on its own (no SQL) are left out.
    """
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master"
            " WHERE sql IS NOT NULL AND tbl_name NOT LIKE '\\_sqlite\\_%' ESCAPE '\\'"
            " AND name NOT LIKE 'sqlite_%'"
            " ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()
    return "".join(" ".join(sql.split()) + ";\n" for _, _, sql in rows)


def applied(path: Path) -> list[tuple[str, str, str]]:
    """The rows of ``_sqlite_migrations``: set, name, applied_at, in order."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT migration_set, name, applied_at FROM _sqlite_migrations ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def sqlite_utils_migrate(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``sqlite-utils migrate PATH migrations/`` in a real process."""
    return subprocess.run(
        [str(SQLITE_UTILS), "migrate", str(path), str(ROOT / "migrations"), *extra],
        capture_output=True,
        text=True,
        check=False,
    )


# --- applying -----------------------------------------------------------------------------------


def test_fresh_file_has_exactly_the_known_migrations(db_path: Path) -> None:
    """A new registry file records exactly the known migrations of the qllm set, in order."""
    with Registry(db_path):
        pass
    rows = applied(db_path)
    assert [(s, n) for s, n, _ in rows] == [(MIGRATION_SET, m) for m in MIGRATIONS]
    assert MIGRATION_SET == "qllm"
    assert [m.name for m in migration_set().pending(Database(memory=True))] == MIGRATIONS


def test_reopening_applies_nothing(db_path: Path) -> None:
    """Opening an up-to-date file again applies nothing: rows, applied_at and schema unchanged."""
    with Registry(db_path) as reg:
        reg.register(body())
    before, shape = applied(db_path), schema(db_path)
    for _ in range(2):
        with Registry(db_path) as reg:
            assert migration_set().pending(reg.db) == []
            assert reg.count() == 1
    assert applied(db_path) == before
    assert schema(db_path) == shape


def test_schema_matches_the_snapshot(db_path: Path) -> None:
    """The schema a fresh registry creates is exactly tests/fixtures/schema.sql."""
    with Registry(db_path):
        pass
    if UPDATE:
        SNAPSHOT.write_text(schema(db_path), encoding="utf-8")
    assert schema(db_path) == SNAPSHOT.read_text(encoding="utf-8")


def test_snapshot_lists_every_object() -> None:
    """The snapshot holds the eleven tables, thirteen indexes and five views of the schema."""
    lines = SNAPSHOT.read_text(encoding="utf-8").splitlines()
    heads = sorted(" ".join(line.split()[:3]).rstrip("(") for line in lines)
    assert heads == [
        "CREATE INDEX completion_marks_by_table",
        "CREATE INDEX query_llms_by_created",
        "CREATE INDEX query_llms_by_training_table",
        "CREATE INDEX query_llms_by_user",
        "CREATE INDEX query_model_members_by_member",
        "CREATE INDEX query_models_by_created",
        "CREATE INDEX query_models_by_training_table",
        "CREATE INDEX query_models_by_user",
        "CREATE INDEX usage_events_by_name_at",
        "CREATE INDEX usage_events_by_query_model_at",
        "CREATE INDEX usage_hourly_by_query_model",
        "CREATE INDEX usage_totals_by_query_model",
        "CREATE INDEX usage_totals_by_user",
        "CREATE TABLE completion_marks",
        "CREATE TABLE completions",
        "CREATE TABLE query_llms",
        "CREATE TABLE query_model_members",
        "CREATE TABLE query_models",
        "CREATE TABLE tokens",
        "CREATE TABLE training_tables",
        "CREATE TABLE usage_events",
        "CREATE TABLE usage_hourly",
        "CREATE TABLE usage_totals",
        "CREATE TABLE users",
        "CREATE VIEW query_llm_stats",
        "CREATE VIEW query_model_member_llms",
        "CREATE VIEW query_model_stats",
        "CREATE VIEW usage_daily",
        "CREATE VIEW usage_events_rfc3339",
    ]


def test_sqlite_utils_cli_migrates_a_fresh_file(tmp_path: Path) -> None:
    """``sqlite-utils migrate FILE migrations/`` builds the same schema; Registry adds nothing."""
    path = tmp_path / "by-cli.db"
    done = sqlite_utils_migrate(path)
    assert done.returncode == 0, done.stderr
    assert schema(path) == SNAPSHOT.read_text(encoding="utf-8")
    rows = applied(path)
    assert [(s, n) for s, n, _ in rows] == [(MIGRATION_SET, m) for m in MIGRATIONS]
    with Registry(path) as reg:
        name = reg.register(body()).name
        reg.record_usage(name, chat_cost="0.5")
        assert reg.get(name, metadata=True)["chat_cost"] == Decimal("0.5")
    assert applied(path) == rows


def test_sqlite_utils_cli_on_a_registry_file_is_a_no_op(db_path: Path) -> None:
    """Running the sqlite-utils CLI on a file Registry made applies nothing more."""
    with Registry(db_path):
        pass
    before = applied(db_path)
    done = sqlite_utils_migrate(db_path)
    assert done.returncode == 0, done.stderr
    assert applied(db_path) == before
    listed = sqlite_utils_migrate(db_path, "--list")
    assert listed.returncode == 0, listed.stderr
    assert "m001_initial" in listed.stdout
    assert "m002_rollups" in listed.stdout


def test_m002_rolls_up_events_recorded_before_it(db_path: Path) -> None:
    """A file at m001 with events gets rollups for them when Registry applies m002."""
    db = Database(db_path)
    migration_set().apply(db, stop_before="m002_rollups")
    name = registry.validate(body()).name
    db.execute(
        "INSERT INTO query_llms (name, body, model, mode, weight_type, created)"
        " VALUES (?, ?, 'openai/gpt-4o', 'generate', 'static', 0)",
        [name, registry.validate(body()).canonical.decode()],
    )
    hour = 3_600_000_000
    for at, cost in [(5 * hour, 1), (5 * hour + 1, 2), (6 * hour, 4)]:
        db.execute(
            "INSERT INTO usage_events (name, at, chat_cost) VALUES (?, ?, ?)", [name, at, cost]
        )
    db.conn.commit()
    db.close()
    with Registry(db_path) as reg:
        rollups = reg.db.execute(
            "SELECT hour, user_id, requests, chat_cost FROM usage_hourly ORDER BY hour"
        ).fetchall()
        assert rollups == [(5 * hour, "", 2, 3), (6 * hour, "", 1, 4)]
        totals = reg.db.execute("SELECT name, user_id, requests, chat_cost FROM usage_totals")
        assert totals.fetchall() == [(name, "", 3, 7)]
        got = reg.get(name, metadata=True, start="1970-01-01T05:00:00Z", end="1970-01-01T07:00:00Z")
        assert got["requests"] == 3
        assert got["chat_cost"] == Decimal("7E-9")
        assert reg.get(name, metadata=True)["chat_cost"] == Decimal("7E-9")
    assert [n for _, n, _ in applied(db_path)] == MIGRATIONS


def test_newer_schema_is_refused_untouched(db_path: Path) -> None:
    """A file with a migration this version does not know raises SchemaTooNewError, unchanged."""
    with Registry(db_path):
        pass
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
        " VALUES ('qllm', 'm999_future', '2030-01-01')"
    )
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(registry.SchemaTooNewError) as caught:
        Registry(db_path)
    assert caught.value.unknown == ["m999_future"]
    assert db_path.read_bytes() == before


# --- views ----------------------------------------------------------------------------------------


def rows_of(reg: Registry, sql: str) -> list[dict[str, Any]]:
    """The rows of a query, as dicts."""
    cursor = reg.db.execute(sql)
    columns = [c[0] for c in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def test_usage_events_rfc3339_view(reg: Registry) -> None:
    """usage_events_rfc3339 shows times as RFC 3339 with microseconds and costs as credits."""
    token = reg.create_token("alice")
    name = reg.register(body()).name
    reg.record_usage(
        name,
        at="2026-11-25T09:48:53.12+01:00",
        request_id="r1",
        token=token,
        chat_prompt_tokens=3,
        chat_cost="0.000000007",
        embedding_cost="2.5",
    )
    reg.record_usage(name, at="1970-01-01T00:00:00Z")
    assert rows_of(reg, "SELECT * FROM usage_events_rfc3339 ORDER BY id") == [
        {
            "id": 1,
            "name": name,
            "user_id": "alice",
            "at": "2026-11-25T08:48:53.120000Z",
            "request_id": "r1",
            "chat_completion_tokens": 0,
            "chat_prompt_tokens": 3,
            "chat_cost": 7e-9,
            "embedding_completion_tokens": 0,
            "embedding_prompt_tokens": 0,
            "embedding_cost": 2.5,
            "query_model": None,
            "chat_cost_nano": 7,
            "embedding_cost_nano": 2_500_000_000,
        },
        {
            "id": 2,
            "name": name,
            "user_id": None,
            "at": "1970-01-01T00:00:00.000000Z",
            "request_id": None,
            "chat_completion_tokens": 0,
            "chat_prompt_tokens": 0,
            "chat_cost": 0.0,
            "embedding_completion_tokens": 0,
            "embedding_prompt_tokens": 0,
            "embedding_cost": 0.0,
            "query_model": None,
            "chat_cost_nano": 0,
            "embedding_cost_nano": 0,
        },
    ]


def test_query_llm_stats_view(reg: Registry) -> None:
    """query_llm_stats gives every Query LLM its all-time totals and RFC 3339 created."""
    token = reg.create_token("alice")
    used = reg.register(
        body(weight={"type": "training_table", "base_weight": 1, "min_weight": 0, "max_weight": 2}),
        token=token,
    )
    unused = reg.register(body(id="other/model", mode="select_thinking"))
    reg.record_usage_many(
        [
            {"name": used.name, "at": f"2026-11-01T{h:02d}:30:00Z", "chat_cost": "0.1",
             "chat_prompt_tokens": h, "embedding_completion_tokens": 1}
            for h in range(10)
        ]
    )  # fmt: skip
    stats = {row["name"]: row for row in rows_of(reg, "SELECT * FROM query_llm_stats")}
    assert stats[used.name] == {
        "name": used.name,
        "model": "openai/gpt-4o",
        "mode": "generate",
        "weight_type": "training_table",
        "training_table_name": used.training_table_name,
        "user_id": "alice",
        "created": reg.get(used.name, metadata=True)["created"],
        "requests": 10,
        "chat_completion_tokens": 0,
        "chat_prompt_tokens": 45,
        "chat_cost": pytest.approx(1.0, abs=1e-12),
        "embedding_completion_tokens": 10,
        "embedding_prompt_tokens": 0,
        "embedding_cost": 0.0,
        "chat_cost_nano": 1_000_000_000,  # exactly one credit, where the float is not
        "embedding_cost_nano": 0,
    }
    assert stats[unused.name]["requests"] == 0
    assert stats[unused.name]["mode"] == "select_thinking"
    assert stats[unused.name]["training_table_name"] is None
    assert stats[unused.name]["created"] == reg.get(unused.name, metadata=True)["created"]


# --- rollups ------------------------------------------------------------------------------------


def rollups(reg: Registry) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of both rollups, usage_hourly and usage_totals, sorted."""
    return {
        table: sorted(reg.db.execute(f"SELECT * FROM {table}").fetchall())
        for table in ("usage_hourly", "usage_totals")
    }


def test_rebuilt_rollups_equal_incremental_ones(reg: Registry) -> None:
    """rebuild_rollups() recomputes exactly the rows that recording maintained step by step."""
    alice = reg.create_token("alice")
    names = [reg.register(body(id=f"model/{i}")).name for i in range(3)]
    for i in range(300):
        token = alice if i % 2 else None
        if i % 50 == 0:  # single events too, some on an hour boundary
            reg.record_usage(names[0], at="2026-11-01T00:00:00Z", token=token, chat_cost=i)
            continue
        event = {
            "name": names[i % 3],
            "at": f"2026-11-01T{(i * 7) % 24:02d}:{(i * 13) % 60:02d}:00Z",
            "chat_prompt_tokens": i,
            "chat_cost": f"0.{i:03d}",
            "embedding_cost": "0.000000001",
        }
        reg.record_usage_many([event, {**event, "chat_prompt_tokens": 1}], token=token)
    incremental = rollups(reg)
    assert len(incremental["usage_hourly"]) > 20
    assert len(incremental["usage_totals"]) == 6  # three Query LLMs, alice and no one
    counts = {table: len(rows) for table, rows in incremental.items()}
    assert reg.rebuild_rollups() == counts
    assert rollups(reg) == incremental


def test_rebuild_repairs_damaged_rollups(reg: Registry) -> None:
    """After the rollups are damaged, rebuild_rollups() restores the right answers."""
    name = reg.register(body()).name
    reg.record_usage_many(
        [
            {"name": name, "at": f"2026-11-01T{h:02d}:00:00Z", "chat_prompt_tokens": 1}
            for h in range(5)
        ]
    )
    start, end = "2026-11-01T01:00:00Z", "2026-11-01T04:00:00Z"  # whole hours: rollups only
    assert reg.get(name, metadata=True, start=start, end=end)["chat_prompt_tokens"] == 3
    assert reg.get(name, metadata=True)["chat_prompt_tokens"] == 5
    reg.db.execute("UPDATE usage_hourly SET chat_prompt_tokens = 100")
    reg.db.execute("UPDATE usage_totals SET chat_prompt_tokens = 1000")
    assert reg.get(name, metadata=True, start=start, end=end)["chat_prompt_tokens"] == 300
    assert reg.get(name, metadata=True)["chat_prompt_tokens"] == 1000
    assert reg.rebuild_rollups() == {"usage_hourly": 5, "usage_totals": 1}
    assert reg.get(name, metadata=True, start=start, end=end)["chat_prompt_tokens"] == 3
    assert reg.get(name, metadata=True)["chat_prompt_tokens"] == 5
