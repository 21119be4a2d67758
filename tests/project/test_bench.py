"""make bench keeps working: its quick mode runs every measurement on small sizes."""

from __future__ import annotations

import subprocess
import sys

from tests.support.data import ROOT


def test_bench_quick_mode_runs_every_measurement() -> None:
    """``bench.py --quick`` runs all measurements, checks both sides agree, and prints the table."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0] == "| measurement | qllm | raw sqlite3 | ratio | goal |"
    # the header and 17 measurements (two scaling sizes and one series size when quick;
    # three of Query Models)
    assert len(table) == 18
    assert any(line.startswith("| write lock held per import") for line in table)
