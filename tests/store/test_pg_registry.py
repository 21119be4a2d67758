"""The registry on PostgreSQL, beyond the behaviour suite (which runs there too, as the
``postgres`` surface): the command line and server on a URL, concurrent writer processes,
batches through COPY."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import registry
from registry.events import Chunk
from registry.registry import Registry
from registry.store.spool import Spool
from tests.support import serving
from tests.support.data import COUNTERS, body
from tests.support.workers import (
    _brute_force,
    batch_events,
    event,
    finish,
    number_of,
    release,
    single_ids,
    spawn,
    sums,
)

QLLM = str(Path(sys.executable).with_name("qllm"))


def rollups(reg: Registry) -> dict[str, list[tuple[Any, ...]]]:
    keys = {"usage_hourly": "1, 2, 3, 4", "usage_totals": "1, 2, 3"}
    return {
        t: reg.db.execute(f"SELECT * FROM {t} ORDER BY {k}").fetchall() for t, k in keys.items()
    }


def brute_force(reg: Registry) -> dict[str, list[tuple[Any, ...]]]:
    return {t: reg.db.execute(sql).fetchall() for t, sql in _brute_force(True).items()}


def qllm(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Any:
    done = subprocess.run(
        [QLLM, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_command_line_takes_a_url(pg_location: str) -> None:
    """--db and QLLM_DB take a postgresql:// URL; the answers are those of a file."""
    llm = qllm("register", "-", "--db", pg_location, stdin=json.dumps(body()))
    env = os.environ | {"QLLM_DB": pg_location}
    args = ["usage", "record", llm["name"], "--request-id", "r1", "--chat-cost", "0.5"]
    qllm(*args, env=env)
    got = qllm("get", llm["name"], "--metadata", env=env)
    assert got["requests"] == 1
    assert got["chat_cost"] in ("0.5", 0.5)
    assert (got["tokens"], got["cost"]) == (0, got["chat_cost"])  # the command line's totals
    del got["tokens"], got["cost"]
    with Registry(pg_location) as reg:
        assert reg.get(llm["name"], metadata=True) == got | {
            "chat_cost": reg.get(llm["name"], metadata=True)["chat_cost"]
        }


