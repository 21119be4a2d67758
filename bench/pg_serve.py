"""Group commit on PostgreSQL: one ``qllm serve``, two, and one with ``--workers 2``, under
the same load, with the deadlocks PostgreSQL counted.

    python bench/pg_serve.py                       # 24 clients, 25 s a setup
    python bench/pg_serve.py --seconds 5 --clients 8

The load is ``tests/support/pg_load.py``'s: clients (threads of 4 processes, each on a keep-alive
connection) post 1 to 3 events a request, as
4 users, to 4 Query LLMs, all in the current hour (so every server adds to the same
few rollup rows), each request retried until it is acknowledged. Each setup gets a
fresh database of a PostgreSQL of its own (durable settings: fsync on) or of
``--dsn URL``; afterwards the database must hold every acknowledged event exactly
once with rollups equal to a rebuild, and ``pg_stat_database.deadlocks`` says how
many deadlocks the server detected.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import registry  # noqa: E402
from tests.support import pg_load  # noqa: E402
from tests.support.pg import TEST_SETTINGS, scratch  # noqa: E402
from tests.support.workers import rollups_match  # noqa: E402

SETUPS = {"one server": (1, 1), "two servers": (2, 1), "one server, --workers 2": (1, 2)}
BODY = {"mode": "generate", "weight": {"type": "static", "weight": 1}}


def deadlocks(reg: registry.Registry) -> int:
    """Deadlocks detected in the registry's database (counted when sessions end)."""
    row = reg.db.execute(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return int(row[0])


def check(reg: registry.Registry, load: pg_load.Load) -> str:
    """Every acknowledged event stored once, nothing else, rollups equal to a rebuild."""
    acked = [i for result in load.results for ids, _ in result["acks"] for i in ids]
    rows = reg.db.execute("SELECT request_id, COUNT(*) FROM usage_events GROUP BY 1").fetchall()
    stored = {str(request_id): int(count) for request_id, count in rows}
    doubled = sum(1 for count in stored.values() if count != 1)
    lost = len(set(acked) - set(stored))
    extra = len(set(stored) - set(acked))
    ok = not doubled and not lost and not extra and rollups_match(reg)
    return "exact" if ok else f"WRONG: {lost} lost, {doubled} doubled, {extra} unasked"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--dsn", help="a PostgreSQL server to use instead of starting one")
    parser.add_argument("--only", choices=list(SETUPS), action="append")
    parser.add_argument(
        "--fsync-off", action="store_true", help="the test server's settings (fsync off)"
    )
    args = parser.parse_args(argv)
    settings = TEST_SETTINGS if args.fsync_off else {"max_connections": "100"}
    with scratch(args.dsn, settings) as pg:
        print(f"PostgreSQL {pg.version}; {args.clients} clients, {args.seconds:g} s a setup")
        for label, (servers, workers) in SETUPS.items():
            if args.only and label not in args.only:
                continue
            location = pg.dsn(pg.create())
            with registry.Registry(location) as reg:
                names = [reg.register({"id": f"bench/m-{i}", **BODY}).name for i in range(4)]
                tokens = [reg.create_token(f"user{u}") for u in range(4)]
            with tempfile.TemporaryDirectory(prefix="qllm-pgserve-") as work:
                load = pg_load.run(
                    location,
                    Path(work),
                    names=names,
                    tokens=tokens,
                    count=servers,
                    workers=workers,
                    clients=args.clients,
                    seconds=args.seconds,
                )
            time.sleep(1)  # the servers' sessions have ended: their statistics are in
            with registry.Registry(location) as reg:
                verdict = check(reg, load)
                found = deadlocks(reg)
            failures = sum(
                n for result in load.results for k, n in result["outcomes"].items() if k != "200"
            )
            print(
                f"  {label}: {load.answered:,} requests answered in {load.seconds:g} s"
                f" ({load.per_second:,.0f}/s), {failures} failed attempts (retried),"
                f" {found} deadlocks; database {verdict}",
                flush=True,
            )


if __name__ == "__main__":
    main()
