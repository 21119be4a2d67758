"""``qllm copy`` from a file to PostgreSQL: its time and peak memory, the end check included.

    python bench/pg_copy.py                   # 1,000,000 events over 40 days
    python bench/pg_copy.py --events 20000    # to check the script works

A SQLite registry of N events over 40 days and 100 Query LLMs (so about 96,000 hourly
rollup rows) is made with the library, then copied by the ``qllm`` command into a
fresh database of a PostgreSQL of its own (durable settings), or of ``--dsn URL``. The
peak RSS of the command is read from ``getrusage`` of the child.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import registry  # noqa: E402
from registry import times  # noqa: E402
from tests.support.pg import scratch  # noqa: E402

HOUR = 3_600_000_000
DAYS = 40
LLMS = 100
BODY = {"mode": "generate", "weight": {"type": "static", "weight": 1}}


def events(names: list[str], count: int, start: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(9)
    step = DAYS * 24 * HOUR // count
    for i in range(count):
        yield {
            "name": names[rng.randrange(len(names))],
            "at": times.render(start + i * step + rng.randrange(step)),
            "request_id": f"r{i}" if i % 2 else None,
            "chat_prompt_tokens": rng.randrange(100, 4000),
            "chat_cost": f"0.{rng.randrange(10**9):09d}",
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dsn", help="a PostgreSQL server to use instead of starting one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qllm-pgcopy-") as work:
        source = Path(work) / "source.db"
        with registry.Registry(source) as reg:
            names = [reg.register({"id": f"bench/m-{i}", **BODY}).name for i in range(LLMS)]
            reg.record_usage_many(events(names, args.events, times.parse("2026-10-01")))
            (hourly,) = reg.db.execute("SELECT COUNT(*) FROM usage_hourly").fetchone()
        with scratch(args.dsn, {"max_connections": "20"}) as pg:
            target = pg.dsn(pg.create(migrated=False))
            qllm = Path(sys.executable).with_name("qllm")
            began = time.monotonic()
            subprocess.run(
                [str(qllm), "copy", str(source), target, "--quiet"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            seconds = time.monotonic() - began
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"PostgreSQL {pg.version}; {args.events:,} events, {hourly:,} hourly rollup rows")
    print(f"  qllm copy file -> PostgreSQL: {seconds:.1f} s, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