def test_where_never_shows_the_password() -> None:
    env = os.environ | {"QLLM_DB": "postgresql://alice:s3cret@db.invalid:5432/qllm"}
    shown = qllm("where", "--json", env=env)["db"]
    assert "s3cret" not in shown
    assert shown.startswith("postgresql://alice@db.invalid:5432/qllm")
    plain = subprocess.run(
        [QLLM, "where"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert plain == shown + "\n"


def test_serve_takes_a_url(pg_location: str, tmp_path: Path) -> None:
    """qllm serve --db URL: a real server on PostgreSQL, its answers those of the library."""
    log = tmp_path / "server.log"
    server = serving.start(["--db", pg_location], log)
    try:
        client = registry.Client(f"http://127.0.0.1:{serving.port_of(server, log)}")
        deadline = time.monotonic() + 30
        while True:
            try:
                client.health()
                break
            except registry.StorageError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        name = client.register(body()).name
        assert client.record_usage(name, request_id="a", chat_prompt_tokens=3) == 1
        assert (
            client.record_usage_many([{"name": name, "request_id": "a", "chat_prompt_tokens": 3}])
            == 0
        )
        with Registry(pg_location) as reg:
            assert client.get(name, metadata=True) == reg.get(name, metadata=True)
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_large_batch_goes_in_whole_and_a_conflict_names_its_event(pg_location: str) -> None:
    with Registry(pg_location) as reg:
        name = reg.register(body()).name
        events = batch_events(name, "big", 5000)
        assert reg.record_usage_many(iter(events)) == 5000
        keyed = [e for e in events if e["request_id"]]
        assert reg.record_usage_many(keyed[:10]) == 0  # repeats: nothing new
        changed = [*keyed[:3], {**keyed[3], "chat_prompt_tokens": 1}]
        with pytest.raises(registry.ConflictError) as caught:
            reg.record_usage_many(changed)
        assert caught.value.errors[0][0] == "/3/request_id"
        assert reg.get(name, metadata=True)["requests"] == 5000
        assert rollups(reg) == brute_force(reg)


SINGLE_WRITERS = 4  # paired: each pair shares request_ids
OWN_EVENTS = 100
SHARED_EVENTS = 40
BATCH_WRITERS = 2
BATCHES = 4
BATCH_SIZE = 300
SHARED_BATCHES = 2


@pytest.mark.slow
def test_concurrent_processes_lose_and_double_nothing(pg_location: str, tmp_path: Path) -> None:
    """6 processes at once on one database, single events and batches, some request_ids
    recorded by two of them: exact totals, each repeat counted once, rollups == a rebuild."""
    with Registry(pg_location) as reg:
        main = reg.register(body()).name
        other = reg.register(body(temperature=0.5)).name
        pair_tokens = [reg.create_token(f"pair{p}") for p in range(SINGLE_WRITERS // 2)]
        batch_token = reg.create_token("batcher")
    go = tmp_path / "barrier"
    go.mkdir()
    tags = [
        [f"batch{w}-{b}" for b in range(BATCHES)] + [f"shared-{s}" for s in range(SHARED_BATCHES)]
        for w in range(BATCH_WRITERS)
    ]
    writers = []
    for w in range(SINGLE_WRITERS):
        params = {"db": pg_location, "go": str(go), "name": main, "worker": w, "pair": w // 2}
        params |= {"own": OWN_EVENTS, "shared": SHARED_EVENTS, "token": pair_tokens[w // 2]}
        writers.append(spawn("record-single", params))
    for w in range(BATCH_WRITERS):
        params = {"db": pg_location, "go": str(go), "names": [main, other], "worker": w}
        params |= {"tags": tags[w], "size": BATCH_SIZE, "token": batch_token}
        writers.append(spawn("record-batches", params))
    release(go, len(writers), writers)
    reports = [finish(proc) for proc in writers]

    expected: dict[str, list[dict[str, Any]]] = {main: [], other: []}
    written_ids: list[str] = []
    for w, report in enumerate(reports[:SINGLE_WRITERS]):
        ids = single_ids(w, OWN_EVENTS, w // 2, SHARED_EVENTS)
        assert sorted(report["written"] + report["repeated"]) == sorted(ids)
        written_ids += report["written"]
        expected[main] += [event(main, number_of(i), i) for i in report["written"]]
    for p in range(SINGLE_WRITERS // 2):
        shared = [i for i in written_ids if i.startswith(f"pair{p}-")]
        assert sorted(shared) == sorted(f"pair{p}-{j}" for j in range(SHARED_EVENTS))
    for w, report in enumerate(reports[SINGLE_WRITERS:]):
        for number, tag in enumerate(tags[w]):
            name = [main, other][number % 2]
            if tag.startswith("shared"):
                if w == 0:
                    expected[name] += batch_events(name, tag, BATCH_SIZE)
            else:
                assert report[tag] == BATCH_SIZE
                expected[name] += batch_events(name, tag, BATCH_SIZE)
    for s in range(SHARED_BATCHES):
        counts = sorted(report[f"shared-{s}"] for report in reports[SINGLE_WRITERS:])
        assert counts == [0, BATCH_SIZE]

    with Registry(pg_location) as reg:
        for name, events in expected.items():
            got = reg.get(name, metadata=True)
            assert {key: got[key] for key in COUNTERS} == sums(events)
        stored = reg.db.execute("SELECT COUNT(*) FROM usage_events").fetchone()
        assert stored == (sum(len(events) for events in expected.values()),)
        before = rollups(reg)
        assert before == brute_force(reg)
        reg.rebuild_rollups()
        assert rollups(reg) == before


def test_a_group_job_past_64_bits_fails_alone(pg_location: str) -> None:
    """Group commit on PostgreSQL: a job whose rollup would pass 2**63 rolls back to its
    savepoint, with SQLite's error; the other jobs are written."""
    with Registry(pg_location) as reg:
        name = reg.register(body()).name
        # Totals near the limit (as after years of use): the next 10 tokens pass it.
        reg.db.execute(
            "INSERT INTO usage_totals (name, requests, chat_prompt_tokens) VALUES (?, 1, ?)",
            [name, 2**63 - 5],
        )
        over = {"name": name, "chat_prompt_tokens": 10}
        jobs = [
            reg.prepare_usage([over], batch=False),
            reg.prepare_usage([{"name": name, "request_id": "ok"}]),
        ]
        outcomes = reg.record_usage_groups(jobs)
        assert isinstance(outcomes[0], registry.ValidationError)
        assert "past 2**63" in str(outcomes[0])
        assert outcomes[1] == 1
        assert reg.db.execute("SELECT COUNT(*) FROM usage_events").fetchone() == (1,)


class _Stalled(Spool):
    """A job's spool whose rows wait, the first time they are read, until the other
    group's writer reaches the same point: both groups have added their first job."""

    def __init__(self, spool: Spool, barrier: threading.Barrier) -> None:
        super().__init__(batch=spool.batch)
        for chunk in spool.chunks():
            self.add(chunk)
        self._barrier = barrier

    def chunks(self) -> Iterator[Chunk]:
        if not self._barrier.broken:
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait()
                self._barrier.abort()  # once: a group run again does not wait
        yield from super().chunks()


def deadlocks(location: str) -> int:
    """Deadlocks PostgreSQL detected in the database (counted as its sessions end)."""
    with Registry(location) as reg:
        row = reg.db.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0])


def test_two_group_commits_take_rollup_rows_in_one_order(pg_location: str) -> None:
    """Two writers (two pools, as two servers), each a group of two jobs on the same two
    Query LLMs in opposite orders, both past their first job before either goes on: the
    rollup rows are locked at the end of each group, in key order, so neither waits for
    the other in a cycle. (Each job locking its own rows as it went deadlocked here.)"""
    with Registry(pg_location) as reg:
        first, second = (reg.register(body(temperature=t)).name for t in (0.25, 0.75))
    barrier = threading.Barrier(2, timeout=10)
    before = deadlocks(pg_location)

    def group(names: tuple[str, str], tag: str) -> list[Any]:
        with Registry(pg_location) as reg:
            jobs = [reg.prepare_usage([{"name": n, "request_id": f"{tag}-{n}"}]) for n in names]
            jobs[1] = _Stalled(jobs[1], barrier)
            return reg.record_usage_groups(jobs)

    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(group, (first, second), "a")
        other = pool.submit(group, (second, first), "b")
        assert one.result(timeout=60) == [1, 1]
        assert other.result(timeout=60) == [1, 1]
    time.sleep(0.5)  # the writers' sessions have ended: their statistics are in
    assert deadlocks(pg_location) == before
    with Registry(pg_location) as reg:
        assert reg.get(first, metadata=True)["requests"] == 2
        assert rollups(reg) == brute_force(reg)


def test_a_group_job_passing_64_bits_with_the_jobs_before_it_fails_alone(
    pg_location: str,
) -> None:
    """The rollups of a group are added at its end, yet each job is checked against the
    totals as the jobs before it leave them: of two jobs that each fit alone but not
    together, the second fails, in its savepoint, and nothing of it is kept."""
    with Registry(pg_location) as reg:
        name = reg.register(body()).name
        reg.db.execute(
            "INSERT INTO usage_totals (name, requests, chat_prompt_tokens) VALUES (?, 1, ?)",
            [name, 2**63 - 100],
        )
        jobs = [
            reg.prepare_usage([{"name": name, "request_id": "a", "chat_prompt_tokens": 60}]),
            reg.prepare_usage([{"name": name, "request_id": "b", "chat_prompt_tokens": 60}]),
            reg.prepare_usage([{"name": name, "request_id": "c", "chat_prompt_tokens": 30}]),
        ]
        outcomes = reg.record_usage_groups(jobs)
        assert outcomes[0] == 1
        assert isinstance(outcomes[1], registry.ValidationError)
        assert "past 2**63" in str(outcomes[1])
        assert outcomes[2] == 1
        stored = reg.db.execute("SELECT request_id FROM usage_events ORDER BY 1").fetchall()
        assert [r for (r,) in stored] == ["a", "c"]
        total = reg.db.execute(
            "SELECT chat_prompt_tokens FROM usage_totals WHERE name = ?", [name]
        ).fetchone()
        assert total == (2**63 - 10,)


def test_a_total_overtaken_before_the_rollups_are_applied_runs_the_group_again(
    pg_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer commits, between a group's checks and its rollups, sums that take a
    total past 2**63 with this group's: the group runs again, and this time its check
    refuses the job at fault alone."""
    from registry.store.postgres.tx import PostgresTx

    with Registry(pg_location) as reg:
        name = reg.register(body()).name
        reg.db.execute(
            "INSERT INTO usage_totals (name, requests, chat_prompt_tokens) VALUES (?, 1, ?)",
            [name, 2**63 - 100],
        )
        applied = PostgresTx.apply_rollups
        attempts: list[PostgresTx] = []

        def overtaken(tx: PostgresTx) -> None:
            if not attempts:  # the other writer, in its own session, not waiting on ours
                reg.db.execute(
                    "UPDATE usage_totals SET chat_prompt_tokens = chat_prompt_tokens + 60"
                    " WHERE name = ?",
                    [name],
                )
            attempts.append(tx)
            applied(tx)

        monkeypatch.setattr(PostgresTx, "apply_rollups", overtaken)
        jobs = [
            reg.prepare_usage([{"name": name, "request_id": "big", "chat_prompt_tokens": 50}]),
            reg.prepare_usage([{"name": name, "request_id": "small"}]),
        ]
        outcomes = reg.record_usage_groups(jobs)
        assert len(attempts) == 2
        assert isinstance(outcomes[0], registry.ValidationError)
        assert outcomes[1] == 1
        stored = reg.db.execute("SELECT request_id FROM usage_events").fetchall()
        assert stored == [("small",)]


IMPORTED = 150_000  # events of the import below: seconds of inserting on this machine
PROBE_TIMEOUT = 1.0  # the concurrent writer's lock timeout


def test_a_single_event_is_written_during_a_large_import(pg_location: str) -> None:
    """While a batch of 150,000 events goes in (one transaction, all or nothing), single
    events on the same Query LLMs and hours (the same hourly and all-time rollup rows)
    are written by another writer, each within its 1 s lock timeout: the batch inserts its
    events first and takes the rollup rows only in its last statements. (Locked from the
    merge of its events to its commit, they timed out.)"""
    with Registry(pg_location) as reg:
        names = [reg.register(body(temperature=t)).name for t in (0.25, 0.75)]

    def batch() -> Iterator[dict[str, Any]]:
        for i in range(IMPORTED):
            at = f"2026-11-01T0{i % 2}:{i % 60:02d}:00Z"
            yield {"name": names[i % 2], "at": at, "request_id": f"imp-{i}"}

    done = threading.Event()

    def importing() -> int:
        try:
            with Registry(pg_location) as importer:
                return importer.record_usage_many(batch())
        finally:
            done.set()

    waits: list[float] = []
    failures: list[str] = []
    with Registry(pg_location, timeout=PROBE_TIMEOUT) as prober, ThreadPoolExecutor(1) as pool:
        imported = pool.submit(importing)
        n = 0
        while not done.is_set():
            began = time.monotonic()
            try:
                prober.record_usage(
                    names[n % 2], at=f"2026-11-01T0{n % 2}:30:00Z", request_id=f"probe-{n}"
                )
            except registry.StorageError as exc:
                failures.append(str(exc))
            waits.append(time.monotonic() - began)
            n += 1
            time.sleep(0.02)
        assert imported.result() == IMPORTED
    assert not failures, failures[:3]
    assert len(waits) > 20
    with Registry(pg_location) as reg:
        total = sum(reg.get(name, metadata=True)["requests"] for name in names)
        assert total == IMPORTED + len(waits)
        assert rollups(reg) == brute_force(reg)
