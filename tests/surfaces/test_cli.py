"""The ``qllm`` command line (spec 11): every command, exit codes, stdout JSON, stderr lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import registry
from registry import when
from registry.registry import Registry
from tests.support.cli import fails, ok, run
from tests.support.data import ZERO_METADATA, body

QLLM = Path(sys.executable).with_name("qllm")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
NAME = registry.validate(body()).name
OTHER = registry.validate(body(id="other/model")).name


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No QLLM_DB, QLLM_TOKEN or XDG_DATA_HOME from outside, and HOME in tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for variable in ("QLLM_DB", "QLLM_TOKEN", "XDG_DATA_HOME"):
        monkeypatch.delenv(variable, raising=False)
    return home


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    """A file holding a valid Query LLM body, with a default that normalization drops."""
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body(temperature=1)), encoding="utf-8")
    return path


@pytest.fixture
def db(db_path: Path) -> str:
    """The registry file as a --db value, with the standard Query LLM registered in it."""
    with Registry(db_path) as reg:
        reg.register(body())
        reg.register(body(id="other/model"))
    return str(db_path)


def make_token(db: str, user_id: str) -> str:
    """A token for ``user_id``, made through the command line."""
    created = ok(["token", "create", user_id, "--db", db])
    assert created["user_id"] == user_id
    return str(created["token"])


def write_lines(path: Path, lines: Sequence[str | dict[str, Any]]) -> Path:
    """A JSON Lines file: dicts are serialized, strings written as they are."""
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def event_count(db: str) -> int:
    """How many usage events the file holds."""
    with Registry(db) as reg:
        return int(reg.db.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0])


# --- validate ---------------------------------------------------------------------------------


def test_validate_prints_the_normalized_body(body_file: Path, clean_environment: Path) -> None:
    """``validate FILE`` prints the normalized body with its name and touches no database."""
    assert ok(["validate", str(body_file)]) == registry.dump(registry.validate(body()))
    assert list(clean_environment.iterdir()) == []  # no default registry was created


def test_validate_reads_stdin() -> None:
    """``validate -`` reads the body from stdin."""
    got = ok(["validate", "-"], input=json.dumps(body(weight={"type": "static", "weight": 2.0})))
    assert got["weight"] == {"type": "static", "weight": 2}
    assert got["name"] == registry.validate(body(weight={"type": "static", "weight": 2})).name


def test_validate_prints_one_line_per_problem(tmp_path: Path) -> None:
    """An invalid body exits 1 with one stderr line per problem, each a path and a message."""
    bad = write_lines(tmp_path / "bad.json", [body(temperature=3, top_p=2, temprature=1)])
    assert fails(["validate", str(bad)], 1) == [
        "/temperature: must be between 0 and 2",
        "/temprature: unknown key (did you mean 'temperature'?)",
        "/top_p: must be between 0 and 1",
    ]


def test_validate_rejects_text_that_is_not_json(tmp_path: Path) -> None:
    """A file that is not JSON exits 1 with one line naming the file."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    (line,) = fails(["validate", str(bad)], 1)
    assert line.startswith(f"/: {bad}")
    assert "not valid JSON" in line


def test_validate_rejects_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    """A body file that is not UTF-8 exits 1 with one line, not a traceback."""
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"id": "\xff\xfe"}')
    (line,) = fails(["validate", str(bad)], 1)
    assert "UTF-8" in line


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """A FILE that does not exist is a usage error: invalid input, exit status 1."""
    lines = fails(["validate", str(tmp_path / "missing.json")], 1)
    assert lines[-1].endswith("No such file or directory")


# --- register and get -------------------------------------------------------------------------


def test_register_prints_the_stored_body(body_file: Path, db_path: Path) -> None:
    """``register FILE --db`` stores the body and prints its response body; again, the same."""
    expected = registry.dump(registry.validate(body()))
    assert ok(["register", str(body_file), "--db", str(db_path)]) == expected
    assert ok(["register", str(body_file), "--db", str(db_path)]) == expected
    with Registry(db_path) as reg:
        assert reg.list() == [NAME]
        assert reg.get(NAME, metadata=True)["user_id"] is None


