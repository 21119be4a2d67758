"""Many processes writing and reading one registry file at once lose, double and tear nothing."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from registry.registry import Registry
from tests.support.data import COUNTERS, body
from tests.support.workers import (
    all_migrations,
    batch_events,
    brute_force_rollups,
    event,
    finish,
    integrity,
    number_of,
    release,
    rollups,
    single_ids,
    spawn,
    sums,
)

SINGLE_WRITERS = 6  # record_usage, one event per call; paired, each pair sharing request_ids
OWN_EVENTS = 200  # per single writer
SHARED_EVENTS = 60  # per pair: both writers of the pair record each of them
BATCH_WRITERS = 2  # record_usage_many
BATCHES = 6  # per batch writer, of BATCH_SIZE events
BATCH_SIZE = 500
SHARED_BATCHES = 2  # recorded by both batch writers: each must be counted once
READERS = 2

pytestmark = pytest.mark.slow


def test_concurrent_writers_lose_nothing_and_readers_see_snapshots(tmp_path: Path) -> None:
    """8 writers and 2 readers at once: exact totals, repeats counted once, reads consistent."""
    db = tmp_path / "registry.db"
    with Registry(db) as reg:
        main = reg.register(body()).name
        other = reg.register(body(temperature=0.5)).name
        pair_tokens = [reg.create_token(f"pair{p}") for p in range(SINGLE_WRITERS // 2)]
        batch_token = reg.create_token("batcher")
    go = tmp_path / "barrier"
    go.mkdir()
    stop = tmp_path / "stop"
    tags = [
        [f"batch{w}-{b}" for b in range(BATCHES)] + [f"shared-{s}" for s in range(SHARED_BATCHES)]
        for w in range(BATCH_WRITERS)
    ]
    writers: list[subprocess.Popen[str]] = []
    for w in range(SINGLE_WRITERS):
        params = {"db": str(db), "go": str(go), "name": main, "worker": w, "pair": w // 2}
        params |= {"own": OWN_EVENTS, "shared": SHARED_EVENTS, "token": pair_tokens[w // 2]}
        writers.append(spawn("record-single", params))
    for w in range(BATCH_WRITERS):
        params = {"db": str(db), "go": str(go), "names": [main, other], "worker": w}
        params |= {"tags": tags[w], "size": BATCH_SIZE, "token": batch_token}
        writers.append(spawn("record-batches", params))
    readers = [
        spawn(
            "read-loop",
            {"db": str(db), "go": str(go), "stop": str(stop), "name": main, "worker": r},
        )
        for r in range(READERS)
    ]
    release(go, len(writers) + len(readers), writers + readers)
    try:
        reports = [finish(proc) for proc in writers]
    finally:
        stop.touch()
    reads = [finish(proc) for proc in readers]

    # Which events exist, as the writers saw it.
    expected: dict[str, list[dict[str, Any]]] = {main: [], other: []}
    written_ids: list[str] = []
    for w, report in enumerate(reports[:SINGLE_WRITERS]):
        ids = single_ids(w, OWN_EVENTS, w // 2, SHARED_EVENTS)
        assert sorted(report["written"] + report["repeated"]) == sorted(ids)
        assert all(i.startswith("pair") for i in report["repeated"])
        written_ids += report["written"]
        expected[main] += [event(main, number_of(i), i) for i in report["written"]]
    for p in range(SINGLE_WRITERS // 2):  # each shared request_id: new for exactly one writer
        shared = [i for i in written_ids if i.startswith(f"pair{p}-")]
        assert sorted(shared) == sorted(f"pair{p}-{j}" for j in range(SHARED_EVENTS))
    for w, report in enumerate(reports[SINGLE_WRITERS:]):
        for number, tag in enumerate(tags[w]):  # the worker's batch `number` went to this name:
            name = [main, other][number % 2]
            if tag.startswith("shared"):
                if w == 0:  # both writers recorded the same events: count them once
                    expected[name] += batch_events(name, tag, BATCH_SIZE)
            else:
                assert report[tag] == BATCH_SIZE
                expected[name] += batch_events(name, tag, BATCH_SIZE)
    for s in range(SHARED_BATCHES):  # a shared batch: all new for one writer, none for the other
        counts = sorted(report[f"shared-{s}"] for report in reports[SINGLE_WRITERS:])
        assert counts == [0, BATCH_SIZE]

    with Registry(db) as reg:
        for name, events in expected.items():
            got = reg.get(name, metadata=True)
            assert {key: got[key] for key in COUNTERS} == sums(events)
        stored = reg.db.execute("SELECT COUNT(*), COUNT(request_id) FROM usage_events").fetchone()
        with_ids = sum(1 for events in expected.values() for e in events if e["request_id"])
        assert stored == (sum(len(events) for events in expected.values()), with_ids)
        before = rollups(reg.db.conn)
        assert before == brute_force_rollups(reg.db.conn)
        reg.rebuild_rollups()
        assert rollups(reg.db.conn) == before
    assert integrity(db) == "ok"

    for report in reads:
        assert report["violations"] == []
        assert report["reads"] > 0
        assert report["distinct"] >= 2  # the readers did run while the writers wrote


def test_two_registries_in_one_process_share_the_file(tmp_path: Path) -> None:
    """Two open registries on one file see each other's commits, and repeats count once."""
    db = tmp_path / "registry.db"
    with Registry(db) as first, Registry(db) as second:
        name = first.register(body()).name
        assert second.get(name)["name"] == name
        one = event(name, 1, "same")
        assert first.record_usage_many([one]) == 1
        assert second.record_usage_many([one]) == 0
        assert second.get(name, metadata=True)["requests"] == 1
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


OPENERS = 8
ROUNDS = 20


def schema_of(db: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The migrations applied to the file, and its tables, indexes and views (type, name)."""
    conn = sqlite3.connect(db)
    try:
        applied = conn.execute("SELECT migration_set, name FROM _sqlite_migrations ORDER BY id")
        objects = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY 1, 2"
        )
        return applied.fetchall(), objects.fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("registers", [False, True], ids=["open", "open-and-register"])
def test_processes_opening_a_new_file_together_make_one_schema(
    tmp_path: Path, registers: bool
) -> None:
    """8 processes creating one brand-new file at the same moment: no error, exactly one schema."""
    Registry(tmp_path / "reference.db").close()  # the schema one process alone makes
    migrations, objects = schema_of(tmp_path / "reference.db")
    assert [name for _, name in migrations] == all_migrations()
    rounds = [
        {"db": str(tmp_path / f"round{r}" / "sub" / "registry.db"), "go": str(tmp_path / f"go{r}")}
        for r in range(ROUNDS)
    ]  # each file's folder does not exist yet either
    params: dict[str, Any] = {"rounds": rounds, "body": body() if registers else None}
    procs = [spawn("open-race", params | {"tag": f"opener{i}"}) for i in range(OPENERS)]
    for round_ in rounds:
        Path(round_["go"]).mkdir()
        release(Path(round_["go"]), OPENERS, procs)
    for proc in procs:
        assert finish(proc) == {"ok": True}
    for round_ in rounds:
        db = Path(round_["db"])
        assert schema_of(db) == (migrations, objects)
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            registered = conn.execute("SELECT COUNT(*) FROM query_llms").fetchone()[0]
            assert registered == (1 if registers else 0)
        finally:
            conn.close()
