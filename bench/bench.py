"""``make bench``: the registry's figures next to raw ``sqlite3`` doing the same work, in one run.

Raw sqlite3 is the floor: the same rows into the same schema with the same
pragmas (WAL, synchronous=FULL, foreign keys on), with no validation; for
queries, a covering index on ``(name, at, user_id, amounts)`` that the
registry does not have (it keeps hourly rollups instead). Ratios are
registry speed / raw speed (above 1: the registry is faster).

    python bench/bench.py            # the full run (several minutes)
    python bench/bench.py --quick    # small sizes, to check the script works
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import rfc8785
import xxhash

import registry
from registry import times
from registry.store.sql import INSERT_EVENT

ROOT = Path(__file__).resolve().parent.parent
# The raw baseline inserts the same rows into the same table, repeats skipped.
RAW_INSERT = INSERT_EVENT + " ON CONFLICT (request_id) DO NOTHING"
START = times.parse("2026-01-01T00:00:00Z")
HOUR = 3_600_000_000
COVERING = (
    "CREATE INDEX events_covering ON usage_events (name, at, user_id, chat_completion_tokens,"
    " chat_prompt_tokens, chat_cost, embedding_completion_tokens, embedding_prompt_tokens,"
    " embedding_cost)"
)
SUMS = (
    "SELECT COUNT(*), SUM(chat_completion_tokens), SUM(chat_prompt_tokens), SUM(chat_cost),"
    " SUM(embedding_completion_tokens), SUM(embedding_prompt_tokens), SUM(embedding_cost)"
    " FROM usage_events INDEXED BY events_covering WHERE name = ?"
)

Row = tuple[Any, ...]
results: list[tuple[str, str, str, float, str, bool | None]] = []


def record(what: str, ours: str, raw: str, ratio: float, goal: str, ok: bool | None) -> None:
    results.append((what, ours, raw, ratio, goal, ok))
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"  {what}: qllm {ours}, raw {raw}, ratio {ratio:.2f} (goal {goal}){mark}", flush=True)


def body(i: int) -> dict[str, Any]:
    return {"id": f"bench/model-{i}", "mode": "generate", "weight": {"type": "static", "weight": 1}}


def events(names: list[str], count: int, hours: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """``count`` events spread evenly over ``hours``, as a gateway would log them."""
    rng = random.Random(seed)
    step = hours * HOUR // count
    for i in range(count):
        prompt = rng.randrange(100, 4000)
        yield {
            "name": names[rng.randrange(len(names))],
            "at": times.render(START + i * step + rng.randrange(step)),
            "request_id": f"req-{seed}-{i}",
            "chat_prompt_tokens": prompt,
            "chat_completion_tokens": rng.randrange(10, 800),
            "chat_cost": f"{prompt * 25 / 10**7:.7f}",
            "embedding_prompt_tokens": 64,
            "embedding_cost": 0.0000013,
        }


OFFSET_0530 = 5 * HOUR + 30 * 60_000_000  # +05:30, in microseconds


def realistic_events(
    names: list[str], count: int, days: int, seed: int = 3
) -> Iterator[dict[str, Any]]:
    """``count`` events as exporters write them: over ``days``, a unique random request_id
    each, costs half as decimal strings and half as JSON numbers, times in UTC (``Z``) or
    India (``+05:30``), with and without fractions of a second. In time order, as logs are."""
    rng = random.Random(seed)
    step = days * 24 * HOUR // count
    for i in range(count):
        moment = START + i * step + rng.randrange(step)
        shape = i % 4
        if shape < 2:  # UTC, whole seconds or milliseconds
            text = times.render(moment)  # ...SS.ffffffZ
            at = text[:19] + "Z" if shape == 0 else text[:23] + "Z"
        else:  # +05:30 local time, microseconds or whole seconds
            local = times.render(moment + OFFSET_0530)
            at = (local[:26] if shape == 2 else local[:19]) + "+05:30"
        prompt = rng.randrange(100, 8000)
        completion = rng.randrange(10, 2000)
        cost = (prompt * 150 + completion * 600) / 10**9  # credits, up to 9 places
        event: dict[str, Any] = {
            "name": names[rng.randrange(len(names))],
            "at": at,
            "request_id": f"chatcmpl-{rng.getrandbits(96):024x}",
            "chat_prompt_tokens": prompt,
            "chat_completion_tokens": completion,
            # exporters that keep costs exact write strings; the others, JSON numbers
            "chat_cost": f"{cost:.9f}".rstrip("0") if i % 2 else cost,
        }
        if rng.random() < 0.25:  # some requests also embed
            event["embedding_prompt_tokens"] = rng.randrange(8, 512)
            event["embedding_cost"] = (
                f"{event['embedding_prompt_tokens'] * 2e-8:.8f}" if i % 2 else 1.3e-6
            )
        yield event


def exact_row(event: dict[str, Any], user: str | None) -> Row:
    """The row the registry writes for ``event``, computed outside the registry
    (exact decimals, no validation): the raw baseline of the realistic ingest."""
    return (
        event["name"],
        user,
        times.parse(event["at"]),
        event["request_id"],
        event.get("chat_completion_tokens", 0),
        event.get("chat_prompt_tokens", 0),
        int(Decimal(str(event.get("chat_cost", 0))).scaleb(9)),
        event.get("embedding_completion_tokens", 0),
        event.get("embedding_prompt_tokens", 0),
        int(Decimal(str(event.get("embedding_cost", 0))).scaleb(9)),
        event.get("query_model"),
    )


def raw_row(event: dict[str, Any], user: str | None) -> Row:
    """The same event as the row the registry writes, computed without validation."""
    return (
        event["name"],
        user,
        times.parse(event["at"]),
        event["request_id"],
        event["chat_completion_tokens"],
        event["chat_prompt_tokens"],
        round(float(event["chat_cost"]) * 10**9),
        0,
        event["embedding_prompt_tokens"],
        round(event["embedding_cost"] * 10**9),
        event.get("query_model"),
    )


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def fresh(work: Path, label: str, llms: int) -> tuple[registry.Registry, list[str]]:
    """A new registry file with ``llms`` Query LLMs registered."""
    path = work / f"{label}.db"
    reg = registry.Registry(path)
    names = [reg.register(body(i)).name for i in range(llms)]
    return reg, names


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def median_time(runs: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    return statistics.median(timed(fn, *args, **kwargs) for _ in range(runs))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def per_second(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s"


# --- the measurements ----------------------------------------------------------------------


def repeat(rounds: int, fn: Callable[[], None]) -> None:
    for _ in range(rounds):
        fn()


def bench_validate(count: int) -> None:
    """Validate-and-name against the bare rfc8785 + XXH3-128 of the same normalized dicts."""
    bodies = [json.loads(p.read_text()) for p in sorted((ROOT / "examples/query-llms").glob("*"))]
    vectors = json.loads((ROOT / "tests/fixtures/vectors.json").read_text())
    bodies += [case["body"] for case in vectors["valid"]]
    normalized = []
    for b in bodies:
        d = registry.dump(registry.validate(b))
        d.pop("name")
        training = d.pop("training_table_name", None) is not None
        normalized.append((d, training))
    rounds = max(1, count // len(bodies))

    def ours() -> None:
        for b in bodies:
            llm = registry.validate(b)
            llm.name  # noqa: B018 - computing the names is the point
            llm.training_table_name  # noqa: B018

    def floor() -> None:
        for d, training in normalized:
            xxhash.xxh3_128_intdigest(rfc8785.dumps(d))
            if training:
                xxhash.xxh3_128_intdigest(
                    rfc8785.dumps({k: v for k, v in d.items() if k != "weight"})
                )

    t_ours = min(timed(repeat, rounds, ours) for _ in range(3))
    t_floor = min(timed(repeat, rounds, floor) for _ in range(3))
    n = rounds * len(bodies)
    ratio = t_floor / t_ours
    record(
        "validate + name (bodies/s)",
        per_second(n, t_ours),
        per_second(n, t_floor),
        ratio,
        ">= 0.5",
        ratio >= 0.5,
    )


def bench_batch_ingest(work: Path, count: int) -> registry.Registry:
    """record_usage_many from a generator vs raw executemany, one transaction each.

    Both inputs are made before the clock starts (dicts for the registry, the
    finished rows for raw), each side runs twice on a new file, alternating,
    and the faster run of each counts: one run is at the mercy of the disk.
    """
    hours = 24 * 10
    names = [registry.validate(body(i)).name for i in range(20)]
    given = list(events(names, count, hours))
    rows = [raw_row(e, None) for e in given]
    gc.freeze()  # the inputs are not the work: keep the collector off them
    t_ours = t_raw = locked = float("inf")
    for attempt in range(2):
        reg, _ = fresh(work, f"ingest-{attempt}", 20)
        t_ours = min(t_ours, timed(reg.record_usage_many, (e for e in given)))
        locked = min(locked, reg.last_lock_seconds)
        if attempt == 0:
            kept = reg  # its file serves the window measurement
        else:
            reg.close()
        raw_path = work / f"ingest-raw-{attempt}.db"
        registry.Registry(raw_path).close()  # the same schema
        conn = raw_connection(raw_path)
        conn.executemany(
            "INSERT INTO query_llms (name, body, model, mode, weight_type, created)"
            " VALUES (?, '{}', 'm', 'generate', 'static', 0)",
            [(n,) for n in names],
        )
        t_raw = min(t_raw, timed(raw_ingest, conn, rows))
        conn.close()
    del given, rows
    gc.unfreeze()
    ratio = t_raw / t_ours
    record(
        f"batch ingest, {count:,} events (events/s)",
        per_second(count, t_ours),
        per_second(count, t_raw),
        ratio,
        ">= 0.7",
        ratio >= 0.7,
    )
    # Validation and staging happen before the write lock: other writers wait
    # only for the move of the staged rows (the "raw" column: the whole import).
    share = locked / t_ours
    record(
        f"write lock held per import, {count:,} events",
        ms(locked),
        ms(t_ours),
        share,
        "<= 0.5 of the import",
        share <= 0.5,
    )
    return kept


USERS = ("alice", "bob")


def by_user(given: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The two users' shares of the events, interleaved in runs of three."""
    return {
        user: given[k * 3 :: 6] + given[k * 3 + 1 :: 6] + given[k * 3 + 2 :: 6]
        for k, user in enumerate(USERS)
    }


