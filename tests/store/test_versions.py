"""Files from other versions: a newer schema is refused untouched; the first schema is upgraded
with every row intact and its rollups backfilled.

``tests/fixtures/first_schema.sql`` is a dump of a file that only the first migration
(m001_initial) was applied to, with a few Query LLMs, users, token hashes and 50 usage
events. `make_first_schema` below made it; to remake it (only ever needed if the
fixture is lost: the first migration never changes), run
``.venv/bin/python tests/store/test_versions.py``.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from sqlite_utils import Database

HERE = Path(__file__).resolve().parents[1]  # tests/
sys.path[:0] = [str(HERE.parent)]  # the checkout's `registry`, when run as a script

import registry  # noqa: E402
from registry import times  # noqa: E402
from registry.registry import Registry  # noqa: E402
from registry.store.sqlite import migration_set  # noqa: E402
from tests.support.data import AMOUNTS, COUNTERS  # noqa: E402
from tests.support.workers import all_migrations, digests, unchanged  # noqa: E402

MIGRATION_SET = migration_set().name

FIRST_SCHEMA = HERE / "fixtures" / "first_schema.sql"
QLLM = Path(sys.executable).with_name("qllm")
BASE = times.parse("2026-11-01T00:00:00Z")
HOUR = 3_600_000_000
NANO = 10**9
# The Query LLMs of the fixture, each with the user who registered it.
BODIES: list[tuple[dict[str, Any], str | None]] = [
    ({"id": "openai/gpt-4o", "mode": "generate", "weight": {"type": "static", "weight": 1}}, None),
    (
        {
            "id": "anthropic/claude-sonnet",
            "mode": "select_thinking_logprobs",
            "select_top_logprobs": 5,
            "temperature": 0.3,
            "weight": {
                "type": "training_table",
                "base_weight": 1,
                "min_weight": 0.5,
                "max_weight": 2,
            },
        },
        "alice",
    ),
    (
        {
            "id": "meta/llama-4",
            "mode": "select_non_thinking",
            "provider": {"order": ["b", "a"], "quantizations": ["fp8", "int4"]},
            "stop": ["y", "x"],
            "weight": {"type": "static", "weight": 0.25},
        },
        "bob",
    ),
    (
        {
            "id": "mistral/large",
            "mode": "generate",
            "reasoning": {"effort": "high"},
            "logit_bias": {"42": 5, "7": 0},
            "weight": {"type": "static", "weight": 3},
        },
        "alice",
    ),
]
USERS = ("alice", "bob", "carol")


def secret(label: str) -> str:
    """A fixed token secret for the fixture (only its SHA-256 is in the dump)."""
    return "qllm_" + hashlib.sha256(f"first-schema {label}".encode()).hexdigest()[:43]


# Tokens of the fixture: (user, secret, revoked).
TOKENS = [
    ("alice", secret("alice"), False),
    ("bob", secret("bob"), False),
    ("bob", secret("bob, old"), True),
    ("carol", secret("carol"), False),
]
WINDOWS: list[tuple[str | None, str | None]] = [
    (None, None),
    ("2026-11-01", "2026-11-02"),  # whole hours only
    ("2026-11-01T03:17:00Z", "2026-11-02T22:01:30.5Z"),  # partial hours at both ends
    ("2026-11-02T05:10:00Z", "2026-11-02T05:50:00Z"),  # inside one hour
    (None, "2026-11-02T12:30:00Z"),
    ("2026-11-03T07:45:00+02:00", None),
    ("2026-11-05", "2026-11-06"),  # no events
]


def make_first_schema(path: Path) -> None:
    """Create a file at the first schema (m001_initial only) and fill it, reproducibly."""
    db = Database(path)
    cast(Any, migration_set()).apply(db, stop_before=all_migrations()[1])
    db.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("UPDATE _sqlite_migrations SET applied_at = '2026-10-01 00:00:00.000000+00:00'")
    for number, user in enumerate(USERS):
        conn.execute("INSERT INTO users VALUES (?, ?)", [user, BASE - HOUR * (100 - number)])
    for number, (user, token, revoked) in enumerate(TOKENS):
        created = BASE - HOUR * (90 - number)
        conn.execute(
            "INSERT INTO tokens VALUES (?, ?, ?, ?)",
            [
                hashlib.sha256(token.encode()).hexdigest(),
                user,
                created,
                created if revoked else None,
            ],
        )
    names = []
    for number, (raw, owner) in enumerate(BODIES):
        llm = registry.validate(raw)
        names.append(llm.name)
        conn.execute(
            "INSERT INTO query_llms VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                llm.name,
                llm.training_table_name,
                llm.canonical.decode(),
                llm.id,
                llm.mode,
                llm.weight.type,
                BASE - HOUR * (50 - number) + 123_456,
                owner,
            ],
        )
    rng = random.Random(20261101)
    for number in range(50):
        amounts = [rng.randrange(5000), rng.randrange(5000), rng.randrange(3 * NANO)]
        amounts += [rng.randrange(100), rng.randrange(5000), rng.randrange(NANO)]
        conn.execute(
            "INSERT INTO usage_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                number + 1,
                names[number % 3 if number % 7 else 3],
                rng.choice([None, "alice", "bob"]),
                BASE + rng.randrange(72 * HOUR),
                f"req-{number}" if rng.random() < 0.5 else None,
                *amounts,
            ],
        )
    conn.execute("COMMIT")
    conn.close()


def dump(path: Path) -> str:
    """The file as SQL text (``sqlite3`` iterdump)."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump()) + "\n"
    finally:
        conn.close()