def test_register_reads_stdin_and_qllm_db(db_path: Path) -> None:
    """``register -`` reads stdin, and $QLLM_DB chooses the file."""
    got = ok(["register", "-"], input=json.dumps(body()), env={"QLLM_DB": str(db_path)})
    assert got["name"] == NAME
    with Registry(db_path) as reg:
        assert reg.count() == 1


def test_register_with_token_option_and_env(body_file: Path, db: str) -> None:
    """``--token`` and $QLLM_TOKEN make the caller the owner of what they register first."""
    alice = make_token(db, "alice")
    bob = make_token(db, "bob")
    trained = write_lines(Path(db).with_name("t.json"), [body(id="trained/model")])
    name = ok(["register", str(trained), "--db", db, "--token", alice])["name"]
    ok(["register", str(trained), "--db", db], env={"QLLM_TOKEN": bob})
    assert ok(["get", name, "--metadata", "--db", db])["user_id"] == "alice"
    env_name = ok(
        ["register", "-", "--db", db],
        input=json.dumps(body(id="env/model")),
        env={"QLLM_TOKEN": bob},
    )["name"]
    assert ok(["get", env_name, "--metadata", "--db", db])["user_id"] == "bob"


def test_register_invalid_body_writes_nothing(tmp_path: Path, db: str) -> None:
    """An invalid body exits 1, one line per problem, and the registry is unchanged."""
    bad = write_lines(tmp_path / "bad.json", [{"id": "a b", "mode": "guess"}])
    assert fails(["register", str(bad), "--db", db], 1) == [
        "/id: must not contain white space or control characters",
        "/mode: must be one of: generate, select_thinking, select_non_thinking,"
        " select_thinking_logprobs, select_non_thinking_logprobs",
        "/weight: is required",
    ]
    assert ok(["count", "--db", db]) == 2


def test_get_prints_the_body(db: str) -> None:
    """``get NAME`` prints the response body without metadata."""
    assert ok(["get", NAME, "--db", db]) == registry.dump(registry.validate(body()))


def test_get_with_metadata(db: str) -> None:
    """``get --metadata`` adds user_id, created and zero counters."""
    got = ok(["get", NAME, "--metadata", "--db", db])
    assert RFC3339.fullmatch(got["created"])
    assert {k: v for k, v in got.items() if k != "created"} == {
        **registry.dump(registry.validate(body())),
        "user_id": None,
        **ZERO_METADATA,
        "tokens": 0,  # the command line's two totals (issue 21 item 3)
        "cost": 0,
    }


def test_costs_print_as_exact_json_numbers(db: str) -> None:
    """Three events of cost 0.1 print as the JSON number 0.3, not 0.30000000000000004."""
    for _ in range(3):
        assert ok(["usage", "record", NAME, "--chat-cost", "0.1", "--db", db]) == {"written": 1}
    ok(["usage", "record", NAME, "--embedding-cost", "0.000000001", "--db", db])
    result = run(["get", NAME, "--metadata", "--db", db])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert '  "chat_cost": 0.3,' in lines
    assert '  "embedding_cost": 0.000000001,' in lines
    assert '  "cost": 0.300000001' in lines
    assert '  "requests": 4,' in lines
    got = json.loads(result.stdout, parse_float=Decimal)
    assert got["chat_cost"] == Decimal("0.3")
    assert got["embedding_cost"] == Decimal("1E-9")