def bench_realistic_ingest(work: Path, count: int) -> None:
    """Usage logs as they come (see `realistic_events`): two users' batches through
    record_usage_many vs raw executemany of the same rows, already converted, in one
    transaction. Best of two alternating runs, as `bench_batch_ingest`."""
    names = [registry.validate(body(i)).name for i in range(200)]
    shares = by_user(list(realistic_events(names, count, 30)))
    rows = [exact_row(e, user) for user, share in shares.items() for e in share]
    gc.freeze()
    t_ours = t_raw = float("inf")
    for attempt in range(2):
        reg, _ = fresh(work, f"realistic-{attempt}", 200)
        tokens = {user: reg.create_token(user) for user in USERS}

        def ours(reg: registry.Registry = reg, tokens: dict[str, str] = tokens) -> None:
            for user, share in shares.items():
                reg.record_usage_many(iter(share), token=tokens[user])

        t_ours = min(t_ours, timed(ours))
        reg.close()
        raw_path = work / f"realistic-raw-{attempt}.db"
        with registry.Registry(raw_path) as schema:  # the same schema, users and names
            for i in range(200):
                schema.register(body(i))
            for user in USERS:
                schema.create_token(user)
        conn = raw_connection(raw_path)
        t_raw = min(t_raw, timed(raw_ingest, conn, rows))
        conn.close()
        for path in work.glob(f"realistic*-{attempt}.db*"):
            path.unlink()
    shares.clear()
    rows.clear()
    gc.unfreeze()
    ratio = t_raw / t_ours
    record(
        f"realistic batch ingest, {count:,} events, 200 Query LLMs, 30 days (events/s)",
        per_second(count, t_ours),
        per_second(count, t_raw),
        ratio,
        ">= 0.5",
        ratio >= 0.5,
    )


