"""``qllm usage import`` into PostgreSQL: its peak memory, and how long other writers wait.

    python bench/pg_import.py                 # 1,000,000 events (a few minutes)
    python bench/pg_import.py --events 20000  # to check the script works

A JSON Lines file of N events over 40 days and 100 Query LLMs (every event with a
``request_id``) is imported by the ``qllm`` command into a fresh database of a
PostgreSQL of its own (durable settings: fsync on), or of ``--dsn URL``. Its peak RSS
is read from ``getrusage`` of the child. Meanwhile another writer records one event
every quarter second on Query LLMs the import also writes, into hours the import
also writes (so that both add to the same hourly and all-time rollup rows), each
call timed: how long a concurrent single-event write waited, and whether any failed.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import registry  # noqa: E402
from registry import times  # noqa: E402
from tests.support.pg import scratch  # noqa: E402

HOUR = 3_600_000_000
DAY = 24 * HOUR
LLMS = 100
DAYS = 40
TIMEOUT = 10.0  # the writers' --timeout: qllm's default
BODY = {"mode": "generate", "weight": {"type": "static", "weight": 1}}


def write_events(path: Path, names: list[str], count: int, start: int) -> None:
    rng = random.Random(5)
    step = DAYS * DAY // count
    with path.open("w") as out:
        for i in range(count):
            prompt = rng.randrange(100, 4000)
            event = {
                "name": names[rng.randrange(len(names))],
                "at": times.render(start + i * step + rng.randrange(step)),
                "request_id": f"imp-{i}",
                "chat_prompt_tokens": prompt,
                "chat_completion_tokens": rng.randrange(10, 800),
                "chat_cost": f"{prompt * 25 / 10**7:.7f}",
            }
            out.write(json.dumps(event) + "\n")


class Prober(threading.Thread):
    """One single event every quarter second until stopped, each call timed."""

    def __init__(self, location: str, names: list[str], start: int) -> None:
        super().__init__(daemon=True)
        self.location = location
        self.names = names
        self.start_at = start
        self.stop = threading.Event()
        self.calls: list[tuple[float, str]] = []

    def run(self) -> None:
        reg = registry.Registry(self.location, timeout=TIMEOUT)  # a SQLite one: this thread's
        n = 0
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                reg.record_usage(
                    self.names[n % len(self.names)],
                    at=times.render(self.start_at + (n % (DAYS * 24)) * HOUR),
                    request_id=f"probe-{n}",
                    chat_prompt_tokens=1,
                )
                outcome = "ok"
            except registry.RegistryError as exc:
                outcome = type(exc).__name__
            self.calls.append((time.monotonic() - began, outcome))
            n += 1
            self.stop.wait(0.25)
        reg.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dsn", help="a PostgreSQL server to use instead of starting one")
    parser.add_argument("--sqlite", action="store_true", help="the same on a SQLite file")
    args = parser.parse_args(argv)
    count = args.events
    work = Path(tempfile.mkdtemp(prefix="qllm-pgimport-"))
    path = work / "usage.jsonl"
    with scratch(args.dsn, {"max_connections": "20"}) as pg:
        location = str(work / "registry.db") if args.sqlite else pg.dsn(pg.create())
        with registry.Registry(location) as reg:
            names = [reg.register({"id": f"bench/m-{i}", **BODY}).name for i in range(LLMS)]
            start = times.now() - DAYS * DAY
            write_events(path, names, count, start)
            size = path.stat().st_size / 2**20
            prober = Prober(location, names, start)
            qllm = Path(sys.executable).with_name("qllm")
            command = [str(qllm), "usage", "import", str(path), "--db", location]
            prober.start()
            began = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            seconds = time.monotonic() - began
            prober.stop.set()
            prober.join()
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            if done.returncode != 0:
                raise SystemExit(f"the import failed: {done.stderr}")
            stored = reg.db.execute("SELECT COUNT(*) FROM usage_events").fetchone()[0]
    for made in work.iterdir():
        made.unlink()
    work.rmdir()
    calls = prober.calls
    waits = sorted(s for s, _ in calls)
    failed = [outcome for _, outcome in calls if outcome != "ok"]
    backend = "SQLite" if args.sqlite else f"PostgreSQL {pg.version}"
    print(f"{backend}; {count:,} events ({size:.0f} MB of JSON Lines)")
    print(f"  import: {seconds:.1f} s, {count / seconds:,.0f} events/s, {stored:,} stored")
    print(f"  peak RSS of qllm usage import: {peak:.0f} MB")
    print(
        f"  concurrent single events: {len(calls)} calls, {len(failed)} failed {failed[:3]},"
        f" slowest {waits[-1]:.2f} s, median {waits[len(waits) // 2]:.3f} s"
        if waits
        else "  concurrent single events: none"
    )


if __name__ == "__main__":
    main()