def test_get_with_window_and_me(db: str) -> None:
    """``--from``/``--to`` restrict the counters and ``--me`` keeps only the caller's events."""
    alice = make_token(db, "alice")
    bob = make_token(db, "bob")
    record = ["usage", "record", NAME, "--db", db, "--chat-prompt-tokens"]
    ok([*record, "1", "--at", "2026-11-01T09:59:59Z", "--token", alice])
    ok([*record, "2", "--at", "2026-11-01T10:00:00Z", "--token", alice])
    ok([*record, "4", "--at", "2026-11-01T10:30:00+00:30", "--token", bob])
    ok([*record, "8", "--at", "2026-11-01T11:00:00Z"])
    get = ["get", NAME, "--metadata", "--db", db]
    assert ok(get)["chat_prompt_tokens"] == 15
    assert ok([*get, "--from", "2026-11-01T10:00:00Z"])["chat_prompt_tokens"] == 14
    assert ok([*get, "--to", "2026-11-01T11:00:00+01:00"])["chat_prompt_tokens"] == 1
    window = [*get, "--from", "2026-11-01T10:00:00Z", "--to", "2026-11-01T11:00:00Z"]
    assert ok(window)["chat_prompt_tokens"] == 6
    assert ok([*window, "--me", "--token", alice])["chat_prompt_tokens"] == 2
    assert ok([*window, "--me"], env={"QLLM_TOKEN": bob})["chat_prompt_tokens"] == 4
    assert ok([*get, "--from", "2026-11-01"])["requests"] == 4


def test_get_errors_and_exit_codes(db: str) -> None:
    """Not found exits 3, a malformed name or time 1, ``--me`` without a token 4."""
    missing = registry.validate(body(id="missing/model")).name
    assert fails(["get", missing, "--db", db], 3) == [f"no Query LLM named {missing}"]
    assert fails(["get", "nope", "--db", db], 1) == [
        "NAME: must be a Query LLM name: 22 base62 characters"
    ]
    assert fails(["get", NAME, "--metadata", "--me", "--db", db], 4) == [
        "--me needs a token (QLLM_TOKEN or --token)"
    ]
    assert fails(
        ["get", NAME, "--metadata", "--from", "2026-11-01T10:00:00", "--to", "x", "--db", db], 1
    ) == [
        "--from: needs a UTC offset, such as Z or +01:00: '2026-11-01T10:00:00'",
        f"--to: 'x' is not a time: use {when.FORMS}",
    ]
    assert fails(
        ["get", NAME, "--metadata", "--from", "2026-11-02", "--to", "2026-11-01", "--db", db], 1
    ) == ["--from: must not be later than --to"]


def test_get_without_metadata_ignores_the_query(db: str) -> None:
    """Without ``--metadata``, ``--me``, ``--from`` and ``--to`` are ignored, even if invalid."""
    got = ok(["get", NAME, "--me", "--from", "garbage", "--to", "2026-11-01T00:00", "--db", db])
    assert got == registry.dump(registry.validate(body()))


def test_get_readonly(db: str) -> None:
    """``get --readonly`` reads the file opened read-only."""
    assert ok(["get", NAME, "--readonly", "--db", db])["name"] == NAME


# --- list and count -------------------------------------------------------------------------


def test_list_and_count(db: str) -> None:
    """``list`` prints a JSON array of names, paged and sorted; ``count`` prints a number."""
    ok(["usage", "record", OTHER, "--chat-prompt-tokens", "10", "--db", db])
    ok(["usage", "record", NAME, "--chat-prompt-tokens", "9", "--db", db])
    ok(["usage", "record", NAME, "--chat-prompt-tokens", "0", "--db", db])
    assert ok(["list", "--db", db, "--sort", "requests"]) == [NAME, OTHER]
    assert ok(["list", "--db", db, "--sort", "prompt_tokens"]) == [OTHER, NAME]
    assert ok(["list", "--db", db, "--sort", "tokens", "--count", "1"]) == [OTHER]
    assert ok(["list", "--db", db, "--sort", "tokens", "--count", "1", "--offset", "1"]) == [NAME]
    assert ok(["list", "--db", db, "--sort", "requests", "--from", "2999-01-01"]) == sorted(
        [NAME, OTHER]
    )
    assert sorted(ok(["list", "--db", db])) == sorted([NAME, OTHER])
    assert ok(["list", "--db", db, "--offset", "2"]) == []
    assert ok(["count", "--db", db]) == 2
    assert run(["count", "--db", db]).stdout == "2\n"
    assert run(["list", "--db", db, "--offset", "5"]).stdout == "[]\n"