def raw_ingest(conn: sqlite3.Connection, rows: list[Row]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(RAW_INSERT, iter(rows))
    conn.execute("COMMIT")


def bench_single(work: Path, count: int) -> None:
    """record_usage, one transaction each, vs raw one-row transactions."""
    reg, names = fresh(work, "single", 1)
    token = reg.create_token("alice")
    at = "2026-01-01T10:00:00Z"
    t_ours = timed(
        lambda: [
            reg.record_usage(
                names[0],
                token=token,
                at=at,
                request_id=f"s{i}",
                chat_prompt_tokens=10,
                chat_cost="0.001",
            )
            for i in range(count)
        ]
    )
    conn = raw_connection(reg.path)
    micros = times.parse(at)

    def raw() -> None:
        for i in range(count):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                RAW_INSERT,
                (names[0], "alice", micros, f"raw{i}", 0, 10, 1_000_000, 0, 0, 0, None),
            )
            conn.execute("COMMIT")

    t_raw = timed(raw)
    conn.close()
    reg.close()
    ratio = t_raw / t_ours
    record(
        f"single events, {count:,} transactions (events/s)",
        per_second(count, t_ours),
        per_second(count, t_raw),
        ratio,
        ">= 0.5",
        ratio >= 0.5,
    )


def covering_copy(reg: registry.Registry, work: Path, label: str) -> sqlite3.Connection:
    """The registry's events in a file of their own, with a covering index (the raw baseline)."""
    path = work / f"{label}-covering.db"
    shutil.copy(reg.path, path)
    for suffix in ("-wal", "-shm"):
        if Path(str(reg.path) + suffix).exists():
            shutil.copy(str(reg.path) + suffix, str(path) + suffix)
    conn = raw_connection(path)
    conn.execute(COVERING)
    conn.execute("ANALYZE")
    return conn


