"""`qllm copy FROM TO`: a registry moved between a SQLite file and PostgreSQL, streamed,
safe to run again (also after a SIGKILL), refused on a target holding other data, and
checked at the end. Real files, the real PostgreSQL of tests/support/pg.py, real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import times
from registry.copy import _difference, copy_registry
from registry.errors import (
    AuthenticationError,
    CopyConflictError,
    CopyMismatchError,
    RegistryError,
)
from registry.query import SORTS
from registry.registry import Registry
from tests.support.data import body

QLLM = str(Path(sys.executable).with_name("qllm"))
HOUR = 3600
TABLES = {
    "users": "id",
    "tokens": "hash",
    "query_llms": "name",
    "query_models": "name",
    "query_model_members": "model, position",
    "usage_events": "id",
    "usage_hourly": "name, hour, user_id, query_model",
    "usage_totals": "name, user_id, query_model",
}


def _at(seconds: int) -> str:
    """An RFC 3339 time ``seconds`` after 2026-03-01T00:00:00Z (microseconds kept)."""
    day, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"2026-03-{1 + day:02d}T{hours:02d}:{minutes:02d}:{secs:02d}.{seconds % 997:06d}Z"


def populate(reg: Registry, events: int = 240) -> dict[str, str]:
    """Users and tokens (one revoked), Query LLMs, a Query Model, and usage of every kind:
    with and without request_id, token, Query Model; exact nano-credit costs."""
    tokens = {user: reg.create_token(user) for user in ("alice", "bob", "carol")}
    reg.revoke_token(tokens["carol"])
    llms = [
        reg.register(body(id=f"openai/gpt-{i}", weight={"type": "static", "weight": i + 1}), token)
        for i, token in enumerate([tokens["alice"], tokens["bob"], None, tokens["alice"]])
    ]
    model = reg.register_model(
        {
            "models": [
                body(id="openai/gpt-0", weight={"type": "static", "weight": 1}),
                body(id="openai/gpt-1", weight={"type": "static", "weight": 2}),
            ],
            "weight": {"type": "static"},
        },
        token=tokens["bob"],
    )
    members = {m.name for m in model.members}
    for who in (tokens["alice"], tokens["bob"], None):
        batch = []
        for i in range(events // 3):
            name = llms[i % len(llms)].name
            batch.append(
                {
                    "name": name,
                    "at": _at(i * 977 + (13 if who is None else 0)),
                    "request_id": f"{who and who[-6:]}-{i}" if i % 3 else None,
                    "chat_prompt_tokens": i,
                    "chat_completion_tokens": 2 * i,
                    "chat_cost": f"0.{i:09d}",
                    "embedding_prompt_tokens": i % 7,
                    "embedding_cost": Decimal(i) / 1000,
                    "query_model": model.name if name in members and i % 2 else None,
                }
            )
        reg.record_usage_many(batch, token=who)
    return tokens


def reads(reg: Registry, tokens: dict[str, str]) -> str:
    """Every read a user can make, as one JSON text: equal texts, equal answers."""
    out: list[Any] = []
    windows = [(None, None), ("2026-03-01T05:30:00Z", "2026-03-02T07:15:00.5Z")]
    callers: list[str | None] = [None, *tokens.values()]

    def attempt(call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            out.append(call(*args, **kwargs))
        except RegistryError as exc:
            out.append([type(exc).__name__, str(exc)])

    names = reg.list(count=1000)
    models = reg.list_models(count=1000)
    for name in names:
        attempt(reg.get, name)
        for start, end in windows:
            attempt(reg.get, name, metadata=True, start=start, end=end)
            for token in tokens.values():
                attempt(reg.get, name, metadata=True, me=True, start=start, end=end, token=token)
    for name in models:
        attempt(reg.get_model, name)
        for start, end in windows:
            attempt(reg.get_model, name, metadata=True, start=start, end=end)
    for caller in callers:
        me = caller is not None
        attempt(reg.count, me=me, token=caller)
        attempt(reg.count_models, me=me, token=caller)
        for sort in SORTS:
            for start, end in windows:
                attempt(reg.list, sort=sort, start=start, end=end, me=me, token=caller)
                attempt(reg.list_models, sort=sort, start=start, end=end, me=me, token=caller)
    for bucket in ("hour", "day", "month"):
        attempt(reg.usage_series, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", bucket)
        attempt(
            reg.usage_series,
            "2026-03-01T00:00:00Z",
            "2026-04-01T00:00:00Z",
            bucket,
            group_by=["name", "user_id", "query_model"],
        )
    return json.dumps(out, default=str, sort_keys=True)


def contents(reg: Registry) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order (event ids left out: each store numbers its own)."""
    result = {}
    for table, key in TABLES.items():
        rows = reg.db.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
        if table == "usage_events":
            rows = [tuple(row)[1:] for row in rows]
        result[table] = [tuple(row) for row in rows]
    return result


