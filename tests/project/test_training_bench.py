"""make bench's training-table rows keep working: the quick mode runs every measurement."""

from __future__ import annotations

import subprocess
import sys

from tests.support.data import ROOT


def test_training_bench_quick_mode_runs_every_measurement() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "training_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0] == "| measurement | backend | qllm | limit | ratio | goal |"
    # five rows per backend, SQLite and PostgreSQL
    rows = table[2:]
    assert len(rows) == 10
    assert {row.split(" | ")[1] for row in rows} == {"SQLite", "PostgreSQL"}
