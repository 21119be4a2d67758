"""Regression tests for the first release's defects (issue 8, defects 1-4).

1. Totals summed over users (and the combined list sort keys) stay 64-bit integers.
2. An import validates and stages its events before it takes the write lock.
3. ``--readonly`` reads a file in a directory the caller cannot write.
4. Registry files are stamped (application_id); other databases are refused untouched,
   and read commands never create a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

import registry
from registry import events as usage
from registry import query
from registry.model import MAX_CREDITS_PER_EVENT
from registry.registry import Registry
from registry.store import spool
from registry.store.sqlite import APPLICATION_ID, SqliteTx, migration_set
from tests.support.data import AMOUNTS, body

QLLM = Path(sys.executable).with_name("qllm")
AT = "2026-11-01T10:00:00Z"
INT64_MAX = 2**63 - 1


def qllm(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed ``qllm`` as its own process."""
    return subprocess.run(
        [str(QLLM), *args], capture_output=True, text=True, check=False, timeout=60, **kwargs
    )


def stats_view(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM query_llm_stats").fetchall()


# --- 1. totals over all users --------------------------------------------------------------


def big_events(name: str, count: int, **amounts: Any) -> list[dict[str, Any]]:
    return [{"name": name, "at": AT, **amounts}] * count


def test_two_users_cannot_overflow_a_query_llms_total(db_path: Path) -> None:
    """Each user under 2**63, their sum over it: the second write is refused, reads go on."""
    with Registry(db_path) as reg:
        name = reg.register(body()).name
        token = reg.create_token("alice")
        reg.record_usage_many(big_events(name, 5000, chat_cost=MAX_CREDITS_PER_EVENT))
        with pytest.raises(registry.ValidationError, match=r"2\*\*63"):
            reg.record_usage_many(
                big_events(name, 5000, chat_cost=MAX_CREDITS_PER_EVENT), token=token
            )
        # The single-event path (inside the caller's transaction) is held to the same rule.
        # 9223 events of 10**15 nano-credits: just under 2**63 - 1; one more is past it.
        reg.record_usage_many(big_events(name, 4223, chat_cost=MAX_CREDITS_PER_EVENT))
        with pytest.raises(registry.ValidationError, match=r"2\*\*63"):
            reg.record_usage(name, token=token, chat_cost=MAX_CREDITS_PER_EVENT, at=AT)
        got = reg.get(name, metadata=True)
        assert got["requests"] == 9223
        assert got["chat_cost"] == Decimal(9223 * MAX_CREDITS_PER_EVENT)
        window = reg.get(name, metadata=True, start="2026-11-01", end="2026-11-02")
        assert window["requests"] == 9223
        assert reg.list(sort="cost") == [name]
    assert stats_view(db_path)[0][7] == 9223  # the view's requests column


def test_combined_cost_sort_key_cannot_overflow(db_path: Path) -> None:
    """chat_cost and embedding_cost each fit, their sum (``sort=cost``) would not: refused."""
    half = big_events(
        "", 5000, chat_cost=MAX_CREDITS_PER_EVENT, embedding_cost=MAX_CREDITS_PER_EVENT
    )
    with Registry(db_path) as reg:
        name = reg.register(body()).name
        events = [{**event, "name": name} for event in half]
        with pytest.raises(registry.ValidationError, match=r"2\*\*63"):
            reg.record_usage_many(events)
        assert reg.get(name, metadata=True)["requests"] == 0
        reg.record_usage_many(events[:4000])  # 8e18 nano-credits in all: still exact
        assert reg.list(sort="cost") == [name]
        for sort in query.SORTS:
            assert reg.list(sort=sort, start="2026-11-01T10:30:00Z") == [name]


amount_rows = st.lists(st.tuples(*[st.integers(0, 2**62) for _ in AMOUNTS]), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=amount_rows)
def test_check_totals_refuses_exactly_the_totals_past_64_bits(
    rows: list[tuple[int, ...]],
) -> None:
    """``check_totals`` raises iff some column sum or combined sort key passes 2**63 - 1."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    columns = ", ".join(AMOUNTS)
    conn.execute(f"CREATE TABLE usage_totals (grp TEXT, {columns})")
    conn.executemany(
        f"INSERT INTO usage_totals VALUES ('g', {', '.join('?' * len(AMOUNTS))})",
        [list(r) for r in rows],
    )
    sums = dict(zip(AMOUNTS, (sum(column) for column in zip(*rows, strict=True)), strict=True))
    keys = [[a] for a in AMOUNTS] + [list(columns) for columns in query.COMBINED.values()]
    too_large = any(sum(sums[a] for a in key) > INT64_MAX for key in keys)
    if too_large:
        with pytest.raises(registry.ValidationError, match="group's totals"):
            SqliteTx(conn).check_totals(["g", "other"], column="grp", group="group")
    else:
        SqliteTx(conn).check_totals(["g", "other"], column="grp", group="group")


# --- 2. imports take the write lock only to move staged rows -------------------------------------


def test_batch_is_validated_before_the_write_lock(reg: Registry) -> None:
    """While the batch is being read, another connection can write at once."""
    name = reg.register(body()).name
    other = sqlite3.connect(reg.path, timeout=0, isolation_level=None)

    def events() -> Iterator[dict[str, Any]]:
        for i in range(3 * usage.CHUNK):
            if i == usage.CHUNK + 1:  # mid-batch, after a chunk was staged
                other.execute("BEGIN IMMEDIATE")  # would fail at once if the lock were held
                other.execute("COMMIT")
            yield {"name": name, "at": AT, "request_id": f"r{i}", "chat_prompt_tokens": 1}

    assert reg.record_usage_many(events()) == 3 * usage.CHUNK
    assert 0 < reg.last_lock_seconds < 5
    other.close()


def test_staged_batch_keeps_request_id_rules(reg: Registry) -> None:
    """Repeats are no-ops, a changed repeat names its index, a retry without ``at`` matches."""
    name = reg.register(body()).name
    reg.record_usage(name, request_id="a", chat_prompt_tokens=1)  # at: now
    batch: list[dict[str, Any]] = [
        {"name": name, "request_id": "a", "chat_prompt_tokens": 1},  # retry, time left out
        {"name": name, "request_id": "b", "at": AT, "chat_cost": "0.1"},
        {"name": name, "request_id": "b", "at": AT, "chat_cost": "0.1"},  # same in the batch
        {"name": name, "at": AT},
    ]
    assert reg.record_usage_many(batch) == 2
    totals = reg.get(name, metadata=True)
    assert (totals["requests"], totals["chat_cost"]) == (3, Decimal("0.1"))
    changed = [*batch, {"name": name, "request_id": "b", "at": AT, "chat_cost": "0.2"}]
    with pytest.raises(registry.ConflictError) as caught:
        reg.record_usage_many(changed)
    assert caught.value.errors[0][0] == "/4/request_id"
    assert reg.get(name, metadata=True) == totals
    assert reg.rebuild_rollups()  # the rollups were kept equal to the events
    assert reg.get(name, metadata=True) == totals


def rollup_rows(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("SELECT * FROM usage_hourly ORDER BY 1, 2, 3, 4").fetchall(),
            conn.execute("SELECT * FROM usage_totals ORDER BY 1, 2, 3").fetchall(),
        )


@pytest.mark.parametrize("spill", [False, True], ids=["in-memory", "spilled"])
def test_long_batch_rollups_equal_its_events(
    reg: Registry, monkeypatch: pytest.MonkeyPatch, spill: bool
) -> None:
    """A batch of several chunks, its rows spooled to a file and its hourly sums spilled
    in runs of a few rollup rows (``spilled``), or all in memory: the rollups equal
    those rebuilt from the events, repeats in a later chunk included."""
    if spill:
        monkeypatch.setattr(spool, "SPOOL_IN_MEMORY", 1024)
        monkeypatch.setattr(spool, "IN_MEMORY_ROWS", 100)
        monkeypatch.setattr(spool, "MAX_DELTAS", 5)
    names = [reg.register(body()).name, reg.register(body(id="openai/gpt-4o-mini")).name]
    token = reg.create_token("alice")
    count = 2 * usage.CHUNK + 7

    def event(i: int) -> dict[str, Any]:
        return {
            "name": names[i % 2],
            "at": f"2026-11-{1 + i % 20:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "request_id": f"r{i}",
            "chat_prompt_tokens": i,
            "chat_cost": f"0.{i:06d}",
        }

    batch = [event(i) for i in range(count)]
    assert reg.record_usage_many(batch[: usage.CHUNK + 3], token=token) == usage.CHUNK + 3
    # The whole batch again: its first events are repeats (skipped), the rest are new.
    assert reg.record_usage_many(batch, token=token) == count - usage.CHUNK - 3
    written = rollup_rows(reg.path)
    assert sum(row[4] for row in written[0]) == count
    assert reg.rebuild_rollups()
    assert rollup_rows(reg.path) == written
    assert reg.get(names[1], metadata=True)["chat_prompt_tokens"] == sum(range(1, count, 2))
    # A changed repeat in the last chunk: named by its index, nothing written.
    changed = [*batch, {**event(3), "chat_prompt_tokens": 4}]
    with pytest.raises(registry.ConflictError) as caught:
        reg.record_usage_many(changed, token=token)
    assert caught.value.errors[0][0] == f"/{count}/request_id"
    assert rollup_rows(reg.path) == written


@pytest.mark.alone("a record in < 5 s")
def test_import_fed_slowly_does_not_block_other_writers(db_path: Path, tmp_path: Path) -> None:
    """Real processes: ``usage record`` succeeds while ``usage import -`` waits on its pipe."""
    with Registry(db_path) as reg:
        name = reg.register(body()).name
    line = json.dumps({"name": name, "at": AT, "chat_prompt_tokens": 1}) + "\n"
    importer = subprocess.Popen(
        [str(QLLM), "usage", "import", "-", "--db", str(db_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert importer.stdin is not None
    try:
        importer.stdin.write(line * (usage.CHUNK + 10))  # a chunk staged, then it waits
        importer.stdin.flush()
        time.sleep(0.5)
        started = time.monotonic()
        recorded = qllm("usage", "record", name, "--db", str(db_path), "--timeout", "2")
        assert recorded.returncode == 0, recorded.stderr
        assert time.monotonic() - started < 5
        assert importer.poll() is None  # the import is still reading
        importer.stdin.write(line * 10)
    finally:
        out, err = importer.communicate(timeout=60)
    assert importer.returncode == 0, err
    assert json.loads(out) == {"read": usage.CHUNK + 20, "written": usage.CHUNK + 20}
    with Registry(db_path, readonly=True) as reg:
        assert reg.get(name, metadata=True)["requests"] == usage.CHUNK + 21


# --- 3. read-only access without write access to the directory --------------------------------

AS_NOBODY = """
import importlib.metadata, os, sys
import registry.cli, sqlite_utils.plugins
sqlite_utils.plugins.ensure_plugins_loaded()  # all code loaded while still root
os.setgroups([]); os.setgid(65534); os.setuid(65534)
sys.argv = ["qllm", *sys.argv[1:]]
registry.cli.main()
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A root-owned 0755 directory another user can read but not write."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a command as another user (nobody)")
    path = Path(tempfile.mkdtemp(prefix="qllm-shared-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", AS_NOBODY, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def shared_registry(directory: Path) -> tuple[Path, str]:
    path = directory / "registry.db"
    with Registry(path) as reg:
        name = reg.register(body()).name
        reg.record_usage(name, chat_prompt_tokens=3)
    path.chmod(0o644)
    assert sorted(p.name for p in directory.iterdir()) == ["registry.db"]
    return path, name


def test_readonly_reads_a_file_in_a_directory_it_cannot_write(shared_dir: Path) -> None:
    path, name = shared_registry(shared_dir)
    got = as_nobody("get", name, "--metadata", "--readonly", "--db", str(path))
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["chat_prompt_tokens"] == 3
    listed = as_nobody("list", "--sort", "tokens", "--readonly", "--db", str(path))
    assert json.loads(listed.stdout) == [name]
    # Without --readonly the message says how to read it.
    refused = as_nobody("count", "--db", str(path))
    assert refused.returncode == 5
    assert "--readonly" in refused.stderr
    assert sorted(p.name for p in shared_dir.iterdir()) == ["registry.db"]


def test_readonly_sees_a_live_writers_log(shared_dir: Path) -> None:
    """A writer has the file open (its -wal and -shm exist): the reader sees its commits."""
    path, name = shared_registry(shared_dir)
    with Registry(path) as writer:
        writer.record_usage(name, chat_prompt_tokens=5)
        got = as_nobody("get", name, "--metadata", "--readonly", "--db", str(path))
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["chat_prompt_tokens"] == 8


def test_readonly_copy_with_a_log_but_no_index_says_what_to_do(shared_dir: Path) -> None:
    """A copy taken with its -wal (not folded in) cannot be read safely: exit 5 and why."""
    path, name = shared_registry(shared_dir)
    copy = shared_dir / "copy"
    copy.mkdir(mode=0o755)
    with Registry(path) as writer:
        writer.record_usage(name, chat_prompt_tokens=5)
        for suffix in ("", "-wal"):
            shutil.copy(f"{path}{suffix}", f"{copy / 'registry.db'}{suffix}")
            os.chmod(f"{copy / 'registry.db'}{suffix}", 0o644)
    got = as_nobody("get", name, "--readonly", "--db", str(copy / "registry.db"))
    assert got.returncode == 5
    assert "registry.db-wal" in got.stderr
    assert "copy the file and its -wal" in got.stderr
    assert "Traceback" not in got.stderr


# --- 4. foreign files are refused untouched; reads create nothing -------------------------


def snapshot(path: Path) -> tuple[str, list[str]]:
    """The file's bytes (hashed) and what lies beside it."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(
        p.name for p in path.parent.iterdir()
    )


@pytest.fixture(params=["notes", "clash", "foreign_id"])
def foreign(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Another application's database: plain tables, a table named as ours, another id."""
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as conn:
        if request.param == "notes":
            conn.execute("CREATE TABLE notes (body TEXT)")
            conn.execute("INSERT INTO notes VALUES ('keep me')")
        elif request.param == "clash":
            conn.execute("CREATE TABLE users (id INTEGER, email TEXT)")
        else:
            conn.execute("PRAGMA application_id = 1234")
    conn.close()
    return path


@pytest.mark.parametrize(
    "command",
    [["count"], ["list"], ["get", "0" * 22], ["register", "-"], ["token", "create", "u"]],
)
def test_foreign_database_is_refused_untouched(foreign: Path, command: list[str]) -> None:
    before = snapshot(foreign)
    result = qllm(*command, "--db", str(foreign), input=json.dumps(body()))
    assert result.returncode == 5, result.stderr
    assert "is not a qllm registry" in result.stderr
    assert "left untouched" in result.stderr
    assert snapshot(foreign) == before
    with sqlite3.connect(foreign) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()


def test_foreign_database_error_class(foreign: Path) -> None:
    with pytest.raises(registry.NotARegistryError) as caught:
        Registry(foreign)
    assert isinstance(caught.value, registry.StorageError)


@pytest.mark.parametrize("kind", ["zero_bytes", "no_tables"])
def test_empty_database_becomes_a_stamped_registry(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "empty.db"
    if kind == "zero_bytes":
        path.touch()
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 0")
            conn.execute("VACUUM")  # writes a header: a database with no tables
        conn.close()
    assert qllm("count", "--db", str(path)).stdout.strip() == "0"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    conn.close()


def test_first_release_file_is_recognised_and_stamped(tmp_path: Path) -> None:
    """A file migrated by the first release (no application_id) keeps working, now stamped."""
    path = tmp_path / "old.db"
    db = Database(path)
    migration_set().apply(db)
    db.execute("INSERT INTO users (id, created) VALUES ('alice', 0)")
    db.close()
    with Registry(path, readonly=True) as reg:  # read-only: recognised, left unstamped
        assert reg.count() == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone() == (0,)
    conn.close()
    with Registry(path) as reg:
        assert reg.count() == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert conn.execute("SELECT id FROM users").fetchall() == [("alice",)]
    conn.close()


def test_new_registry_is_stamped(reg: Registry) -> None:
    assert reg.db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)


@pytest.mark.parametrize(
    "command", [["count"], ["list"], ["get", "0" * 22], ["get", "0" * 22, "--readonly"]]
)
def test_read_commands_never_create_a_file(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "typo.db"
    result = qllm(*command, "--db", str(path))
    assert result.returncode == 5
    assert f"no registry at {path}" in result.stderr
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_library_create_false(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(registry.NoRegistryError):
        Registry(path, create=False)
    assert not path.exists()
    Registry(path).close()  # the default still creates
    with Registry(path, create=False) as reg:
        assert reg.count() == 0
