"""The PostgreSQL ingest measurement runs, and checks what it writes (a small run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pg import Postgres

ROOT = Path(__file__).resolve().parent.parent


def test_pg_ingest_bench_runs_and_checks_itself(postgres: Postgres) -> None:
    command = [sys.executable, "bench/pg_ingest.py", "--events", "3000", "--chunk", "1000"]
    done = subprocess.run(
        [*command, "--dsn", postgres.admin_dsn],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if " s | " in line]  # timed rows
    assert len(rows) == 6  # every method ran, and passed its own checks
