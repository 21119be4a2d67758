"""Who gets in and what leaks: tokens, their storage and comparison, SQL built only from
constants, file modes, and read-only opens that cannot write."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import registry
from registry.registry import Registry
from tests.support.data import body
from tests.support.workers import digests, unchanged

QLLM = Path(sys.executable).with_name("qllm")
TOKEN = re.compile(r"qllm_([A-Za-z0-9_-]+)")
MARK = "ZQX"  # in every hostile string below, so that SQL text containing one is easy to spot
HOSTILE = [
    f"{MARK}'; DROP TABLE usage_events; --",
    f"{MARK}name) OR 1=1 --",
    f'{MARK}" OR ""="',
    f"{MARK}';ATTACH'x'AS'y'--",
    f"{MARK}%s?:name",
]


def file_bytes(path: Path) -> bytes:
    """The bytes of the file, its -wal and its -shm, as far as they exist."""
    return b"".join(
        Path(str(path) + suffix).read_bytes()
        for suffix in ("", "-wal", "-shm")
        if Path(str(path) + suffix).exists()
    )


# --- tokens ------------------------------------------------------------------------------------


def test_tokens_are_long_random_secrets(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens come from `secrets` with at least 128 random bits, URL-safe, all different."""
    asked: list[int] = []
    real = secrets.token_urlsafe

    def spy(nbytes: int | None = None) -> str:
        asked.append(nbytes or 32)
        return str(real(nbytes))

    monkeypatch.setattr(secrets, "token_urlsafe", spy)  # the module registry.auth calls
    made = [reg.create_token(f"user{i % 3}") for i in range(30)]
    assert asked
    assert min(asked) >= 16  # bytes: 128 bits
    assert len(set(made)) == len(made)
    for token in made:
        match = TOKEN.fullmatch(token)
        assert match, token
        assert len(match.group(1)) * 6 >= 128
        assert len(base64.urlsafe_b64decode(match.group(1) + "==")) >= 16


def test_only_a_sha256_of_each_token_is_stored(db_path: Path) -> None:
    """The stored form is the SHA-256; the secret is in no byte of the file, -wal or -shm."""
    with Registry(db_path) as reg:
        llm = reg.register(body())
        tokens = [reg.create_token(user) for user in ("alice", "bob", "alice")]
        reg.record_usage(llm.name, token=tokens[0], request_id="r1")
        reg.revoke_token(tokens[2])
        stored = sorted(h for (h,) in reg.db.execute("SELECT hash FROM tokens"))
        assert stored == sorted(hashlib.sha256(t.encode()).hexdigest() for t in tokens)
        while_open = file_bytes(db_path)
        assert Path(str(db_path) + "-wal").stat().st_size > 0  # the writes are in the WAL now
    after_close = file_bytes(db_path)
    for token in tokens:
        random_part = TOKEN.fullmatch(token).group(1)  # type: ignore[union-attr]
        raw = base64.urlsafe_b64decode(random_part + "==")
        for data in (while_open, after_close):
            assert random_part.encode() not in data
            assert raw not in data