def load(sql: str, path: Path) -> None:
    """A new file made from SQL text."""
    conn = sqlite3.connect(path)
    conn.executescript(sql)
    conn.close()


def contents(path: Path, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables``, sorted."""
    conn = sqlite3.connect(path)
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def schema(path: Path) -> list[tuple[str, str, str]]:
    """Tables, indexes and views of the file: type, name, SQL."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY 1, 2").fetchall()
    finally:
        conn.close()


def expected(
    events: list[tuple[Any, ...]],
    name: str,
    user: str | None,
    window: tuple[str | None, str | None],
) -> dict[str, Any]:
    """Requests and sums of ``name``'s events in ``window`` (``user``'s only, if given)."""
    low = None if window[0] is None else times.parse(window[0])
    high = None if window[1] is None else times.parse(window[1])
    result: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    for _, event_name, event_user, at, _, *amounts in events:
        if event_name != name or (user is not None and event_user != user):
            continue
        if (low is not None and at < low) or (high is not None and at >= high):
            continue
        result["requests"] += 1
        for key, value in zip(AMOUNTS, amounts, strict=True):
            result[key] += value
    for key in ("chat_cost", "embedding_cost"):
        result[key] = Decimal(result[key]) / NANO
    return result


# --- a newer schema -----------------------------------------------------------------------------


def future_file(path: Path, migration_set_name: str = MIGRATION_SET) -> None:
    """A registry file on which a newer version applied a migration this one does not know."""
    with Registry(path) as reg:
        reg.register(registry.validate(BODIES[0][0]))
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
        " VALUES (?, 'm999_future', '2030-01-01 00:00:00.000000+00:00')",
        [migration_set_name],
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("readonly", [False, True], ids=["read-write", "readonly"])
def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path, readonly: bool) -> None:
    """A file with an unknown migration raises SchemaTooNewError and keeps every byte."""
    db = tmp_path / "registry.db"
    future_file(db)
    before = digests(db)
    files = sorted(tmp_path.iterdir())
    with pytest.raises(registry.SchemaTooNewError) as caught:
        Registry(db, readonly=readonly)
    assert caught.value.unknown == ["m999_future"]
    assert "newer" in str(caught.value)
    assert unchanged(db, before)
    if not readonly:
        assert sorted(tmp_path.iterdir()) == files  # not even a -wal or -shm left behind


def test_newer_schema_open_elsewhere_is_left_untouched(tmp_path: Path) -> None:
    """Refused while a newer version has the file open: the file and its WAL keep every byte."""
    db = tmp_path / "registry.db"
    future_file(db)
    newer = sqlite3.connect(db, isolation_level=None)  # the newer version, still running
    newer.execute("PRAGMA wal_autocheckpoint = 0")
    newer.execute("INSERT INTO users VALUES ('newer', 1)")  # its last write is in the WAL only
    before = digests(db)
    assert "-wal" in before
    for readonly in (False, True):
        with pytest.raises(registry.SchemaTooNewError):
            Registry(db, readonly=readonly)
        assert digests(db) == before
    newer.close()


