"""`qllm usage series`: JSON, an aligned table and a terminal bar chart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from registry.cli import cli
from registry.registry import Registry
from registry.render import text as series_text
from tests.support.data import AMOUNTS, body


@pytest.fixture
def used(db_path: Path) -> tuple[Path, list[str]]:
    """A closed file with two Query LLMs: three days of usage by alice and anonymous callers."""
    with Registry(db_path) as reg:
        names = [reg.register(body()).name, reg.register(body(id="meta/llama")).name]
        token = reg.create_token("alice")
        for day, cost in ((1, "1"), (2, "3"), (3, "2")):
            at = f"2026-11-0{day}T12:00:00Z"
            reg.record_usage(names[0], token=token, at=at, chat_cost=cost, chat_prompt_tokens=10)
            reg.record_usage(names[1], at=at, chat_cost="0.5", embedding_prompt_tokens=5)
    return db_path, names


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), prog_name="qllm")


def test_json_is_the_data_with_exact_costs(used: tuple[Path, list[str]]) -> None:
    path, names = used
    result = run(
        "usage",
        "series",
        "--db",
        str(path),
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-05",
        "--group-by",
        "name,user_id",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output, parse_float=Decimal)["data"]
    assert [b["start"][:10] for b in data] == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-03",
        "2026-11-04",
    ]
    assert data[3]["results"] == []
    with Registry(path) as reg:
        expected = reg.usage_series("2026-11-01", "2026-11-05", group_by=["name", "user_id"])
    assert data == expected  # Decimals written exactly, read back exactly
    by_key = {(r["name"], r["user_id"]): r["chat_cost"] for r in data[1]["results"]}
    assert by_key == {(names[0], "alice"): Decimal(3), (names[1], None): Decimal("0.5")}


def test_errors_exit_like_every_command(used: tuple[Path, list[str]]) -> None:
    path, _ = used
    bad = run("usage", "series", "--db", str(path), "--from", "2026-01-01", "--bucket", "hour")
    assert bad.exit_code == 1
    assert "/bucket" in bad.output
    assert run("usage", "series", "--db", str(path), "--from", "2026-01-01", "--me").exit_code == 4
    assert run("usage", "series", "--db", str(path)).exit_code == 1  # --from is required


def test_table_is_aligned(used: tuple[Path, list[str]]) -> None:
    path, _ = used
    result = run(
        "usage",
        "series",
        "--db",
        str(path),
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-04",
        "--group-by",
        "user_id",
        "--format",
        "table",
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "start",
        "user_id",
        "requests",
        "prompt_tokens",
        "completion_tokens",
        "cost",
    ]
    assert lines[1].split() == ["2026-11-01", "(no", "user)", "1", "5", "0", "0.5"]
    assert lines[2].split() == ["2026-11-01", "alice", "1", "10", "0", "1"]
    ends = {len(line) for line in lines}
    assert len(ends) == 1  # every column right-aligned to the same edge


def test_chart_one_bar_per_bucket_proportional(used: tuple[Path, list[str]]) -> None:
    path, _ = used
    with Registry(path) as reg:
        data = reg.usage_series("2026-11-01", "2026-11-05")
    text = series_text.chart(data, "day", "cost", 80)
    lines = text.splitlines()
    bars = [line for line in lines if "│" in line]
    assert len(bars) == 4
    assert all(len(line) <= 80 for line in lines)
    lengths = [sum(line.split("│")[1].count(c) for c in "█") for line in bars]
    # Costs 1.5, 3.5, 2.5 and 0: the longest bar is the middle day, the others in ratio.
    assert lengths[3] == 0
    assert lengths[1] == max(lengths)
    assert abs(lengths[0] / lengths[1] - 1.5 / 3.5) < 0.05
    assert abs(lengths[2] / lengths[1] - 2.5 / 3.5) < 0.05


@pytest.mark.parametrize("width", [40, 80, 132])
def test_stacked_chart_fits_and_has_a_legend(used: tuple[Path, list[str]], width: int) -> None:
    path, names = used
    with Registry(path) as reg:
        data = reg.usage_series("2026-11-01", "2026-11-04", group_by=["name"])
    lines = series_text.chart(data, "day", "requests", width).splitlines()
    assert all(len(line) <= width for line in lines)
    legend = [line.strip() for line in lines if line.strip()[:1] in series_text.FILLS]
    assert sorted(line[2:] for line in legend) == sorted(names)
    for line in lines[1:4]:
        bar = line.split("│")[1].split()[0]
        # One request each: halves, to a column of rounding.
        assert abs(bar.count(series_text.FILLS[0]) - bar.count(series_text.FILLS[1])) <= 1


def test_many_groups_share_an_other_fill() -> None:
    results = [{"name": f"n{i}", "requests": i + 1} | dict.fromkeys(AMOUNTS, 0) for i in range(12)]
    data = [{"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z", "results": results}]
    text = series_text.chart(data, "day", "requests", 80)
    assert "5 others" in text
    assert "n11" in text
    assert "n0" not in text


def test_chart_in_a_pipe_fits_80_columns(used: tuple[Path, list[str]]) -> None:
    path, _ = used
    qllm = Path(sys.executable).with_name("qllm")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run(
        [
            str(qllm),
            "usage",
            "series",
            "--db",
            str(path),
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-04",
            "--group-by",
            "name",
            "--group-by",
            "user_id",
            "--format",
            "chart",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len([line for line in lines if "│" in line]) == 3
    assert max(len(line) for line in lines) <= 80
    assert "(no user)" in done.stdout


def test_html_is_the_dashboard_of_the_window(used: tuple[Path, list[str]]) -> None:
    path, names = used
    result = run(
        "usage",
        "series",
        "--db",
        str(path),
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-05",
        "--format",
        "html",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("<!doctype html>")
    assert result.output.count('class="bar"') == 8  # 4 days, two charts
    assert all(f'data-name="{name}"' in result.output for name in names)
    bad = run(
        "usage", "series", "--db", str(path), "--from", "2026-11-01T00:00:00", "--format", "html"
    )
    assert bad.exit_code == 1
    assert "/from" in bad.output
