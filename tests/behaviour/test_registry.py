"""Opening a registry file, register and get (spec 5), tokens (spec 8), the default path."""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import registry
from registry import times
from registry.location import default_path
from registry.registry import DEFAULT_TIMEOUT, Registry
from tests.support.behaviour import Reg
from tests.support.data import ZERO_METADATA, body

pytestmark = pytest.mark.surfaces  # each reg test runs on the library and over HTTP

CREATED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
TRAINING_TABLE = {"type": "training_table", "base_weight": 1, "min_weight": 0.5, "max_weight": 2}


def fix_clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """Make the registry's clock read ``moment``."""
    micros = times.micros(moment)
    monkeypatch.setattr(times, "now", lambda: micros)


def table_counts(reg: Reg) -> dict[str, int]:
    """Rows in every table of the registry."""
    return {
        table: reg.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in (
            "users",
            "tokens",
            "query_llms",
            "usage_events",
            "usage_hourly",
            "usage_totals",
        )
    }


def pragma(reg: Reg, name: str) -> Any:
    """The value of one PRAGMA on the registry's own connection."""
    return reg.db.execute(f"PRAGMA {name}").fetchone()[0]


# --- opening the file ---------------------------------------------------------------------


def test_new_file_and_its_wal_are_owner_only(db_path: Path) -> None:
    """A new registry file is created with mode 0600, and its -wal file gets the same."""
    with Registry(db_path) as reg:
        reg.register(body())
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        wal = db_path.with_name(db_path.name + "-wal")
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_missing_directories_are_created_owner_only(tmp_path: Path) -> None:
    """Opening a path in a directory that does not exist creates it with mode 0700."""
    path = tmp_path / "a" / "qllm" / "registry.db"
    with Registry(path):
        pass
    assert path.is_file()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.library_only("reads the settings of the library's own connection")
@pytest.mark.sqlite_only("SQLite's PRAGMAs")
def test_connection_settings(reg: Reg) -> None:
    """The connection uses WAL, enforces foreign keys and waits DEFAULT_TIMEOUT for locks."""
    assert pragma(reg, "journal_mode") == "wal"
    assert pragma(reg, "foreign_keys") == 1
    assert pragma(reg, "busy_timeout") == int(DEFAULT_TIMEOUT * 1000)
    assert pragma(reg, "synchronous") == 2  # FULL: every commit is synced
    assert DEFAULT_TIMEOUT == 10.0


def test_timeout_sets_the_busy_timeout(db_path: Path) -> None:
    """``timeout`` seconds become SQLite's busy timeout in milliseconds."""
    with Registry(db_path, timeout=2.5) as reg:
        assert pragma(reg, "busy_timeout") == 2500


@pytest.mark.library_only("uses the library's own connection, where foreign keys are on")
@pytest.mark.sqlite_only("SQLite's error class; PostgreSQL always enforces foreign keys")
def test_foreign_keys_are_enforced(reg: Reg) -> None:
    """A usage row for a Query LLM that does not exist is refused by SQLite itself."""
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        reg.db.execute("INSERT INTO usage_events (name, at) VALUES (?, ?)", ["0" * 22, 0])


def test_writer_waits_for_the_lock_then_gives_up(db_path: Path) -> None:
    """While another connection holds the write lock, a write gives up after the timeout."""
    with Registry(db_path) as reg:
        name = reg.register(body()).name
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with Registry(db_path, timeout=0.2) as reg:
            started = time.monotonic()
            with pytest.raises(registry.StorageBusyError) as caught:  # a StorageError
                reg.record_usage(name)
            assert time.monotonic() - started >= 0.2
            assert str(caught.value) == (
                f"{db_path} is locked by another process (gave up after 0.2 s)"
            )
            assert reg.get(name, metadata=True)["requests"] == 0  # WAL: reading is not blocked
        other.execute("ROLLBACK")
    finally:
        other.close()
    with Registry(db_path) as reg:
        assert reg.record_usage(name) == 1