def raw_window(conn: sqlite3.Connection, name: str, start: int, end: int) -> Row:
    return conn.execute(SUMS + " AND at >= ? AND at < ?", (name, start, end)).fetchone()  # type: ignore[no-any-return]


def bench_window(reg: registry.Registry, work: Path, runs: int) -> None:
    """One Query LLM's statistics over a one-day window with ragged edges."""
    conn = covering_copy(reg, work, "window")
    name = reg.list(count=1, sort="requests")[0]
    start, end = START + 3 * 24 * HOUR + HOUR // 2, START + 4 * 24 * HOUR + HOUR // 2 + 17_000_000
    text = (times.render(start), times.render(end))
    got = reg.get(name, metadata=True, start=text[0], end=text[1])
    assert got["requests"] == raw_window(conn, name, start, end)[0], "the two disagree"
    t_ours = median_time(runs, reg.get, name, metadata=True, start=text[0], end=text[1])
    t_raw = median_time(runs, raw_window, conn, name, start, end)
    conn.close()
    ratio = t_raw / t_ours
    record(
        "window statistics, 1 of 20 Query LLMs, 1M-event file",
        ms(t_ours),
        ms(t_raw),
        ratio,
        "<= 2x raw (>= 0.5)",
        ratio >= 0.5,
    )


def raw_all_time(conn: sqlite3.Connection, name: str) -> Row:
    return conn.execute(SUMS, (name,)).fetchone()  # type: ignore[no-any-return]