def test_tokens_are_compared_in_constant_time(
    reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every authentication compares hashes with hmac.compare_digest (through auth.matches)."""
    llm = reg.register(body())
    token = reg.create_token("alice")
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module registry.auth calls
    digest = hashlib.sha256(token.encode()).hexdigest()
    uses: list[Callable[[], Any]] = [
        lambda: reg.get(llm.name, token=token),
        lambda: reg.get(llm.name, metadata=True, me=True, token=token),
        lambda: reg.register(body(temperature=0.5), token=token),
        lambda: reg.record_usage(llm.name, token=token),
        lambda: reg.record_usage_many([{"name": llm.name}], token=token),
        lambda: reg.list(me=True, token=token),
        lambda: reg.count(me=True, token=token),
        lambda: reg.revoke_token(token),
    ]
    for use in uses:
        calls.clear()
        use()
        assert calls == [(digest, digest)]
    with pytest.raises(registry.AuthenticationError):
        reg.get(llm.name, token=token)  # revoked


def test_unknown_and_revoked_tokens_get_nothing(reg: Registry) -> None:
    """A token that is unknown, revoked, or a near miss of a real one is refused on every call."""
    llm = reg.register(body())
    good = reg.create_token("alice")
    revoked = reg.create_token("alice")
    reg.revoke_token(revoked)
    near = [good[:-1], good + "A", good.upper(), good[:-1] + ("A" if good[-1] != "A" else "B")]
    for token in [revoked, *near, "qllm_", *HOSTILE]:
        for call in (
            lambda t=token: reg.get(llm.name, token=t),
            lambda t=token: reg.record_usage(llm.name, token=t),
            lambda t=token: reg.list(token=t),
            lambda t=token: reg.count(me=True, token=t),
        ):
            with pytest.raises(registry.AuthenticationError):
                call()
    assert reg.get(llm.name, metadata=True)["requests"] == 0


# --- SQL -------------------------------------------------------------------------------------


class Recorder:
    """A stand-in for the store's connection that keeps the text of every SQL statement
    as the registry wrote it (before SQLite binds the values)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.statements.append(sql)
        return self.conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.statements.append(sql)
        return self.conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


@pytest.fixture
def recorded(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> tuple[Registry, Recorder]:
    """The registry, with every statement its store runs recorded."""
    recorder = Recorder(reg.db.conn)
    monkeypatch.setattr(reg.store, "conn", recorder)
    return reg, recorder


def test_sql_text_never_holds_a_value(recorded: tuple[Registry, Recorder]) -> None:
    """Values, SQL fragments too, are bound: no statement run holds one, and they round-trip."""
    reg, recorder = recorded
    refused = 0
    for text in HOSTILE:
        squeezed = text.replace(" ", "")  # identifiers may not hold white space
        token = reg.create_token(squeezed)
        llm = reg.register(body(id=squeezed, models=[squeezed], stop=text), token=token)
        assert reg.get(llm.name)["id"] == squeezed
        assert reg.record_usage(llm.name, token=token, request_id=text, chat_prompt_tokens=3) == 1
        assert reg.record_usage(llm.name, token=token, request_id=text, chat_prompt_tokens=3) == 0
        assert reg.get(llm.name, metadata=True, me=True, token=token)["user_id"] == squeezed
        assert reg.list(me=True, token=token) == [llm.name]
        assert reg.count(me=True, token=token) == 1
        for call in (
            lambda t=text: reg.get(t),
            lambda t=text: reg.get(t.ljust(22, "A")[:22]),
            lambda t=text: reg.list(sort=t),
            lambda t=text: reg.list(sort="requests", start=t),
            lambda t=text: reg.record_usage(t),
            lambda t=text: reg.record_usage_many([{"name": t}]),
            lambda t=text: reg.revoke_token("qllm_" + t),
        ):
            with pytest.raises(
                (registry.ValidationError, registry.NotFoundError, registry.AuthenticationError)
            ):
                call()
            refused += 1
        reg.revoke_token(token)
    assert refused == 7 * len(HOSTILE)
    assert recorder.statements
    leaked = [sql for sql in recorder.statements if MARK in sql]
    assert leaked == []
    stored = {rid for (rid,) in reg.db.execute("SELECT request_id FROM usage_events")}
    assert stored == set(HOSTILE)


@pytest.mark.parametrize("sort", ["name", "created; DROP TABLE users", "requests DESC", "RANDOM()"])
def test_sort_is_whitelisted(reg: Registry, sort: str) -> None:
    """A sort that is not one of the six names is a ValidationError, whatever SQL it holds."""
    reg.register(body())
    with pytest.raises(registry.ValidationError) as caught:
        reg.list(sort=sort)
    assert [path for path, _ in caught.value.errors] == ["/sort"]
    assert reg.count() == 1


# --- file modes -----------------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away: the file modes are then the registry's own doing."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_new_files_are_owner_only(tmp_path: Path) -> None:
    """Even with umask 0: a new file is 0600, its -wal and -shm no wider, its new folder 0700."""
    db = tmp_path / "new" / "folder" / "registry.db"
    with Registry(db) as reg:
        reg.register(body())
        modes = {
            suffix: stat.S_IMODE(Path(str(db) + suffix).stat().st_mode)
            for suffix in ("", "-wal", "-shm")
        }
        assert modes[""] == 0o600
        assert all(mode & 0o077 == 0 for mode in modes.values()), modes
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


# --- read-only ----------------------------------------------------------------------------------


def test_readonly_registry_cannot_write(filled: tuple[Path, str, str]) -> None:
    """Every write through a readonly registry is a StorageError, and the file keeps every byte."""
    db, name, token = filled
    before = digests(db)
    with Registry(db, readonly=True) as reg:
        assert reg.get(name, metadata=True, token=token)["requests"] == 1
        writes: list[Callable[[], Any]] = [
            lambda: reg.register(body(temperature=0.5)),
            lambda: reg.register(body()),  # already there: still refused
            lambda: reg.record_usage(name, request_id="r2"),
            lambda: reg.record_usage_many([{"name": name}]),
            lambda: reg.create_token("bob"),
            lambda: reg.revoke_token(token),
            reg.rebuild_rollups,
        ]
        for write in writes:
            with pytest.raises(registry.StorageError, match="read-only"):
                write()
        # Not even SQL that goes around the registry's own methods.
        for sql in (
            "INSERT INTO users (id, created) VALUES ('mallory', 0)",
            "DELETE FROM usage_events",
            "UPDATE tokens SET revoked = NULL",
            "CREATE TABLE x (y)",
        ):
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reg.db.execute(sql)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reg.db.table("users").insert({"id": "mallory", "created": 0})
        assert reg.get(name, metadata=True)["requests"] == 1
    assert unchanged(db, before)


def test_readonly_open_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    """Registry(readonly=True) on a path with no file is a StorageError and creates no file."""
    with pytest.raises(registry.StorageError):
        Registry(tmp_path / "missing.db", readonly=True)
    assert list(tmp_path.iterdir()) == []


def qllm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the qllm command line."""
    return subprocess.run([str(QLLM), *args], capture_output=True, text=True, check=False)


def test_cli_readonly_reads_and_cannot_write(filled: tuple[Path, str, str], tmp_path: Path) -> None:
    """`qllm --readonly` reads and changes no byte; the writing commands do not even take it."""
    db, name, token = filled
    before = digests(db)
    for args in (
        ["get", name, "--metadata", "--me", "--token", token],
        ["list", "--sort", "requests"],
        ["count"],
    ):
        result = qllm(*args, "--db", str(db), "--readonly")
        assert result.returncode == 0, result.stderr
    source = tmp_path / "body.json"
    source.write_text(
        '{"id": "x/y", "mode": "generate", "weight": {"type": "static", "weight": 1}}'
    )
    for args in (
        ["register", str(source)],
        ["usage", "record", name],
        ["token", "create", "bob"],
        ["rebuild-rollups"],
    ):
        result = qllm(*args, "--db", str(db), "--readonly")
        assert result.returncode != 0
        assert "No such option '--readonly'" in result.stderr
    assert unchanged(db, before)
    missing = tmp_path / "missing.db"
    result = qllm("count", "--db", str(missing), "--readonly")
    assert result.returncode == 5
    assert not missing.exists()