def test_list_and_count_me(db: str) -> None:
    """``--me`` lists what the caller registered or used; without a token it exits 4."""
    alice = make_token(db, "alice")
    ok(["usage", "record", OTHER, "--db", db, "--token", alice])
    assert ok(["list", "--me", "--db", db, "--token", alice]) == [OTHER]
    assert ok(["count", "--me", "--db", db], env={"QLLM_TOKEN": alice}) == 1
    assert fails(["list", "--me", "--db", db], 4) == ["--me needs a token (QLLM_TOKEN or --token)"]
    assert fails(["count", "--me", "--db", db], 4) == ["--me needs a token (QLLM_TOKEN or --token)"]


def test_list_validation_errors(db: str) -> None:
    """Bad count and offset exit 1 with one line each, named by their options; a sort that
    is not one of the choices is refused by the command line itself."""
    assert fails(["list", "--count", "0", "--offset", "-1", "--db", db], 1) == [
        "--count: must be an integer between 1 and 1000",
        "--offset: must be an integer, 0 or more",
    ]
    assert fails(["list", "--count", "1001", "--db", db], 1) == [
        "--count: must be an integer between 1 and 1000"
    ]
    assert (
        "'name' is not one of 'created', 'requests'"
        in fails(["list", "--sort", "name", "--db", db], 1)[-1]
    )


def test_malformed_command_line_is_exit_1(db: str) -> None:
    """A non-integer --count, an unknown option or command is invalid input, exit status 1."""
    assert "Invalid value for '--count'" in fails(["list", "--count", "x", "--db", db], 1)[-1]
    assert "No such option" in fails(["list", "--bogus", "--db", db], 1)[-1]
    assert "No such option" in fails(["--bogus", "list"], 1)[-1]
    assert "No such command" in fails(["lsit"], 1)[-1]


# --- usage record and import ------------------------------------------------------------------


def test_usage_record_all_options(db: str) -> None:
    """``usage record`` takes every amount, ``--at`` and ``--request-id``; a repeat writes 0."""
    args = [
        "usage", "record", NAME, "--db", db,
        "--at", "2026-11-01T10:00:00+01:00", "--request-id", "r1",
        "--chat-prompt-tokens", "1", "--chat-completion-tokens", "2", "--chat-cost", "0.003",
        "--embedding-prompt-tokens", "4", "--embedding-completion-tokens", "5",
        "--embedding-cost", "6",
    ]  # fmt: skip
    assert ok(args) == {"written": 1}
    assert ok(args) == {"written": 0}
    with Registry(db) as reg:
        rows = reg.db.execute("SELECT * FROM usage_events_rfc3339").fetchall()
    assert rows == [
        # ... and the costs again, exactly, in nano-credits
        (1, NAME, None, "2026-11-01T09:00:00.000000Z", "r1", 2, 1, 0.003, 5, 4, 6.0, None,
         3_000_000, 6_000_000_000)
    ]  # fmt: skip
    changed = [*args[:-1], "7"]
    assert fails(changed, 1)[0].startswith("--request-id: was recorded before")