def test_path_under_a_regular_file_is_a_storage_error(tmp_path: Path) -> None:
    """A path whose directory cannot be created is a StorageError naming it, not an OSError."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    path = blocker / "registry.db"
    with pytest.raises(registry.StorageError) as caught:
        Registry(path)
    assert str(caught.value).startswith(f"cannot create {path}: ")


def test_wal_mode_is_a_property_of_the_file(db_path: Path) -> None:
    """After the registry is closed a plain connection still finds the file in WAL mode."""
    with Registry(db_path):
        pass
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_context_manager_closes_the_connection(db_path: Path) -> None:
    """Leaving the ``with`` block closes the connection: later calls fail, as StorageError."""
    with Registry(db_path) as reg:
        assert reg.count() == 0
    with pytest.raises(sqlite3.ProgrammingError):
        reg.db.execute("SELECT 1")
    with pytest.raises(registry.StorageError):
        reg.count()


def test_reopen_keeps_the_data(db_path: Path) -> None:
    """What one Registry wrote, the next one opened on the same file reads."""
    with Registry(db_path) as reg:
        name = reg.register(body()).name
    with Registry(db_path) as reg:
        assert reg.get(name) == registry.dump(registry.validate(body()))
        assert reg.count() == 1


def test_readonly_missing_file_is_not_created(db_path: Path) -> None:
    """``readonly=True`` on a missing file is a StorageError and creates nothing."""
    with pytest.raises(registry.StorageError, match="no registry at"):
        Registry(db_path, readonly=True)
    assert not db_path.exists()


def test_readonly_refuses_writes_but_reads(db_path: Path) -> None:
    """A read-only registry answers reads and refuses every write with StorageError."""
    with Registry(db_path) as reg:
        name = reg.register(body()).name
    with Registry(db_path, readonly=True) as ro:
        assert ro.list() == [name]
        with pytest.raises(registry.StorageError, match="read-only"):
            ro.register(body(id="other/model"))
        with pytest.raises(registry.StorageError, match="read-only"):
            ro.record_usage(name)
    with Registry(db_path) as reg:
        assert reg.count() == 1


def test_a_file_that_is_not_a_database_is_a_storage_error(db_path: Path) -> None:
    """Opening a file that is not SQLite is a StorageError that names the file."""
    db_path.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(registry.StorageError, match="not a usable registry"):
        Registry(db_path)


# --- the default path -----------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME in tmp_path, with QLLM_DB and XDG_DATA_HOME unset."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("QLLM_DB", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return home


def test_default_path_is_qllm_db(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$QLLM_DB, when set, is the default path, even when XDG_DATA_HOME is set too."""
    target = home / "elsewhere" / "mine.db"
    monkeypatch.setenv("QLLM_DB", str(target))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg"))
    assert default_path() == target
    with Registry() as reg:
        assert reg.path == target
    assert target.is_file()
    assert not (home / "xdg").exists()


def test_default_path_is_under_xdg_data_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without $QLLM_DB the default is $XDG_DATA_HOME/qllm/registry.db."""
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg"))
    expected = home / "xdg" / "qllm" / "registry.db"
    assert default_path() == expected
    with Registry():
        pass
    assert expected.is_file()


def test_default_path_is_under_home(home: Path) -> None:
    """Without $QLLM_DB and $XDG_DATA_HOME the default is ~/.local/share/qllm/registry.db."""
    expected = home / ".local" / "share" / "qllm" / "registry.db"
    assert default_path() == expected
    with Registry() as reg:
        assert reg.path == expected
    assert expected.is_file()
    assert stat.S_IMODE(expected.stat().st_mode) == 0o600


def test_empty_environment_variables_count_as_unset(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty $QLLM_DB or $XDG_DATA_HOME is ignored, as if it were not set."""
    monkeypatch.setenv("QLLM_DB", "")
    monkeypatch.setenv("XDG_DATA_HOME", "")
    assert default_path() == home / ".local" / "share" / "qllm" / "registry.db"


# --- register and get (spec 5) ---------------------------------------------------------------


def test_register_returns_the_validated_query_llm(reg: Reg) -> None:
    """``register`` returns the same QueryLlm as ``validate`` and stores one row."""
    llm = reg.register(body(temperature=1.0, stop=["x", "x"]))
    expected = registry.validate(body(temperature=1.0, stop=["x", "x"]))
    assert llm == expected
    assert llm.name == expected.name
    assert table_counts(reg)["query_llms"] == 1


def test_get_without_metadata_is_the_normalized_body_and_name(reg: Reg) -> None:
    """``get`` returns the normalized form plus ``name``, with defaults dropped, nothing more."""
    raw = body(temperature=1, top_p=1.0, stop=["x", "x"], max_tokens=2.0, models=[])
    llm = reg.register(raw)
    assert reg.get(llm.name) == {
        "id": "openai/gpt-4o",
        "max_tokens": 2,
        "mode": "generate",
        "stop": "x",
        "weight": {"type": "static", "weight": 1},
        "name": llm.name,
    }
    assert reg.get(llm.name) == registry.dump(llm)


