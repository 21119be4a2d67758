"""A process killed (SIGKILL) while recording a big batch leaves all of it or none of it."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from registry.registry import Registry
from tests.support.data import COUNTERS, ROOT, body
from tests.support.workers import (
    all_migrations,
    event,
    integrity,
    rollups_agree,
    row_counts,
    run,
    spawn,
    sums,
)

TOTAL = 120_000  # events in each killed batch, from a generator
# Where the batch's own process kills itself: at the first event (nothing inserted yet),
# half-way (60,000 events inserted, uncommitted, partly spilled to the WAL), after the
# last event (everything inserted, COMMIT not reached), and after the COMMIT (before close).
SELF_KILLS: list[Any] = [0, TOTAL // 2, "end", "committed"]
OUTSIDE_KILLS = [0.05, 0.25, 0.6]  # seconds after the batch started, from the test process
RETRIED = 30_000  # events in each batch of the retry test

pytestmark = pytest.mark.slow


def committed(db: Path, tag: str) -> int:
    """How many events of the batch ``tag`` are in the file, read through a fresh connection."""
    conn = sqlite3.connect(db)
    try:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM usage_events WHERE request_id LIKE ?", [f"{tag}-%"]
        ).fetchone()
        return int(count)
    finally:
        conn.close()


def check_after_kill(db: Path, name: str, tag: str, before: int) -> str:
    """Whether the killed batch is all there or not at all (else it fails); checks the file too."""
    found = committed(db, tag)
    assert found in (0, TOTAL), f"batch {tag}: {found} of {TOTAL} events survived"
    assert integrity(db) == "ok"
    assert rollups_agree(db)
    with Registry(db) as reg:  # the next open works, and so do reads and writes
        got = reg.get(name, metadata=True)
        assert got["requests"] == before + found
        assert reg.record_usage(name, request_id=f"{tag}-after", chat_prompt_tokens=7) == 1
    return "all" if found == TOTAL else "none"


def requests(db: Path, name: str) -> int:
    """The number of events of ``name`` in the file."""
    with Registry(db, readonly=True) as reg:
        return int(reg.get(name, metadata=True)["requests"])


@pytest.fixture
def crashed(tmp_path: Path) -> tuple[Path, str]:
    """A registry with one Query LLM and a committed first batch (the baseline)."""
    db = tmp_path / "registry.db"
    with Registry(db) as reg:
        name = reg.register(body()).name
        assert reg.record_usage_many(event(name, i, f"base-{i}") for i in range(1000)) == 1000
    return db, name


def test_killed_batch_is_all_or_nothing(crashed: tuple[Path, str]) -> None:
    """SIGKILL at several points of a 120,000-event batch: each ends all or none, never part."""
    db, name = crashed
    outcomes = {}
    before = 1000
    for number, kill in enumerate(SELF_KILLS):
        tag = f"self{number}"
        params = {"db": str(db), "name": name, "total": TOTAL, "kill": kill, "tag": tag}
        proc = spawn("crash-batch", params)
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL
        outcomes[str(kill)] = check_after_kill(db, name, tag, before)
        before = requests(db, name)
    for number, delay in enumerate(OUTSIDE_KILLS):
        tag = f"outside{number}"
        marker = db.parent / f"started-{number}"
        params = {"db": str(db), "name": name, "total": TOTAL, "kill": None, "marker": str(marker)}
        proc = spawn("crash-batch", params | {"tag": tag})
        wait_for(marker, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        outcomes[f"{delay}s"] = check_after_kill(db, name, tag, before)
        before = requests(db, name)
    # The kills inside the batch roll it back; the one after the commit keeps it all.
    assert outcomes["0"] == outcomes[str(TOTAL // 2)] == outcomes["end"] == "none"
    assert outcomes["committed"] == "all"
    assert len(outcomes) >= 3


def wait_for(marker: Path, proc: subprocess.Popen[str]) -> None:
    """Wait until the worker has started its batch."""
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.002)


def test_retry_after_a_crash_counts_each_event_once(crashed: tuple[Path, str]) -> None:
    """Retrying a batch killed before its commit writes it whole; retrying a committed one, none."""
    db, name = crashed
    for number, (kill, new) in enumerate(((RETRIED // 2, RETRIED), ("committed", 0))):
        params = {"db": str(db), "name": name, "total": RETRIED, "tag": f"retry{number}"}
        proc = spawn("crash-batch", params | {"kill": kill})
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL
        # The same events again, from a process that is not killed.
        assert run("crash-batch", params | {"kill": None}) == {"written": new}
    assert integrity(db) == "ok"
    assert rollups_agree(db)
    with Registry(db) as reg:
        got = reg.get(name, metadata=True)
    base = [event(name, i, f"base-{i}") for i in range(1000)]
    batch = [event(name, i) for i in range(RETRIED)]
    assert {key: got[key] for key in COUNTERS} == sums(base + batch + batch)


MIGRATION_KILLS = [0.02, 0.15, 0.35]  # seconds after the process began to open the file
BULK = 150_000  # events added to the first-schema fixture, for m002 to roll up


def first_schema_with_bulk(db: Path) -> None:
    """A file at the first schema (the fixture) with BULK more events: a long migration."""
    conn = sqlite3.connect(db)
    conn.executescript((ROOT / "tests" / "fixtures" / "first_schema.sql").read_text("utf-8"))
    conn.execute(
        "INSERT INTO usage_events (name, user_id, at, request_id, chat_prompt_tokens, chat_cost)"
        " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " SELECT CASE i % 3 WHEN 0 THEN (SELECT MIN(name) FROM query_llms)"
        " ELSE (SELECT MAX(name) FROM query_llms) END,"
        " CASE i % 3 WHEN 0 THEN 'alice' WHEN 1 THEN 'bob' END,"
        " 1793491200000000 + i * 997000, 'bulk-' || i, i % 7, i * 13 FROM n",
        [BULK],
    )
    conn.commit()
    conn.close()


def test_killed_migration_is_all_or_nothing(tmp_path: Path) -> None:
    """SIGKILL while the first open migrates a big old file: all migrations or none, events kept."""
    outcomes = []
    for number, delay in enumerate(MIGRATION_KILLS):
        db = tmp_path / f"first{number}.db"
        first_schema_with_bulk(db)
        counts = row_counts(db)
        marker = tmp_path / f"opening{number}"
        proc = spawn("open", {"db": str(db), "marker": str(marker)})
        wait_for(marker, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        conn = sqlite3.connect(db)
        applied = [n for (n,) in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
        conn.close()
        assert applied in (all_migrations()[:1], all_migrations())
        outcomes.append("all" if applied == all_migrations() else "none")
        assert integrity(db) == "ok"
        with Registry(db) as reg:  # the next open migrates (again, or not at all)
            assert reg.count() == 4
        after = row_counts(db)
        for table in ("users", "tokens", "query_llms", "usage_events"):
            assert after[table] == counts[table]
        assert rollups_agree(db)
    assert len(outcomes) == len(MIGRATION_KILLS)


def test_file_left_empty_by_a_killed_creator_opens(tmp_path: Path) -> None:
    """A 0-byte file (its creator killed before SQLite wrote a page) is opened as a new registry."""
    db = tmp_path / "registry.db"
    db.touch(mode=0o600)
    with Registry(db) as reg:
        name = reg.register(body()).name
        assert reg.record_usage(name) == 1
    assert integrity(db) == "ok"
