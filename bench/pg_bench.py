"""``make bench``: SQLite vs PostgreSQL, the same workloads on the same events, in one run.

One set of events (1,000 Query LLMs, 30 days in time order, half of them for one hot
Query LLM, the rest Zipf-like over all) goes through `Registry.record_usage_many` into
a SQLite file and into a PostgreSQL database, timed; the same rows, prepared without
validation, go into each backend raw (SQLite: ``executemany`` of the registry's own
insert; PostgreSQL: psycopg's binary ``COPY``), without idempotency or rollups: the
floor. Then the statistics of bench.py on both registries, each against the raw
covering-index query on a copy of its own backend's events (a covering index on
``(name, at, user_id, amounts)`` that the registry does not have). Ratios are
registry speed / raw speed (above 1: the registry is faster), per backend.

    python bench/pg_bench.py            # 1,000,000 events (several minutes)
    python bench/pg_bench.py --quick    # 20,000 events, to check the script works

It starts a PostgreSQL of its own with durable defaults (fsync on, the server's
default settings), or uses ``--dsn URL`` (two databases are created there and
dropped). Before the statistics, both PostgreSQL databases are ``VACUUM ANALYZE``d,
as autovacuum would have done after such a load.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import bench as lite  # noqa: E402  (bench.py: the SQLite measurements and their SQL)
import registry  # noqa: E402
from registry import times  # noqa: E402
from registry.events import validated  # noqa: E402
from registry.model import AMOUNTS  # noqa: E402
from tests.support.pg import scratch  # noqa: E402

HOUR = lite.HOUR
DAY = 24 * HOUR
START = lite.START
LLMS = 1_000  # Query LLMs, unless --llms
Row = tuple[Any, ...]
Conn = psycopg.Connection[tuple[Any, ...]]
COLUMNS = ("name", "user_id", "at", "request_id", *AMOUNTS)
TYPES = ["text", "text", "int8", "text"] + ["int8"] * len(AMOUNTS)

# bench.py's raw queries, in PostgreSQL's words (the planner picks the covering index).
PG_COVERING = lite.COVERING.replace("events_covering", "events_covering_pg")
PG_SUMS = lite.SUMS.replace(" INDEXED BY events_covering", "").replace("?", "%s")
PG_WINDOW = PG_SUMS + " AND at >= %s AND at < %s"
LIST = (
    "SELECT q.name FROM query_llms q LEFT JOIN"
    " (SELECT name, SUM(chat_cost + embedding_cost) AS m FROM usage_events{hint}"
    " WHERE at >= {p} AND at < {p} GROUP BY name) t"
    " ON t.name = q.name ORDER BY COALESCE(t.m, 0) DESC, q.name LIMIT 100"
)
SERIES = (
    "SELECT name, at - at {mod} {p} AS d, COUNT(*), SUM(chat_completion_tokens),"
    " SUM(chat_prompt_tokens), SUM(chat_cost), SUM(embedding_completion_tokens),"
    " SUM(embedding_prompt_tokens), SUM(embedding_cost)"
    " FROM usage_events{hint} WHERE at >= {p} AND at < {p} GROUP BY 1, 2"
)
SQLITE_HINT = " INDEXED BY events_covering"

results: list[tuple[str, list[str]]] = []


def row(what: str, *cells: str) -> None:
    results.append((what, list(cells)))
    print(f"  {what}: {' | '.join(cells)}", flush=True)


def make_events(names: list[str], count: int) -> list[dict[str, Any]]:
    """``count`` events over 30 days in time order: every other one for ``names[0]`` (the
    hot Query LLM), the rest Zipf-like over all, as a gateway's traffic is."""
    rng = random.Random(5)
    weights = [1 / (i + 1) for i in range(len(names))]
    others = rng.choices(names, weights, k=count)
    step = 30 * DAY // count
    made = []
    for i in range(count):
        prompt = rng.randrange(100, 4000)
        event: dict[str, Any] = {
            "name": names[0] if i % 2 == 0 else others[i],
            "at": times.render(START + i * step + rng.randrange(step)),
            "request_id": f"req-{i:09d}",
            "chat_prompt_tokens": prompt,
            "chat_completion_tokens": rng.randrange(10, 800),
            "chat_cost": f"{prompt * 25}e-10",
        }
        if i % 4 == 0:
            event["embedding_prompt_tokens"] = 64
            event["embedding_cost"] = "0.0000013"
        made.append(event)
    return made