def test_usage_record_errors(db: str) -> None:
    """Unknown name exits 3; bad amounts and costs exit 1; a bad token exits 4; nothing written."""
    missing = registry.validate(body(id="missing/model")).name
    assert fails(["usage", "record", missing, "--db", db], 3) == [f"no Query LLM named {missing}"]
    assert fails(
        ["usage", "record", NAME, "--db", db, "--chat-prompt-tokens", "-1", "--chat-cost", "x"], 1
    ) == [
        "--chat-cost: must be a number of credits, such as 0.0125",
        "--chat-prompt-tokens: must be between 0 and 1000000000000",
    ]
    assert fails(["usage", "record", NAME, "--db", db, "--at", "2026-11-01T10:00"], 1)[
        0
    ].startswith("--at: ")
    assert fails(["usage", "record", NAME, "--db", db, "--token", "qllm_nope"], 4) == [
        "unknown token"
    ]
    assert event_count(db) == 0


def test_usage_import(tmp_path: Path, db: str) -> None:
    """``usage import`` records a JSON Lines file, skips blank lines, and summarizes on stderr."""
    path = write_lines(
        tmp_path / "events.jsonl",
        [
            {"name": NAME, "chat_cost": 0.1, "request_id": "a"},
            "",
            {"name": NAME, "chat_cost": "0.1", "request_id": "b"},
            "   ",
            {"name": OTHER, "chat_cost": 0.1, "at": "2026-11-01T10:00:00Z"},
        ],
    )
    result = run(["usage", "import", str(path), "--db", db])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"read": 3, "written": 3}
    assert result.stderr == f"read 3 events from {path}: 3 new, 0 recorded before\n"
    again = write_lines(tmp_path / "again.jsonl", [{"name": NAME, "request_id": "c"}])
    path.write_text(path.read_text() + again.read_text())
    result = run(["usage", "import", str(path), "--db", db])
    assert json.loads(result.stdout) == {"read": 4, "written": 2}
    assert result.stderr == f"read 4 events from {path}: 2 new, 2 recorded before\n"
    assert ok(["get", NAME, "--metadata", "--db", db])["chat_cost"] == Decimal("0.2")


def test_usage_import_empty_file(tmp_path: Path, db: str) -> None:
    """An empty file (or only blank lines) imports nothing and succeeds."""
    path = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    result = run(["usage", "import", str(path), "--db", db])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"read": 0, "written": 0}
    assert result.stderr == f"read 0 events from {path}: 0 new, 0 recorded before\n"


def test_usage_import_stdin_with_token(db: str) -> None:
    """``usage import -`` reads stdin; the events belong to the token's user."""
    alice = make_token(db, "alice")
    lines = "\n".join(json.dumps({"name": NAME, "chat_prompt_tokens": i}) for i in range(5))
    assert ok(["usage", "import", "-", "--db", db, "--token", alice], input=lines) == {
        "read": 5,
        "written": 5,
    }
    mine = ok(["get", NAME, "--metadata", "--me", "--db", db, "--token", alice])
    assert mine["chat_prompt_tokens"] == 10


BETWEEN = "must be between 0 and 1000000 credits"
UNKNOWN = "unknown key (did you mean 'chat_prompt_tokens'?)"
CONFLICT = "was recorded before with other content: chat_cost was 0, and is 9 this time"


@pytest.mark.parametrize(
    ("bad", "code", "message"),
    [
        ({"name": NAME, "chat_cost": -1}, 1, f"line 5: /chat_cost: {BETWEEN}"),
        ({"name": NAME, "chat_tokens": 1}, 1, f"line 5: /chat_tokens: {UNKNOWN}"),
        ("{not json", 1, "line 5: is not valid JSON: "),
        ("[1, 2]", 1, "line 5: must be an object"),
        ({"name": NAME, "request_id": "r1", "chat_cost": 9}, 1, f"line 5: /request_id: {CONFLICT}"),
        ({"name": "0" * 22}, 3, f"line 5: /name: no Query LLM named {'0' * 22}"),
    ],
    ids=["cost", "unknown key", "json", "not an object", "conflict", "not found"],
)  # fmt: skip
def test_usage_import_bad_line_rejects_everything(
    tmp_path: Path, db: str, bad: Any, code: int, message: str
) -> None:
    """One bad line rejects the whole file and the error names its line number (blanks counted)."""
    ok(["usage", "record", NAME, "--request-id", "r1", "--db", db])
    good = {"name": NAME, "chat_prompt_tokens": 3}
    path = write_lines(tmp_path / "e.jsonl", [good, "", good, good, bad, good])
    lines = fails(["usage", "import", str(path), "--db", db], code)
    assert len(lines) == 1
    assert lines[0].startswith(message)
    assert event_count(db) == 1