def test_get_includes_the_training_table_name_when_present(reg: Reg) -> None:
    """A training-table weight adds ``training_table_name`` to the response body."""
    llm = reg.register(body(weight=TRAINING_TABLE))
    assert llm.training_table_name is not None
    got = reg.get(llm.name)
    assert got == {
        "id": "openai/gpt-4o",
        "mode": "generate",
        "weight": TRAINING_TABLE,
        "name": llm.name,
        "training_table_name": llm.training_table_name,
    }
    assert re.fullmatch(r"[0-9A-Za-z]{22}", got["training_table_name"])
    assert got["training_table_name"] != llm.name


@pytest.mark.library_only("sets the library's clock, which a server process does not share")
def test_register_is_idempotent(reg: Reg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering the same body (in another spelling) again keeps one row and the first created."""
    fix_clock(monkeypatch, datetime(2026, 11, 25, 8, 48, 53, 120000, tzinfo=UTC))
    first = reg.register(body())
    fix_clock(monkeypatch, datetime(2026, 11, 26, tzinfo=UTC))
    again = reg.register(body(temperature=1, weight={"type": "static", "weight": 1.0}))
    assert again.name == first.name
    assert table_counts(reg)["query_llms"] == 1
    assert reg.get(first.name, metadata=True)["created"] == "2026-11-25T08:48:53.120000Z"


@pytest.mark.library_only("sets the library's clock, which a server process does not share")
def test_first_user_wins(reg: Reg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered again with another user's token, user_id and created stay the first ones."""
    alice = reg.create_token("alice")
    bob = reg.create_token("bob")
    fix_clock(monkeypatch, datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    name = reg.register(body(), token=alice).name
    fix_clock(monkeypatch, datetime(2026, 2, 2, tzinfo=UTC))
    assert reg.register(body(), token=bob).name == name
    meta = reg.get(name, metadata=True)
    assert meta["user_id"] == "alice"
    assert meta["created"] == "2026-01-02T03:04:05.000006Z"


def test_registered_without_token_stays_anonymous(reg: Reg) -> None:
    """A Query LLM first registered without a token keeps user_id null when a user registers it."""
    name = reg.register(body()).name
    reg.register(body(), token=reg.create_token("alice"))
    assert reg.get(name, metadata=True)["user_id"] is None


@pytest.mark.library_only("sets the library's clock, which a server process does not share")
def test_get_with_metadata_and_no_usage(reg: Reg, monkeypatch: pytest.MonkeyPatch) -> None:
    """With metadata, get adds user_id, created (RFC 3339, Z, microseconds) and zero counters."""
    token = reg.create_token("alice")
    fix_clock(monkeypatch, datetime(2026, 11, 25, 8, 48, 53, 120000, tzinfo=UTC))
    llm = reg.register(body(), token=token)
    got = reg.get(llm.name, metadata=True)
    assert got == {
        **registry.dump(llm),
        "user_id": "alice",
        "created": "2026-11-25T08:48:53.120000Z",
        **ZERO_METADATA,
    }
    assert CREATED.fullmatch(got["created"])
    assert type(got["chat_cost"]) is Decimal
    assert type(got["requests"]) is int


def test_created_is_rfc3339_with_microseconds(reg: Reg) -> None:
    """``created`` from the real clock has the form 2026-11-25T08:48:53.120000Z and is recent."""
    before = datetime.now(UTC)
    name = reg.register(body()).name
    after = datetime.now(UTC)
    created = reg.get(name, metadata=True)["created"]
    assert CREATED.fullmatch(created)
    moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    assert before <= moment <= after


def test_get_with_metadata_counts_usage(reg: Reg) -> None:
    """With metadata, get sums every usage event of that Query LLM and no other."""
    name = reg.register(body()).name
    other = reg.register(body(id="other/model")).name
    reg.record_usage(name, chat_prompt_tokens=3, chat_completion_tokens=4, chat_cost="0.5")
    reg.record_usage(name, embedding_prompt_tokens=5, embedding_completion_tokens=6)
    reg.record_usage(name, embedding_cost="0.25", chat_cost="0.25")
    reg.record_usage(other, chat_prompt_tokens=1000, chat_cost=7)
    got = reg.get(name, metadata=True)
    assert {key: got[key] for key in ZERO_METADATA} == {
        "requests": 3,
        "chat_completion_tokens": 4,
        "chat_prompt_tokens": 3,
        "chat_cost": Decimal("0.75"),
        "embedding_completion_tokens": 6,
        "embedding_prompt_tokens": 5,
        "embedding_cost": Decimal("0.25"),
    }


def test_python_surface_by_position(reg: Reg) -> None:
    """register, get, list and count take their arguments by position as spec section 10 lists."""
    token = reg.create_token("alice")
    name = reg.register(body(), token).name
    reg.record_usage(name, token, "2026-11-01T10:00:00Z")
    reg.record_usage(name, None, "2026-11-03T10:00:00Z")
    got = reg.get(name, True, True, "2026-11-01", "2026-11-02", token)
    assert (got["user_id"], got["requests"]) == ("alice", 1)
    assert reg.get(name, True, False, "2026-11-01", None, None)["requests"] == 2
    assert reg.list(1, 0, "requests", True, "2026-11-01", "2026-11-02", token) == [name]
    assert reg.list(1, 1, "created", False, None, None, None) == []
    assert reg.count(True, token) == 1


def test_get_unknown_name_is_not_found(reg: Reg) -> None:
    """A well-formed name that is not registered is a NotFoundError carrying the name."""
    missing = registry.validate(body(id="never/registered")).name
    for metadata in (False, True):
        with pytest.raises(registry.NotFoundError) as caught:
            reg.get(missing, metadata=metadata)
        assert caught.value.name == missing
        assert str(caught.value) == f"no Query LLM named {missing}"


@pytest.mark.parametrize("name", ["", "short", "0" * 21, "0" * 23, "0" * 21 + "-", "é" * 22, 42])
def test_get_malformed_name_is_a_validation_error(reg: Reg, name: Any) -> None:
    """A name that is not 22 base62 characters is a ValidationError at /name."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.get(name)
    assert caught.value.errors == [("/name", "must be a Query LLM name: 22 base62 characters")]


def test_invalid_body_writes_nothing(reg: Reg) -> None:
    """An invalid body is a ValidationError listing every problem, and nothing is stored."""
    before = table_counts(reg)
    with pytest.raises(registry.ValidationError) as caught:
        reg.register(body(temperature=3, temprature=1))
    assert sorted(path for path, _ in caught.value.errors) == ["/temperature", "/temprature"]
    assert table_counts(reg) == before


def test_metadata_flag_must_be_a_boolean(reg: Reg, llm: registry.QueryLlm) -> None:
    """``metadata`` given as a string is a ValidationError, not silently true."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.get(llm.name, metadata="yes")  # type: ignore[arg-type]
    assert caught.value.errors == [("/metadata", "must be true or false")]


# --- tokens (spec 8) ------------------------------------------------------------------------


def test_token_is_a_long_random_secret(reg: Reg) -> None:
    """A token is ``qllm_`` plus URL-safe base64 of at least 128 random bits; each is new."""
    tokens = [reg.create_token("alice") for _ in range(3)]
    assert len(set(tokens)) == 3
    for token in tokens:
        match = re.fullmatch(r"qllm_([A-Za-z0-9_-]+)", token)
        assert match is not None
        secret = match[1]
        raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
        assert len(raw) * 8 >= 128


def test_only_the_token_hash_is_stored(db_path: Path) -> None:
    """The database holds the SHA-256 hex of a token and the secret appears in no table or byte."""
    with Registry(db_path) as reg:
        token = reg.create_token("alice")
        name = reg.register(body(), token=token).name
        reg.record_usage(name, token=token, request_id="r1")
        rows = reg.db.execute("SELECT hash, user_id, revoked FROM tokens").fetchall()
        assert rows == [(hashlib.sha256(token.encode()).hexdigest(), "alice", None)]
        tables = [
            row[0] for row in reg.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            for row in reg.db.execute(f"SELECT * FROM {table}"):
                assert all(token not in str(value) for value in row), table
        secret = token.removeprefix("qllm_")
        for path in db_path.parent.iterdir():  # the file and its -wal, while open
            data = path.read_bytes()
            assert token.encode() not in data
            assert secret.encode() not in data
    assert secret.encode() not in db_path.read_bytes()


def test_create_token_makes_the_user_once(reg: Reg) -> None:
    """Two tokens for one user id give one users row and two token rows."""
    reg.create_token("alice")
    reg.create_token("alice")
    assert reg.db.execute("SELECT id FROM users").fetchall() == [("alice",)]
    assert table_counts(reg)["tokens"] == 2


@pytest.mark.parametrize("user_id", ["", "has space", "x" * 257, None, 7])
def test_create_token_rejects_bad_user_ids(reg: Reg, user_id: Any) -> None:
    """A user id that is empty, has white space, is too long or not a string is refused."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.create_token(user_id)
    assert [path for path, _ in caught.value.errors] == ["/user_id"]
    assert table_counts(reg)["users"] == 0


def bad_tokens(reg: Reg) -> dict[str, str]:
    """An unknown token, a revoked one, and strings that are not tokens at all."""
    revoked = reg.create_token("mallory")
    reg.revoke_token(revoked)
    return {
        "unknown": "qllm_" + "A" * 43,
        "revoked": revoked,
        "no prefix": "not-a-token",
        "empty": "",
    }


@pytest.mark.parametrize("kind", ["unknown", "revoked", "no prefix", "empty"])
def test_bad_token_is_refused_on_every_call(reg: Reg, llm: registry.QueryLlm, kind: str) -> None:
    """An unknown or revoked token is an AuthenticationError even where no token was needed."""
    token = bad_tokens(reg)[kind]
    before = table_counts(reg)
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: reg.get(llm.name, token=token),
        "get metadata": lambda: reg.get(llm.name, metadata=True, token=token),
        "get metadata me": lambda: reg.get(llm.name, metadata=True, me=True, token=token),
        "register": lambda: reg.register(body(id="new/model"), token=token),
        "record_usage": lambda: reg.record_usage(llm.name, token=token),
        "record_usage_many": lambda: reg.record_usage_many([{"name": llm.name}], token=token),
        "list": lambda: reg.list(token=token),
        "list me": lambda: reg.list(me=True, token=token),
        "count": lambda: reg.count(token=token),
        "count me": lambda: reg.count(me=True, token=token),
    }
    for call_name, call in calls.items():
        with pytest.raises(registry.AuthenticationError):
            call()
        assert table_counts(reg) == before, call_name


def test_revoked_token_message(reg: Reg, llm: registry.QueryLlm) -> None:
    """A revoked token says it was revoked; an unknown one says it is unknown."""
    token = reg.create_token("alice")
    assert reg.get(llm.name, token=token) == registry.dump(llm)
    reg.revoke_token(token)
    with pytest.raises(registry.AuthenticationError, match=r"^token was revoked$"):
        reg.count(token=token)
    with pytest.raises(registry.AuthenticationError, match=r"^unknown token$"):
        reg.count(token="qllm_unknown")


def test_revoking_one_token_keeps_the_users_others(reg: Reg) -> None:
    """Revoking one of a user's tokens leaves the other usable."""
    first = reg.create_token("alice")
    second = reg.create_token("alice")
    reg.revoke_token(first)
    assert reg.count(me=True, token=second) == 0
    with pytest.raises(registry.AuthenticationError):
        reg.count(token=first)


def test_revoke_twice_is_a_no_op(reg: Reg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Revoking a revoked token changes nothing: the first revocation time stays."""
    token = reg.create_token("alice")
    fix_clock(monkeypatch, datetime(2026, 3, 1, tzinfo=UTC))
    reg.revoke_token(token)
    fix_clock(monkeypatch, datetime(2026, 4, 1, tzinfo=UTC))
    reg.revoke_token(token)
    revoked = reg.db.execute("SELECT revoked FROM tokens").fetchall()
    assert revoked == [(times.micros(datetime(2026, 3, 1, tzinfo=UTC)),)]


@pytest.mark.parametrize("token", ["qllm_" + "B" * 43, "nonsense", ""])
def test_revoke_unknown_token_is_an_authentication_error(reg: Reg, token: str) -> None:
    """Revoking a token the registry never made is an AuthenticationError and writes nothing."""
    reg.create_token("alice")
    with pytest.raises(registry.AuthenticationError, match="unknown token"):
        reg.revoke_token(token)
    assert reg.db.execute("SELECT revoked FROM tokens").fetchall() == [(None,)]


def test_tokens_work_across_processes_reopening(db_path: Path) -> None:
    """A token made through one Registry authenticates through another on the same file."""
    with Registry(db_path) as reg:
        token = reg.create_token("alice")
    with Registry(db_path) as reg:
        name = reg.register(body(), token=token).name
        assert reg.get(name, metadata=True, token=token)["user_id"] == "alice"
