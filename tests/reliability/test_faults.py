"""Lock and disk trouble: a locked file, a full disk or database, a file that cannot be written.
Each fails with a clear StorageError, writes nothing partial, and leaves the file usable."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import registry
from registry.registry import Registry
from tests.support.data import ROOT, body
from tests.support.workers import (
    digests,
    event,
    finish,
    integrity,
    rollups_agree,
    row_counts,
    run,
    spawn,
    unchanged,
)

TIMEOUT = 0.3  # the callers' busy timeout, in seconds
FIRST_SCHEMA = ROOT / "tests" / "fixtures" / "first_schema.sql"


@contextmanager
def lock_held(db: Path, mode: str, name: str | None = None) -> Iterator[None]:
    """Another process holds the write lock (``BEGIN mode``), with an uncommitted event."""
    ready, release = db.parent / "locked", db.parent / "release"
    ready.unlink(missing_ok=True)
    release.unlink(missing_ok=True)
    params = {"db": str(db), "mode": mode, "ready": str(ready), "release": str(release)}
    holder = spawn("hold-lock", params | {"name": name})
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert holder.poll() is None, holder.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    try:
        yield
    finally:
        release.touch()
        assert finish(holder) == {"held": True}


def writes(reg: Registry, name: str, token: str) -> list[Callable[[], Any]]:
    """One call of every kind that writes."""
    return [
        lambda: reg.register(body(temperature=0.5), token=token),
        lambda: reg.record_usage(name, token=token, request_id="r2", chat_prompt_tokens=7),
        lambda: reg.record_usage_many(
            [event(name, i, f"batch-{i}") for i in range(3000)], token=token
        ),
        lambda: reg.create_token("bob"),
        lambda: reg.revoke_token(token),
    ]


# --- (a) locks ---------------------------------------------------------------------------------


@pytest.mark.alone("gives up in time")
@pytest.mark.parametrize("mode", ["IMMEDIATE", "EXCLUSIVE"])
def test_writer_locked_out_gets_a_clear_error_then_succeeds(
    filled: tuple[Path, str, str], mode: str
) -> None:
    """Past the busy timeout a write fails as 'locked', writes nothing, and works once released."""
    db, name, token = filled
    counts = row_counts(db)
    with lock_held(db, mode, name), Registry(db, timeout=TIMEOUT) as reg:
        for write in writes(reg, name, token):
            started = time.monotonic()
            with pytest.raises(registry.StorageError) as caught:
                write()
            waited = time.monotonic() - started
            assert "locked" in str(caught.value)
            assert str(db) in str(caught.value)
            assert TIMEOUT * 0.8 <= waited < TIMEOUT + 5  # it waited for the lock, then gave up
            assert not reg.db.conn.in_transaction
        assert row_counts(db) == counts
    assert row_counts(db) == counts
    with Registry(db, timeout=TIMEOUT) as reg:  # released: the same calls now work
        for write in writes(reg, name, token):
            write()
        assert reg.get(name, metadata=True)["requests"] == 1 + 1 + 3000
    assert integrity(db) == "ok"
    assert rollups_agree(db)


@pytest.mark.alone("reads done in < 2.5 s")
@pytest.mark.parametrize("mode", ["IMMEDIATE", "EXCLUSIVE"])
def test_readers_are_not_blocked_by_a_writer(filled: tuple[Path, str, str], mode: str) -> None:
    """In WAL mode, opening and reading go on at once while another process holds the write lock."""
    db, name, token = filled
    with lock_held(db, mode, name):
        for readonly in (False, True):
            started = time.monotonic()
            # Were they blocked, they would wait 5 s for the lock, then fail.
            with Registry(db, timeout=5, readonly=readonly) as reg:
                got = reg.get(name, metadata=True, me=True, token=token)
                assert got["requests"] == 1  # the holder's uncommitted event is not seen
                assert reg.list(sort="requests") == [name]
                assert reg.count() == 1
            assert time.monotonic() - started < 2.5


def test_migration_locked_out_leaves_the_file_untouched(tmp_path: Path) -> None:
    """A file that needs migrating, locked by another process: a clear error, no byte changed."""
    db = tmp_path / "first.db"
    conn = sqlite3.connect(db)
    conn.executescript(FIRST_SCHEMA.read_text(encoding="utf-8"))
    conn.close()
    before = digests(db)
    with lock_held(db, "IMMEDIATE"):
        with pytest.raises(registry.StorageError) as caught:
            Registry(db, timeout=TIMEOUT)
        assert "locked" in str(caught.value)
        assert digests(db) == before
    with Registry(db, timeout=TIMEOUT) as reg:  # released: it migrates
        assert reg.count() == 4
    assert integrity(db) == "ok"
    assert rollups_agree(db)


# --- (b) a full database or disk --------------------------------------------------------------


def test_full_database_refuses_a_batch_and_stays_sound(filled: tuple[Path, str, str]) -> None:
    """No page left (max_page_count): a big batch fails as 'full', writes nothing, later works."""
    db, name, token = filled
    counts = row_counts(db)
    batch = [event(name, i, f"full-{i}") for i in range(20_000)]
    with Registry(db) as reg:
        (pages,) = reg.db.conn.execute("PRAGMA page_count").fetchone()
        reg.db.conn.execute(f"PRAGMA max_page_count = {pages + 3}")
        for call in (
            lambda: reg.record_usage_many(batch, token=token),
            lambda: reg.record_usage_many(iter(batch)),
            lambda: reg.register(body(stop="x" * 60_000)),
        ):
            with pytest.raises(registry.StorageError) as caught:
                call()
            assert "full" in str(caught.value)
            assert not reg.db.conn.in_transaction
        assert row_counts(db) == counts
        assert integrity(db) == "ok"
        assert rollups_agree(db)
        assert reg.get(name, metadata=True)["requests"] == 1  # reads go on
        reg.db.conn.execute("PRAGMA max_page_count = 1073741823")  # room again
        assert reg.record_usage_many(batch, token=token) == len(batch)
        assert reg.get(name, metadata=True)["requests"] == 1 + len(batch)
    assert integrity(db) == "ok"
    assert rollups_agree(db)


def test_file_size_limit_refuses_a_batch_and_stays_sound(filled: tuple[Path, str, str]) -> None:
    """Files that may not grow (RLIMIT_FSIZE, like a full disk): a clean failure, then it works."""
    db, name, _ = filled
    counts = row_counts(db)
    small = {"request_id": "small", "chat_prompt_tokens": 7}
    params = {"db": str(db), "name": name, "tag": "big", "total": 50_000, "room": 64 * 1024}
    result = run("file-too-big", params | {"small": small})
    assert result["limited"]["error"] == "StorageFullError", result  # a StorageError: the HTTP 507
    message = result["limited"]["message"]
    assert str(db) in message
    assert "full" in message, message
    assert result["after"] == {"result": 1}  # the same process, the same open registry, later
    assert integrity(db) == "ok"
    assert rollups_agree(db)
    assert row_counts(db)["usage_events"] == counts["usage_events"] + 1
    with Registry(db) as reg:
        assert reg.get(name, metadata=True)["requests"] == 2


# --- (c) a file that cannot be written ---------------------------------------------------------


@contextmanager
def write_protected(db: Path) -> Iterator[None]:
    """The file with mode 0400; as root (whom modes do not stop) also immutable (chattr +i)."""
    db.chmod(0o400)
    immutable = os.geteuid() == 0
    if immutable:
        chattr = shutil.which("chattr")
        done = chattr and subprocess.run([chattr, "+i", str(db)], check=False).returncode == 0
        if not done:
            pytest.skip("as root, a mode does not stop writes, and chattr +i is not available")
    try:
        yield
    finally:
        if immutable:
            subprocess.run([str(shutil.which("chattr")), "-i", str(db)], check=True)
        db.chmod(0o600)


def test_read_only_file_refuses_writes_and_still_reads(filled: tuple[Path, str, str]) -> None:
    """A registry file that cannot be written: every write is a StorageError, reading works."""
    db, name, token = filled
    before = digests(db)
    counts = row_counts(db)
    with write_protected(db):
        with Registry(db, timeout=TIMEOUT) as reg:
            for write in writes(reg, name, token):
                with pytest.raises(registry.StorageError) as caught:
                    write()
                assert str(db) in str(caught.value)
                assert "cannot be written" in str(caught.value)
            assert reg.get(name, metadata=True)["requests"] == 1
        with Registry(db, readonly=True) as reg:
            assert reg.get(name, metadata=True, me=True, token=token)["requests"] == 1
        assert unchanged(db, before)
    assert row_counts(db) == counts
    with Registry(db) as reg:  # writable again: writes work
        assert reg.record_usage(name, request_id="r2") == 1