def prepared(events: list[dict[str, Any]]) -> list[Row]:
    """The rows the registry writes for ``events`` (computed by it: the raw side gets the
    same rows, not its own conversion)."""
    return [tuple(r) for chunk in validated(events, None, times.now()) for r in chunk.rows]


def timed(fn: Callable[..., Any], *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def per_second(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# --- ingest ----------------------------------------------------------------------------------


def validate_only(events: list[dict[str, Any]]) -> float:
    """The shared validation alone (what both backends run before writing), in chunks."""
    now = times.now()
    start = time.perf_counter()
    for _ in validated(events, None, now):  # CHUNK events at a time
        pass
    return time.perf_counter() - start


def sqlite_raw(path: Path, names: list[str], rows: list[Row]) -> float:
    """The same rows by ``executemany`` of the registry's insert, same schema and pragmas."""
    registry.Registry(path).close()
    conn = lite.raw_connection(path)
    conn.executemany(
        "INSERT INTO query_llms (name, body, model, mode, weight_type, created)"
        " VALUES (?, '{}', 'm', 'generate', 'static', 0)",
        [(n,) for n in names],
    )
    seconds = timed(lite.raw_ingest, conn, rows)
    conn.close()
    return seconds


def pg_raw(location: str, names: list[str], rows: list[Row]) -> float:
    """The same rows by binary ``COPY`` straight into usage_events, in one transaction."""
    with psycopg.connect(location, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO query_llms VALUES (%s, NULL, '{}', 'm', 'generate', 'static', 0, NULL)",
            [(n,) for n in names],
        )
        start = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY usage_events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as cp,
        ):
            cp.set_types(TYPES)
            for r in rows:
                cp.write_row(r[: len(COLUMNS)])
        return time.perf_counter() - start


def ingest(
    sqlite_reg: registry.Registry,
    pg_reg: registry.Registry,
    events: list[dict[str, Any]],
    raw: tuple[Path, str],
    names: list[str],
) -> None:
    count = len(events)
    rows = prepared(events)
    gc.freeze()  # the inputs are not the work: keep the collector off them
    t_validate = validate_only(events)
    t_sqlite = timed(sqlite_reg.record_usage_many, events)
    t_pg = timed(pg_reg.record_usage_many, events)
    t_sqlite_raw = sqlite_raw(raw[0], names, rows)
    t_pg_raw = pg_raw(raw[1], names, rows)
    gc.unfreeze()
    row(
        f"batch ingest, {count:,} events, one record_usage_many (events/s)",
        per_second(count, t_sqlite),
        per_second(count, t_sqlite_raw) + " (executemany)",
        f"{t_sqlite_raw / t_sqlite:.2f}",
        per_second(count, t_pg),
        per_second(count, t_pg_raw) + " (binary COPY)",
        f"{t_pg_raw / t_pg:.2f}",
    )
    row(
        "validation alone, shared by both (events/s)",
        per_second(count, t_validate),
        "",
        "",
        per_second(count, t_validate),
        "",
        "",
    )
    print(
        f"\n  PostgreSQL / SQLite batch ingest rate: {t_sqlite / t_pg:.2f}x (goal >= 0.8)"
        f"\n  of each backend's time, validation {t_validate / t_sqlite:.0%} on SQLite,"
        f" {t_validate / t_pg:.0%} on PostgreSQL\n",
        flush=True,
    )
    results.append(("ratio", [f"{t_sqlite / t_pg:.2f}"]))


# --- statistics ------------------------------------------------------------------------------


def median(runs: int, fn: Callable[[], Any]) -> float:
    samples = sorted(timed(fn) for _ in range(runs))
    return samples[len(samples) // 2]


# what, ours, raw, and how many runs of each
Workload = tuple[str, Callable[[], Any], Callable[[], Any], tuple[int, int]]


class Raw:
    """The raw covering-index queries of one backend, on a copy of its events."""

    def __init__(self, execute: Callable[[str, tuple[Any, ...]], list[Row]], pg: bool) -> None:
        self.execute = execute
        self.pg = pg

    def sql(self, template: str) -> str:
        if self.pg:
            return template.format(hint="", p="%s", mod="%%")
        return template.format(hint=SQLITE_HINT, p="?", mod="%")

    def all_time(self, name: str) -> list[Row]:
        return self.execute(PG_SUMS if self.pg else lite.SUMS, (name,))

    def window(self, name: str, start: int, end: int) -> list[Row]:
        sql = PG_WINDOW if self.pg else lite.SUMS + " AND at >= ? AND at < ?"
        return self.execute(sql, (name, start, end))

    def ranked(self, low: int, high: int) -> list[Row]:
        return self.execute(self.sql(LIST), (low, high))

    def series(self, start: int, end: int) -> list[Row]:
        return self.execute(self.sql(SERIES), (DAY, start, end))


def stats(
    regs: dict[str, registry.Registry],
    raws: dict[str, Raw],
    names: list[str],
    runs: int,
    count: int,
) -> None:
    hot = names[0]
    few = max(3, runs // 10)  # the raw scans of everything take long: fewer runs
    window = (START + 3 * DAY + HOUR // 2, START + 4 * DAY + HOUR // 2 + 17_000_000)
    three = (START + 2 * DAY + HOUR // 3, START + 5 * DAY + HOUR // 5)
    series = (START + HOUR // 3, START + HOUR // 3 + 29 * DAY)
    text = {key: (times.render(a), times.render(b)) for key, (a, b) in
            {"window": window, "three": three, "series": series}.items()}  # fmt: skip
    everything = (-(2**62), 2**62)

    def workloads(reg: registry.Registry, raw: Raw) -> Iterator[Workload]:
        yield (
            f"all-time statistics, hot Query LLM ({count // 2:,} events)",
            lambda: reg.get(hot, metadata=True),
            lambda: raw.all_time(hot),
            (runs, few),
        )
        w = text["window"]
        yield (
            "1-day window statistics, hot Query LLM",
            lambda: reg.get(hot, metadata=True, start=w[0], end=w[1]),
            lambda: raw.window(hot, *window),
            (runs, runs),
        )
        yield (
            f"list by cost, {len(names):,} Query LLMs, all time",
            lambda: reg.list(sort="cost"),
            lambda: raw.ranked(*everything),
            (runs, few),
        )
        t = text["three"]
        yield (
            f"list by cost, {len(names):,} Query LLMs, 3-day window",
            lambda: reg.list(sort="cost", start=t[0], end=t[1]),
            lambda: raw.ranked(*three),
            (runs, few),
        )
        s = text["series"]
        yield (
            f"29-day daily series by name, {len(names):,} Query LLMs",
            lambda: reg.usage_series(s[0], s[1], "day", ["name"]),
            lambda: raw.series(*series),
            (max(3, runs // 5), max(3, runs // 5)),  # slow on both sides
        )

    measured: dict[str, dict[str, tuple[float, float]]] = {}
    for backend in ("sqlite", "postgres"):
        reg, raw = regs[backend], raws[backend]
        # The two sides agree before they are timed.
        got = reg.get(hot, metadata=True, start=text["window"][0], end=text["window"][1])
        assert got["requests"] == raw.window(hot, *window)[0][0], backend
        assert reg.list(sort="cost") == [n for (n,) in raw.ranked(*everything)], backend
        data = reg.usage_series(text["series"][0], text["series"][1], "day", ["name"])
        total = sum(r["requests"] for b in data for r in b["results"])
        assert total == sum(r[2] for r in raw.series(*series)), backend
        for what, ours, theirs, n in workloads(reg, raw):
            measured.setdefault(what, {})[backend] = (median(n[0], ours), median(n[1], theirs))
            print(f"  {backend}: {what} done", flush=True)
    for what, by in measured.items():
        cells = []
        for backend in ("sqlite", "postgres"):
            t_ours, t_raw = by[backend]
            cells += [ms(t_ours), ms(t_raw), f"{t_raw / t_ours:.2f}"]
        row(what, *cells)


# --- the run ---------------------------------------------------------------------------------


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20,000 events, 5 runs")
    parser.add_argument("--events", type=int, help="how many events (default 1,000,000)")
    parser.add_argument("--llms", type=int, default=LLMS, help="how many Query LLMs")
    parser.add_argument("--dsn", help="a PostgreSQL server to use instead of starting one")
    args = parser.parse_args(argv)
    count = args.events or (20_000 if args.quick else 1_000_000)
    runs = 5 if args.quick else 50
    work = Path(tempfile.mkdtemp(prefix="qllm-pgbench-"))
    # A server of its own, or two new databases on --dsn's (a shared server may hold
    # another run's): both migrated, dropped afterwards.
    with scratch(args.dsn, {"max_connections": "20"}) as pg:
        try:
            location, raw_location = (pg.dsn(pg.create()) for _ in range(2))
            run_all(args, count, runs, work, pg.version, location, raw_location)
        finally:
            for path in work.iterdir():
                path.unlink()
            work.rmdir()


def run_all(
    args: argparse.Namespace,
    count: int,
    runs: int,
    work: Path,
    version: str,
    location: str,
    raw_location: str,
) -> None:
    """Both backends' measurements, on the file in ``work`` and the two databases."""
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
        f" PostgreSQL {version}; load average at start {load()}",
        flush=True,
    )
    sqlite_reg = registry.Registry(work / "registry.db")
    pg_reg = registry.Registry(location)
    names = []
    for i in range(args.llms):
        names.append(sqlite_reg.register(lite.body(i)).name)
        pg_reg.register(lite.body(i))
    events = make_events(names, count)
    ingest(sqlite_reg, pg_reg, events, (work / "raw.db", raw_location), names)
    del events
    pg_raw_conn = psycopg.connect(raw_location, autocommit=True)
    pg_raw_conn.execute(PG_COVERING)
    pg_raw_conn.execute("VACUUM ANALYZE")
    with psycopg.connect(location, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    sqlite_raw_conn = lite.covering_copy(sqlite_reg, work, "stats")
    raws = {
        "sqlite": Raw(lambda sql, p: sqlite_raw_conn.execute(sql, p).fetchall(), pg=False),
        "postgres": Raw(lambda sql, p: pg_raw_conn.execute(sql, p).fetchall(), pg=True),
    }
    stats({"sqlite": sqlite_reg, "postgres": pg_reg}, raws, names, runs, count)
    sizes(location, count)
    sqlite_raw_conn.close()
    pg_raw_conn.close()
    sqlite_reg.close()
    pg_reg.close()
    print(f"\nload average at the end {load()}\n")
    print("| workload | SQLite: qllm | raw sqlite3 | ratio | PostgreSQL: qllm | raw | ratio |")
    print("|---|---|---|---|---|---|---|")
    for what, cells in results:
        if what != "ratio":
            print(f"| {what} | {' | '.join(cells)} |")


def sizes(location: str, count: int) -> None:
    """The tables' sizes on disk (heap, indexes, TOAST), for docs/scaling.md."""
    with psycopg.connect(location, autocommit=True) as conn:
        print(f"\n  sizes after {count:,} events (pg_total_relation_size):")
        for table in ("usage_events", "usage_hourly", "usage_totals", "query_llms"):
            rows, size = conn.execute(
                f"SELECT COUNT(*), pg_total_relation_size('{table}') FROM {table}"
            ).fetchone() or (0, 0)
            each = size / rows if rows else 0
            print(f"  {table}: {rows:,} rows, {size / 2**20:.1f} MiB, {each:.0f} bytes a row")


if __name__ == "__main__":
    main()