def test_usage_import_line_numbers_in_a_long_file(tmp_path: Path, db: str) -> None:
    """In a file of 5,000 events with blank lines, the bad event's own line number is reported."""
    lines: list[str | dict[str, Any]] = []
    for i in range(5000):
        if i % 1000 == 0:
            lines.append("")
        lines.append({"name": NAME, "chat_cost": "-1" if i == 4321 else "0.001"})
    path = write_lines(tmp_path / "long.jsonl", lines)
    bad_line = lines.index({"name": NAME, "chat_cost": "-1"}) + 1
    assert bad_line == 4321 + 5 + 1
    assert fails(["usage", "import", str(path), "--db", db], 1) == [
        f"line {bad_line}: /chat_cost: must be between 0 and 1000000 credits"
    ]
    assert event_count(db) == 0


def test_usage_import_rejects_bytes_that_are_not_utf8(tmp_path: Path, db: str) -> None:
    """A JSON Lines file with bytes that are not UTF-8 exits 1 with one line and writes nothing."""
    path = tmp_path / "bad.jsonl"
    path.write_bytes(json.dumps({"name": NAME}).encode() + b"\n\xff\xfe\n")
    (line,) = fails(["usage", "import", str(path), "--db", db], 1)
    assert "UTF-8" in line
    assert event_count(db) == 0


# --- tokens -----------------------------------------------------------------------------------


def test_token_create_and_revoke(db: str) -> None:
    """``token create`` prints the secret once; ``token revoke`` refuses it from then on."""
    created = ok(["token", "create", "alice", "--db", db])
    assert set(created) == {"user_id", "token"}
    token = created["token"]
    assert token.startswith("qllm_")
    assert ok(["count", "--me", "--db", db, "--token", token]) == 0
    revoked = ok(["token", "revoke", token, "--db", db])
    assert revoked["revoked"] is True
    assert RFC3339.fullmatch(revoked["at"])
    assert ok(["token", "revoke", token, "--db", db])["revoked"] is True  # again: a no-op
    assert fails(["count", "--db", db, "--token", token], 4) == ["token was revoked"]
    assert fails(["get", NAME, "--db", db], 4, env={"QLLM_TOKEN": token}) == ["token was revoked"]


def test_token_errors(db: str) -> None:
    """Revoking an unknown token exits 4; a user id with white space exits 1."""
    assert fails(["token", "revoke", "qllm_unknown", "--db", db], 4) == ["unknown token"]
    assert fails(["token", "revoke", "garbage", "--db", db], 4) == ["unknown token"]
    assert fails(["token", "create", "has space", "--db", db], 1) == [
        "USER_ID: must not contain white space or control characters"
    ]


def test_unknown_token_refused_by_every_command(tmp_path: Path, body_file: Path, db: str) -> None:
    """A token that is unknown is refused with exit 4 by every command that takes one."""
    events = write_lines(tmp_path / "e.jsonl", [{"name": NAME}])
    for args in (
        ["register", str(body_file)],
        ["get", NAME],
        ["get", NAME, "--metadata"],
        ["list"],
        ["count"],
        ["usage", "record", NAME],
        ["usage", "import", str(events)],
    ):
        assert fails([*args, "--db", db, "--token", "qllm_nope"], 4) == ["unknown token"], args
    assert event_count(db) == 0


# --- the rest -----------------------------------------------------------------------------------