def bench_hot(work: Path, count: int, runs: int) -> None:
    """All-time statistics of a Query LLM holding every event of the file."""
    reg, names = fresh(work, "hot", 1)
    reg.record_usage_many(events(names, count, 24 * 30))
    conn = covering_copy(reg, work, "hot")
    assert reg.get(names[0], metadata=True)["requests"] == conn.execute(SUMS, names).fetchone()[0]
    t_ours = median_time(runs, reg.get, names[0], metadata=True)
    t_raw = median_time(max(3, runs // 10), raw_all_time, conn, names[0])
    conn.close()
    reg.close()
    ratio = t_raw / t_ours
    record(
        f"all-time statistics, hot Query LLM, {count:,} events",
        ms(t_ours),
        ms(t_raw),
        ratio,
        "> 1 (faster than raw)",
        ratio > 1,
    )


def bench_list(work: Path, count: int, runs: int) -> None:
    """list sorted by cost over 1,000 Query LLMs, all time and over a window."""
    reg, names = fresh(work, "list", 1000)
    reg.record_usage_many(events(names, count, 24 * 10))
    conn = covering_copy(reg, work, "list")
    start, end = START + 2 * 24 * HOUR + HOUR // 3, START + 5 * 24 * HOUR + HOUR // 5
    raw_sql = (
        "SELECT q.name FROM query_llms q LEFT JOIN"
        " (SELECT name, SUM(chat_cost + embedding_cost) AS m FROM usage_events"
        " INDEXED BY events_covering WHERE at >= ? AND at < ? GROUP BY name) t"
        " ON t.name = q.name ORDER BY COALESCE(t.m, 0) DESC, q.name LIMIT 100"
    )
    for label, window in (("all time", None), ("3-day window", (start, end))):
        low, high = window if window else (-(2**62), 2**62)
        first, last = (times.render(low), times.render(high)) if window else (None, None)
        expected = [n for (n,) in conn.execute(raw_sql, (low, high))]
        assert reg.list(sort="cost", start=first, end=last) == expected, "the two disagree"
        t_ours = median_time(runs, reg.list, sort="cost", start=first, end=last)
        t_raw = median_time(max(3, runs // 10), raw_list, conn, raw_sql, low, high)
        record(
            f"list by cost, 1,000 Query LLMs, {label}",
            ms(t_ours),
            ms(t_raw),
            t_raw / t_ours,
            "measured",
            None,
        )
    conn.close()
    reg.close()


def raw_list(conn: sqlite3.Connection, sql: str, low: int, high: int) -> list[Row]:
    return conn.execute(sql, (low, high)).fetchall()


def bench_scaling(work: Path, sizes: list[int], runs: int) -> None:
    """The same one-day window as history grows: events outside it must not cost time."""
    print(
        "  scaling: one Query LLM's one-day window, 20 Query LLMs, ~5,000 events an hour",
        flush=True,
    )
    rate = 5_000  # events an hour
    for size in sizes:
        reg, names = fresh(work, f"scale-{size}", 20)
        hours = max(48, size // rate)
        reg.record_usage_many(events(names, size, hours))
        conn = covering_copy(reg, work, f"scale-{size}")
        start, end = START + 24 * HOUR + HOUR // 2, START + 48 * HOUR + HOUR // 2
        text = (times.render(start), times.render(end))
        t_ours = median_time(runs, reg.get, names[0], metadata=True, start=text[0], end=text[1])
        t_raw = median_time(runs, raw_window, conn, names[0], start, end)
        record(f"  window at {size:,} events", ms(t_ours), ms(t_raw), t_raw / t_ours, "flat", None)
        conn.close()
        reg.close()
        for path in work.glob(f"scale-{size}*"):
            path.unlink()


def bench_import_memory(work: Path, count: int, realistic: bool = False) -> None:
    """Peak memory (RSS) and speed of ``qllm usage import`` reading a JSON Lines file."""
    llms = 200 if realistic else 20
    reg, names = fresh(work, "import", llms)
    token = reg.create_token("alice")
    reg.close()
    path = work / "usage.jsonl"
    made = realistic_events(names, count, 30) if realistic else events(names, count, 240, seed=7)
    with path.open("w") as out:
        for event in made:
            out.write(json.dumps(event) + "\n")
    qllm = Path(sys.executable).with_name("qllm")
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [str(qllm), "usage", "import", str(path), "--db", str(reg.path)]
    start = time.perf_counter()
    probed = subprocess.run(
        [sys.executable, "-c", probe, *command, "--token", token],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    peak_mb = int(probed.stdout) / 1024
    size_mb = path.stat().st_size / 2**20
    kind = "realistic " if realistic else ""
    record(
        f"qllm usage import, {count:,} {kind}lines ({size_mb:.0f} MB): peak RSS",
        f"{peak_mb:.0f} MB",
        f"{count / seconds:,.0f} lines/s",
        peak_mb / 200,
        "< 200 MB",
        peak_mb < 200,
    )
    path.unlink()
    for old in work.glob("import.db*"):
        old.unlink()


def bench_model(work: Path, count: int, runs: int) -> None:
    """A hot Query Model (every event of the file, over 10 members): all-time and a one-day
    window, against a raw covering index on (query_model, at, amounts)."""
    reg, names = fresh(work, "model", 0)
    members = [body(i) for i in range(10)]
    model = reg.register_model({"models": members, "weight": {"type": "static"}})
    names = [m.name for m in model.members]
    reg.record_usage_many({**e, "query_model": model.name} for e in events(names, count, 24 * 30))
    conn = covering_copy(reg, work, "model")
    conn.execute(
        "CREATE INDEX model_covering ON usage_events (query_model, at, chat_completion_tokens,"
        " chat_prompt_tokens, chat_cost, embedding_completion_tokens, embedding_prompt_tokens,"
        " embedding_cost)"
    )
    sums = SUMS.replace(
        "INDEXED BY events_covering WHERE name", "INDEXED BY model_covering WHERE query_model"
    )
    start, end = START + 3 * 24 * HOUR + HOUR // 2, START + 4 * 24 * HOUR + HOUR // 2 + 17_000_000
    text = (times.render(start), times.render(end))
    window_sql = sums + " AND at >= ? AND at < ?"
    assert reg.get_model(model.name, metadata=True)["requests"] == count
    got = reg.get_model(model.name, metadata=True, start=text[0], end=text[1])
    assert got["requests"] == conn.execute(window_sql, (model.name, start, end)).fetchone()[0]
    windows: list[tuple[str, dict[str, str]]] = [
        ("all-time", {}),
        ("1-day window", {"start": text[0], "end": text[1]}),
    ]
    for label, args in windows:
        t_ours = median_time(runs, reg.get_model, model.name, metadata=True, **args)
        if args:
            t_raw = median_time(
                runs, lambda: conn.execute(window_sql, (model.name, start, end)).fetchone()
            )
        else:
            t_raw = median_time(
                max(3, runs // 10), lambda: conn.execute(sums, (model.name,)).fetchone()
            )
        ratio = t_raw / t_ours
        record(
            f"Query Model {label} statistics, 10 members, {count:,} events",
            ms(t_ours),
            ms(t_raw),
            ratio,
            "<= 2x raw (>= 0.5)" if args else "> 1 (faster than raw)",
            ratio >= 0.5 if args else ratio > 1,
        )
    conn.close()
    reg.close()
    # Registering a 128-member model, next to validating its members one by one.
    bodies = [
        {"models": [body(1000 * k + i) for i in range(128)], "weight": {"type": "static"}}
        for k in range(max(2, runs // 5))
    ]
    reg = registry.Registry(work / "model-register.db")
    t_ours = timed(lambda: [reg.register_model(b) for b in bodies])
    t_validate = timed(lambda: [registry.validate(m) for b in bodies for m in b["models"]])
    reg.close()
    record(
        "register a 128-member Query Model (models/s; raw: validate 128 Query LLMs)",
        per_second(len(bodies), t_ours),
        per_second(len(bodies), t_validate),
        t_validate / t_ours,
        "reported",
        None,
    )


def series_events(
    names: list[str], count: int, first_hour: int, hours: int, seed: int
) -> Iterator[dict[str, Any]]:
    """``count`` events over ``hours`` from ``first_hour``; Query LLMs picked Zipf-like,
    as a gateway's traffic is: a few ensembles members take most requests."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(names))]
    picks = rng.choices(names, weights, k=count)
    step = hours * HOUR // count
    for i, name in enumerate(picks):
        yield {
            "name": name,
            "at": times.render(START + first_hour * HOUR + i * step + rng.randrange(step)),
            "chat_prompt_tokens": 500,
            "chat_cost": "0.00125",
        }


def raw_series(conn: sqlite3.Connection, start: int, end: int) -> list[Row]:
    """The same series by brute force: one GROUP BY name and day over the covering index."""
    day = 24 * HOUR
    return conn.execute(
        "SELECT name, at - at % ? AS d, COUNT(*), SUM(chat_completion_tokens),"
        " SUM(chat_prompt_tokens), SUM(chat_cost), SUM(embedding_completion_tokens),"
        " SUM(embedding_prompt_tokens), SUM(embedding_cost)"
        " FROM usage_events INDEXED BY events_covering WHERE at >= ? AND at < ? GROUP BY 1, 2",
        (day, start, end),
    ).fetchall()


def bench_series(work: Path, sizes: list[int], inside: int, runs: int, llms: int = 1000) -> None:
    """A 30-day daily series grouped by name, 1,000 Query LLMs, ``inside`` events in the
    window and the rest of each file before it: time against a covering-index GROUP BY."""
    days = 30
    for size in sizes:
        reg, names = fresh(work, f"series-{size}", llms)
        before = size - inside
        history = max(24, before // 2_000)  # hours of history, ~2,000 events an hour
        if before:
            reg.record_usage_many(series_events(names, before, 0, history, seed=3))
        reg.record_usage_many(series_events(names, inside, history, days * 24, seed=4))
        conn = covering_copy(reg, work, f"series-{size}")
        # Ragged edges: the raw events of two partial hours are read as well.
        start = START + history * HOUR + HOUR // 3
        end = start + days * 24 * HOUR
        text = (times.render(start), times.render(end))
        data = reg.usage_series(text[0], text[1], "day", ["name"])
        requests = sum(r["requests"] for b in data for r in b["results"])
        assert requests == sum(row[2] for row in raw_series(conn, start, end)), "they disagree"
        t_ours = median_time(runs, reg.usage_series, text[0], text[1], "day", ["name"])
        t_raw = median_time(runs, raw_series, conn, start, end)
        ratio = t_raw / t_ours
        record(
            f"30-day daily series by name, {llms:,} Query LLMs, {size:,}-event file",
            ms(t_ours),
            ms(t_raw),
            ratio,
            ">= 1 (rollups beat the scan)",
            ratio >= 1,
        )
        conn.close()
        reg.close()
        for path in work.glob(f"series-{size}*"):
            path.unlink()


MEASUREMENTS = [
    "validate",
    "ingest",
    "realistic",
    "single",
    "window",
    "hot",
    "list",
    "scaling",
    "import",
    "realistic-import",
    "model",
    "series",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check the script runs")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=MEASUREMENTS,
        help="run only these measurements",
    )
    args = parser.parse_args()
    wanted = set(args.only or MEASUREMENTS)
    quick = args.quick
    big = 20_000 if quick else 1_000_000
    runs = 5 if quick else 50
    work = Path(tempfile.mkdtemp(prefix="qllm-bench-"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    print(f"files in {work}")
    try:
        if "validate" in wanted:
            bench_validate(2_000 if quick else 20_000)
        if wanted & {"ingest", "window"}:
            reg = bench_batch_ingest(work, big)  # the window is measured on its file
            if "window" in wanted:
                bench_window(reg, work, runs)
            reg.close()
        if "realistic" in wanted:
            bench_realistic_ingest(work, big)
        if "single" in wanted:
            bench_single(work, 200 if quick else 2_000)
        if "hot" in wanted:
            bench_hot(work, big, runs)
        if "list" in wanted:
            bench_list(work, big, runs)
        if "scaling" in wanted:
            sizes = [5_000, 20_000] if quick else [100_000, 1_000_000, 5_000_000]
            bench_scaling(work, sizes, runs)
        if "import" in wanted:
            bench_import_memory(work, big)
        if "realistic-import" in wanted:
            bench_import_memory(work, big, realistic=True)
        if "model" in wanted:
            bench_model(work, big, runs)
        if "series" in wanted:
            if quick:
                bench_series(work, [20_000], 15_000, 3, llms=50)
            else:
                bench_series(work, [1_000_000, 5_000_000], 500_000, runs // 5)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| measurement | qllm | raw sqlite3 | ratio | goal |")
    print("|---|---|---|---|---|")
    for what, ours, raw, ratio, goal, ok in results:
        mark = "" if ok is None else (" ✓" if ok else " ✗")
        print(f"| {what.strip()} | {ours} | {raw} | {ratio:.2f} | {goal}{mark} |")
    missed = [r for r in results if r[5] is False]
    sys.exit(1 if missed and not quick else 0)


if __name__ == "__main__":
    main()