def test_file_to_postgres_and_back_answers_every_read_alike(
    tmp_path: Path, pg_location: str
) -> None:
    """file -> PostgreSQL -> file: every read equal to the byte, every table equal, the
    same tokens working (and the revoked one refused) on each; a second run changes nothing."""
    first, last = tmp_path / "first.db", tmp_path / "last.db"
    with Registry(first) as reg:
        tokens = populate(reg)
        expected, rows = reads(reg, tokens), contents(reg)
    there = copy_registry(first, pg_location)
    assert (there.events, there.new_events, there.users, there.tokens) == (240, 240, 3, 3)
    back = copy_registry(pg_location, last, batch=50)
    assert (back.events, back.new_events) == (240, 240)
    for location in (pg_location, last):
        with Registry(location) as reg:
            assert reads(reg, tokens) == expected
            assert contents(reg) == rows
            with pytest.raises(AuthenticationError, match="revoked"):
                reg.count(me=True, token=tokens["carol"])
    again = copy_registry(first, pg_location)
    assert (again.events, again.new_events) == (240, 0)
    with Registry(pg_location) as reg:
        assert contents(reg) == rows


@pytest.mark.parametrize("direction", ["to_postgres", "to_file"])
def test_a_copy_killed_midway_completes_when_run_again(
    tmp_path: Path, pg_location: str, direction: str
) -> None:
    """SIGKILL while the command copies (some batches committed): the rerun finishes it,
    nothing doubled, events without request_id included."""
    source: str | Path
    target: str | Path
    if direction == "to_postgres":
        source, target = tmp_path / "source.db", pg_location
        with Registry(source) as reg:
            populate(reg, events=3_000)
    else:
        source, target = pg_location, tmp_path / "target.db"
        with Registry(source) as reg:
            populate(reg, events=3_000)
    with Registry(source) as reg:
        rows = contents(reg)
    proc = subprocess.Popen(
        [QLLM, "copy", str(source), str(target), "--batch", "20"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        held = _wait_for_events(target, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with Registry(target) as reg:
        part = reg.db.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0]
    assert held <= part < 3_000, "the kill came after the copy had finished"
    done = copy_registry(source, target)
    assert (done.events, done.new_events) == (3_000, 3_000 - part)
    with Registry(target) as reg:
        assert contents(reg) == rows


def _wait_for_events(target: str | Path, proc: subprocess.Popen[bytes]) -> int:
    """Poll the target until some events are there (committed by the copy): how many."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with Registry(target, readonly=True, create=False, timeout=1) as reg:
                count = int(reg.db.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0])
        except RegistryError:  # not created or migrated yet
            count = 0
        if count:
            return count
        time.sleep(0.01)
    raise AssertionError("the copy wrote no event within 60 s")


NEW = body(id="openai/gpt-9")


def _conflict_other_usage(reg: Registry) -> None:
    reg.record_usage(reg.list(count=1)[0], chat_cost="1")


def _conflict_other_creation(reg: Registry) -> None:
    reg.register(NEW)  # the source has it too, registered at another time


def _conflict_own_token(reg: Registry) -> None:
    reg.create_token("mallory")


@pytest.mark.parametrize(
    "conflict", [_conflict_other_usage, _conflict_other_creation, _conflict_own_token]
)
def test_a_target_holding_other_data_is_refused_untouched(
    tmp_path: Path, pg_location: str, conflict: Any
) -> None:
    """A target copied before, then written on its own (usage, a Query LLM registered there
    at another time than in the source, a token): the next copy is refused before it writes
    anything, even what the source gained meanwhile."""
    source = tmp_path / "source.db"
    with Registry(source) as reg:
        populate(reg, events=30)
    copy_registry(source, pg_location)
    with Registry(source) as reg:
        reg.register(NEW)
        reg.record_usage(reg.list(count=1)[0], request_id="later")
    with Registry(pg_location) as reg:
        conflict(reg)
        before = contents(reg)
    with pytest.raises(CopyConflictError, match="nothing was written"):
        copy_registry(source, pg_location)
    with Registry(pg_location) as reg:
        assert contents(reg) == before


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("request_id", "r\x00x", "/request_id must not contain control characters"),
        ("request_id", "\u202er", "/request_id must not contain format characters such as U+202E"),
        ("user_id", "mal\u200bory", "/user_id must not contain format characters such as U+200B"),
    ],
    ids=["nul", "direction", "invisible"],
)
def test_a_source_holding_rows_the_rules_refuse_is_refused_before_writing(
    tmp_path: Path, pg_location: str, column: str, value: str, problem: str
) -> None:
    """A file written under older rules may hold a NUL in a request_id: PostgreSQL cannot
    store it, so the copy failed half-way and could not be rerun (issue 19, item 13). The
    source is now checked by today's rules first: refused, the row named, nothing written;
    once the row is corrected in the source, the copy goes through."""
    source = tmp_path / "source.db"
    with Registry(source) as reg:
        populate(reg, events=30)
        (event_id,) = reg.db.execute("SELECT MAX(id) FROM usage_events").fetchone()
        if column == "user_id":
            reg.db.execute("INSERT INTO users (id, created) VALUES (?, 0)", [value])
            reg.db.execute("UPDATE usage_events SET user_id = ? WHERE id = ?", [value, event_id])
        else:
            reg.db.execute("UPDATE usage_events SET request_id = ? WHERE id = ?", [value, event_id])
    with Registry(pg_location) as reg:
        before = contents(reg)
    with pytest.raises(CopyConflictError) as caught:
        copy_registry(source, pg_location)
    message = str(caught.value)
    assert problem in message
    assert "nothing was written" in message
    assert repr(value) in message  # the row is named, printably
    assert message.isprintable()
    with Registry(pg_location) as reg:
        assert contents(reg) == before
    refused = subprocess.run(
        [QLLM, "copy", str(source), pg_location], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 6
    assert len(refused.stderr.splitlines()) == 1
    with Registry(source) as reg:  # corrected in the source: the copy goes through
        reg.db.execute(f"UPDATE usage_events SET {column} = NULL WHERE id = ?", [event_id])
        reg.db.execute("DELETE FROM users WHERE id = ?", [value])
        reg.rebuild_rollups()
    assert copy_registry(source, pg_location).events == 30


def test_a_copy_that_differs_from_its_source_fails_the_check(tmp_path: Path) -> None:
    """The check compares the rollups too: a source whose totals disagree with its events
    (damaged by hand) gives a target that differs from it, and the copy says so."""
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    with Registry(source) as reg:
        populate(reg, events=30)
        reg.db.execute("UPDATE usage_totals SET chat_prompt_tokens = chat_prompt_tokens + 1")
    with pytest.raises(CopyMismatchError, match="all-time rollup"):
        copy_registry(source, target)


def test_the_command_line(tmp_path: Path, pg_location: str) -> None:
    """``qllm copy FROM TO``: JSON on stdout, one summary line on stderr (none with --quiet);
    exit 6 when refused; a missing FROM is a storage error (5) and creates nothing."""
    source = tmp_path / "source.db"
    with Registry(source) as reg:
        populate(reg, events=30)
    # A password in the URL is never printed (the session's own server trusts local
    # connections, so any password connects; a server of QLLM_TEST_PG may not).
    secret = pg_location
    if not os.environ.get("QLLM_TEST_PG"):
        secret = pg_location.replace("://postgres@", "://postgres:hunter2@", 1)
        assert "hunter2" in secret
    done = subprocess.run(
        [QLLM, "copy", str(source), secret], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    assert json.loads(done.stdout)["events"] == 30
    assert done.stderr.startswith(f"copied {source} to ")
    assert "30 usage events (30 new)" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    quiet = subprocess.run(
        [QLLM, "copy", "--quiet", f"sqlite:{source}", pg_location],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert json.loads(quiet.stdout)["new_events"] == 0
    with Registry(pg_location) as reg:
        reg.record_usage(reg.list(count=1)[0], chat_cost="1")
    refused = subprocess.run(
        [QLLM, "copy", str(source), pg_location], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 6
    assert "nothing was written" in refused.stderr
    missing = subprocess.run(
        [QLLM, "copy", str(tmp_path / "nothing.db"), str(tmp_path / "t.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 5
    assert "no registry at" in missing.stderr
    assert not (tmp_path / "nothing.db").exists()


_keys = st.lists(st.text(max_size=3), unique=True, max_size=8).map(sorted)


@given(_keys, _keys, st.sets(st.text(max_size=3), max_size=4), st.booleans())
def test_merged_streams_find_the_first_difference(
    mine: list[str], theirs: list[str], changed: set[str], missing_ok: bool
) -> None:
    """`_difference` agrees with a plain comparison of the two tables as dicts."""
    source = [(key, "same") for key in mine]
    target = [(key, "other" if key in changed else "same") for key in theirs]
    found = _difference(iter(source), iter(target), "users", missing_ok=missing_ok)
    expected = []
    for key in sorted(set(mine) | set(theirs)):
        if key not in theirs:
            if not missing_ok:
                expected.append(("missing", (key,)))
        elif key not in mine:
            expected.append(("extra", (key,)))
        elif key in changed:
            expected.append(("different", (key,)))
    assert found == (expected[0] if expected else None)


SMALL_PAGE = 50  # rows a read of the copy may return, in the test below


@pytest.mark.parametrize("direction", ["to postgres", "to a file"])
def test_the_end_check_reads_a_page_of_rows_at_a_time(
    tmp_path: Path, pg_location: str, direction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read of a copy, the check of the rollups at its end included, returns at most
    a page of rows, however many rollup rows a Query LLM has: memory holds pages, not
    tables. (The check read every rollup row of up to a page of Query LLMs at once: 519
    MB for a million events over 40 days.) Here 3 Query LLMs have 200 hourly rows each,
    and a page is 50 rows. A rollup row changed on the target is still found."""
    import registry.copy as copying
    from registry.store.sql import SqlTx

    largest: dict[str, int] = {}
    for method in ("copy_page", "event_page", "statistics", "rebuilt_page", "rollup_rows"):
        if not hasattr(SqlTx, method):
            continue
        read = getattr(SqlTx, method)

        def measured(self: Any, *args: Any, _read: Any = read, _name: str = method) -> Any:
            rows = _read(self, *args)
            largest[_name] = max(largest.get(_name, 0), len(rows))
            return rows

        monkeypatch.setattr(SqlTx, method, measured)
    monkeypatch.setattr(copying, "PAGE", SMALL_PAGE)
    monkeypatch.setattr(copying, "BATCH", SMALL_PAGE)
    source: str | Path = tmp_path / "source.db"
    target: str | Path = pg_location
    if direction == "to a file":
        source, target = pg_location, tmp_path / "target.db"
    with Registry(source) as reg:
        names = [reg.register(body(temperature=t)).name for t in (0.1, 0.2, 0.3)]
        reg.record_usage_many(
            {"name": name, "at": f"2026-11-{1 + h // 24:02d}T{h % 24:02d}:30:00Z"}
            for name in names
            for h in range(200)
        )
    copied = copy_registry(source, target, batch=SMALL_PAGE)
    assert copied.events == 600
    assert largest, "no read was measured"
    assert max(largest.values()) <= SMALL_PAGE + 1, largest

    with Registry(target) as reg:
        reg.db.execute(
            "UPDATE usage_hourly SET requests = 2 WHERE name = ? AND hour = ?",
            [names[1], times.parse("2026-11-05T07:00:00Z")],
        )
    with pytest.raises(CopyMismatchError):
        copy_registry(source, target, batch=SMALL_PAGE)


def test_completions_and_marks_are_copied_and_checked(tmp_path: Path, pg_location: str) -> None:
    """The worked example's completions and marks (a re-mark and an unmark included), file ->
    PostgreSQL -> file: every completion read alike (embedding bytes too), every look-up's
    weights alike; a target whose mark differs is refused before anything is written."""
    from tests.behaviour.test_training import VECTORS, stocked

    first, last = tmp_path / "first.db", tmp_path / "last.db"
    with Registry(first) as reg:
        stocked(reg)
        reg.mark("c1", "B")
        reg.unmark("c2")
        ids = [c["record"]["id"] for c in VECTORS["completions"]]
        expected = [reg.get_completion(i, embedding=True) for i in ids]
        looks = [
            reg.weights(q["query_model"], q["embedding"], q["response_format_hash"])
            for q in VECTORS["queries"]
        ]
    there = copy_registry(first, pg_location)
    assert (there.completions, there.marks) == (7, 5)
    assert "7 completions (5 marked)" in there.summary()
    copy_registry(pg_location, last)
    for location in (pg_location, last):
        with Registry(location) as reg:
            assert [reg.get_completion(i, embedding=True) for i in ids] == expected
            assert [
                reg.weights(q["query_model"], q["embedding"], q["response_format_hash"])
                for q in VECTORS["queries"]
            ] == looks
    with Registry(last) as reg:
        reg.mark("c3", "B")
    with pytest.raises(CopyConflictError, match="mark of completion c3"):
        copy_registry(first, last)