def test_rebuild_rollups(db: str) -> None:
    """``rebuild-rollups`` prints how many rollup rows it rebuilt and keeps the totals."""
    for at in ("2026-11-01T10:00:00Z", "2026-11-01T10:59:00Z", "2026-11-01T11:00:00Z"):
        ok(["usage", "record", NAME, "--at", at, "--chat-cost", "0.5", "--db", db])
    assert ok(["rebuild-rollups", "--db", db]) == {"usage_hourly": 2, "usage_totals": 1}
    assert ok(["get", NAME, "--metadata", "--db", db])["chat_cost"] == Decimal("1.5")


def test_where_prints_the_file_commands_use(tmp_path: Path, clean_environment: Path) -> None:
    """``where`` prints --db, else $QLLM_DB, else the file in the user's data directory, as
    a plain path a shell can use (``sqlite3 "$(qllm where)"``); ``--json`` the old form."""
    default = clean_environment / ".local" / "share" / "qllm" / "registry.db"
    assert run(["where"]).stdout == f"{default}\n"
    assert ok(["where", "--json"]) == {"db": str(default)}
    assert run(["where"], env={"XDG_DATA_HOME": str(tmp_path / "x")}).stdout == (
        f"{tmp_path / 'x' / 'qllm' / 'registry.db'}\n"
    )
    assert run(["where"], env={"QLLM_DB": "/some/file.db"}).stdout == "/some/file.db\n"
    assert run(["where", "--db", "/other.db"], env={"QLLM_DB": "/x.db"}).stdout == "/other.db\n"
    assert not default.exists()


def test_default_registry_file(body_file: Path, clean_environment: Path) -> None:
    """Without --db or $QLLM_DB, commands use ~/.local/share/qllm/registry.db."""
    ok(["register", str(body_file)])
    default = clean_environment / ".local" / "share" / "qllm" / "registry.db"
    with Registry(default) as reg:
        assert reg.list() == [NAME]


def test_db_option_wins_over_environment(tmp_path: Path, body_file: Path) -> None:
    """``--db`` is used even when $QLLM_DB names another file."""
    chosen, ignored = tmp_path / "chosen.db", tmp_path / "ignored.db"
    ok(["register", str(body_file), "--db", str(chosen)], env={"QLLM_DB": str(ignored)})
    assert chosen.is_file()
    assert not ignored.exists()


def test_unusable_database_exits_5(tmp_path: Path) -> None:
    """A --db file that is not a registry exits 5 with one line naming it."""
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all " * 200)
    (line,) = fails(["count", "--db", str(bad)], 5)
    assert str(bad) in line
    assert "not a usable registry" in line


def test_db_that_cannot_be_created_exits_5(tmp_path: Path) -> None:
    """A --db path under a regular file exits 5 with one line, not a traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    # A command that writes: read commands never create the file at all.
    (line,) = fails(["token", "create", "someone", "--db", str(blocker / "registry.db")], 5)
    assert line.startswith(f"cannot create {blocker / 'registry.db'}: ")


def test_version() -> None:
    """``--version`` prints the package version."""
    result = run(["--version"])
    assert result.exit_code == 0
    assert result.stdout == "qllm, version 0.1.0\n"


def test_console_script_register_and_get(tmp_path: Path, body_file: Path) -> None:
    """The installed ``qllm`` script registers and gets in real processes, exit codes included."""
    assert QLLM.is_file()
    env = {**os.environ, "QLLM_DB": str(tmp_path / "real.db"), "HOME": str(tmp_path)}
    env.pop("QLLM_TOKEN", None)
    registered = subprocess.run(
        [str(QLLM), "register", str(body_file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout) == registry.dump(registry.validate(body()))
    got = subprocess.run(
        [str(QLLM), "get", NAME, "--metadata"], env=env, capture_output=True, text=True, check=False
    )
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["requests"] == 0
    missing = subprocess.run(
        [str(QLLM), "get", OTHER], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 3
    assert missing.stdout == ""
    assert missing.stderr == f"no Query LLM named {OTHER}\n"
