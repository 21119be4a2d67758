"""The PostgreSQL ingest measurement runs, and checks what it writes (a small run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.pg import Postgres

ROOT = Path(__file__).resolve().parents[2]


def run_bench(postgres: Postgres, *arguments: str) -> subprocess.CompletedProcess[str]:
    """A bench script as `make bench` runs it, on the test server; it must succeed."""
    done = subprocess.run(
        [sys.executable, *arguments, "--dsn", postgres.admin_dsn],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_pg_ingest_bench_runs_and_checks_itself(postgres: Postgres) -> None:
    done = run_bench(postgres, "bench/pg_ingest.py", "--events", "3000", "--chunk", "1000")
    rows = [line for line in done.stdout.splitlines() if " s | " in line]  # timed rows
    assert len(rows) == 6  # every method ran, and passed its own checks


def test_pg_bench_compares_both_backends_on_the_same_events(postgres: Postgres) -> None:
    """``pg_bench.py`` (part of make bench) runs every workload on both backends, checks
    that each registry agrees with its raw query, and prints the table (a small run)."""
    done = run_bench(postgres, "bench/pg_bench.py", "--quick", "--events", "2000", "--llms", "50")
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| workload | SQLite: qllm |")
    assert len(table) == 1 + 2 + 5  # the header, ingest and validation, five statistics
    assert "PostgreSQL / SQLite batch ingest rate" in done.stdout