def test_newer_schema_through_the_cli_exits_5(tmp_path: Path) -> None:
    """`qllm count` on a newer file fails with exit status 5, a one-line reason, no change."""
    db = tmp_path / "registry.db"
    future_file(db)
    before = digests(db)
    for readonly in ([], ["--readonly"]):
        result = subprocess.run(
            [str(QLLM), "count", "--db", str(db), *readonly],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 5
        assert "m999_future" in result.stderr
        assert "Traceback" not in result.stderr
    assert unchanged(db, before)


def test_unknown_migration_of_another_set_is_ignored(tmp_path: Path) -> None:
    """A migration of some other migration set in the same file does not make it "newer"."""
    db = tmp_path / "registry.db"
    future_file(db, migration_set_name="some-other-app")
    with Registry(db) as reg:
        assert reg.count() == 1


# --- the first schema --------------------------------------------------------------------------


TABLES = ("_sqlite_migrations", "users", "tokens", "query_llms", "usage_events")


def test_fixture_is_what_the_generator_makes(tmp_path: Path) -> None:
    """The committed dump holds exactly what `make_first_schema` makes: one migration, all rows."""
    made, loaded = tmp_path / "made.db", tmp_path / "loaded.db"
    make_first_schema(made)
    load(FIRST_SCHEMA.read_text(encoding="utf-8"), loaded)
    assert contents(loaded, TABLES) == contents(made, TABLES)
    assert schema(loaded) == schema(made)
    applied = contents(loaded, ("_sqlite_migrations",))["_sqlite_migrations"]
    assert [row[1:3] for row in applied] == [(MIGRATION_SET, "m001_initial")]
    counts = {table: len(rows) for table, rows in contents(loaded, TABLES).items()}
    assert counts == {
        "_sqlite_migrations": 1,
        "users": 3,
        "tokens": 4,
        "query_llms": 4,
        "usage_events": 50,
    }


@pytest.fixture
def first(tmp_path: Path) -> Path:
    """A file loaded from the first-schema dump (not yet opened by Registry)."""
    path = tmp_path / "first.db"
    load(FIRST_SCHEMA.read_text(encoding="utf-8"), path)
    return path


def test_first_schema_upgrade_keeps_every_row(first: Path) -> None:
    """Opening a first-schema file applies the later migrations and changes no stored row."""
    before = contents(first, TABLES)
    with Registry(first) as reg:
        for raw, user in BODIES:
            llm = registry.validate(raw)
            assert reg.get(llm.name) == registry.dump(llm)
            got = reg.get(llm.name, metadata=True)
            assert got["user_id"] == user
        for row in before["query_llms"]:
            assert reg.get(row[0], metadata=True)["created"] == times.render(row[6])
    after = contents(first, TABLES)
    names = all_migrations()
    assert [row[1:3] for row in after["_sqlite_migrations"]] == [(MIGRATION_SET, n) for n in names]
    assert after["_sqlite_migrations"][0] == before["_sqlite_migrations"][0]
    for table in TABLES[1:]:
        if table == "usage_events":  # m003 added query_model: None for every older event
            assert {row[-1] for row in after[table]} == {None}
            after[table] = [row[:-1] for row in after[table]]
        assert after[table] == before[table], table


def test_first_schema_tokens_still_authenticate(first: Path) -> None:
    """The stored token hashes survive the upgrade: tokens still work, the revoked one does not."""
    name = registry.validate(BODIES[1][0]).name
    rows = contents(first, ("query_llms", "usage_events"))
    with Registry(first) as reg:
        for user, token, revoked in TOKENS:
            if revoked:
                with pytest.raises(registry.AuthenticationError):
                    reg.get(name, token=token)
                continue
            # Theirs: registered by them, or used by them.
            mine = {row[0] for row in rows["query_llms"] if row[7] == user}
            mine |= {row[1] for row in rows["usage_events"] if row[2] == user}
            assert sorted(reg.list(me=True, token=token)) == sorted(mine)
            assert reg.count(me=True, token=token) == len(mine)
        assert reg.list(me=True, token=TOKENS[3][1]) == []  # carol: no Query LLM, no usage
        with pytest.raises(registry.AuthenticationError):
            reg.get(name, token=secret("nobody"))


def test_first_schema_rollups_are_backfilled(first: Path) -> None:
    """After the upgrade, statistics over every window equal brute-force sums of the dump's rows."""
    events = contents(first, ("usage_events",))["usage_events"]
    tokens = {user: token for user, token, revoked in TOKENS if not revoked}
    names = [registry.validate(raw).name for raw, _ in BODIES]
    with Registry(first) as reg:
        for name in names:
            for window in WINDOWS:
                got = reg.get(name, metadata=True, start=window[0], end=window[1])
                assert {k: got[k] for k in COUNTERS} == expected(events, name, None, window), (
                    name,
                    window,
                )
                for user in ("alice", "bob"):
                    mine = reg.get(
                        name,
                        metadata=True,
                        me=True,
                        token=tokens[user],
                        start=window[0],
                        end=window[1],
                    )
                    assert {k: mine[k] for k in COUNTERS} == expected(events, name, user, window), (
                        name,
                        user,
                        window,
                    )
        for window in WINDOWS:  # list by usage over a window, ties by name: brute force too
            by_requests = sorted(
                names, key=lambda n: (-expected(events, n, None, window)["requests"], n)
            )
            assert reg.list(sort="requests", start=window[0], end=window[1]) == by_requests
        assert sum(reg.get(n, metadata=True)["requests"] for n in names) == 50
        backfilled = contents(first, ("usage_hourly",))
        reg.rebuild_rollups()
    assert contents(first, ("usage_hourly",)) == backfilled


def test_first_schema_opened_readonly_is_refused_untouched(first: Path) -> None:
    """A readonly open cannot migrate: it is refused and the file keeps every byte."""
    before = digests(first)
    with pytest.raises(registry.StorageError):
        Registry(first, readonly=True)
    assert unchanged(first, before)


if __name__ == "__main__":
    made = FIRST_SCHEMA.with_suffix(".db.tmp")
    made.unlink(missing_ok=True)
    make_first_schema(made)
    FIRST_SCHEMA.write_text(dump(made), encoding="utf-8")
    made.unlink()
    print(f"wrote {FIRST_SCHEMA}")
