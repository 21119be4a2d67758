"""`qllm usage series`: JSON, an aligned table and a terminal bar chart."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from registry.cli import cli
from registry.registry import Registry
from registry.render import labels
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
    assert "--bucket: " in bad.output  # the option, as typed
    assert run("usage", "series", "--db", str(path), "--from", "2026-01-01", "--me").exit_code == 4
    assert run("usage", "series", "--db", str(path)).exit_code == 1  # --from is required
    assert "--from: is required (or --last)" in run("usage", "series", "--db", str(path)).output


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
    # Counts right-aligned; costs on their decimal point (a whole number's end is where
    # its point would be), every digit shown.
    cost_at = lines[0].index("cost")
    points = {len(line[cost_at:].split(".")[0]) for line in lines[1:]}
    assert len(points) == 1
    assert {len(line[:cost_at]) for line in lines} == {cost_at}


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
        readable = labels.gather(reg, data)
    lines = series_text.chart(data, "day", "requests", width, readable).splitlines()
    assert all(len(line) <= width for line in lines)
    legend = [line.strip() for line in lines if line.strip()[:1] in series_text.FILLS]
    expected = [f"openai/gpt-4o (generate) {names[0][:7]}", f"meta/llama (generate) {names[1][:7]}"]
    if width >= 80:  # else cut to fit, an ellipsis at the end
        assert sorted(line[2:].rsplit(None, 1)[0] for line in legend) == sorted(expected)
    assert [line.rsplit(None, 1)[1] for line in legend] == ["3", "3"]  # each group's total
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
    assert "n0 " not in text
    assert text.splitlines()[-1].split() == [series_text.FILLS[-1], "5", "others", "15"]


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
    assert result.output.count('<g class="bucket"') == 8  # 4 days, two charts
    assert all(f'data-name="{name}"' in result.output for name in names)
    bad = run(
        "usage", "series", "--db", str(path), "--from", "2026-11-01T00:00:00", "--format", "html"
    )
    assert bad.exit_code == 1
    assert "--from: needs a UTC offset" in bad.output


def _series(path: Path, *args: str) -> Any:
    return run("usage", "series", "--db", str(path), *args)


def test_chart_legend_names_query_llms_by_id(used: tuple[Path, list[str]]) -> None:
    path, names = used
    result = _series(path, "--from", "2026-11-01", "--to", "2026-11-04", "--group-by", "name",
                     "--format", "chart")  # fmt: skip
    assert result.exit_code == 0, result.output
    legend = result.output.split("by name:")[1]
    assert f"openai/gpt-4o (generate) {names[0][:7]}" in legend
    assert f"meta/llama (generate) {names[1][:7]}" in legend
    assert names[0] not in legend  # the hash only as its first characters


def test_chart_colours_on_request_and_respects_no_color(used: tuple[Path, list[str]]) -> None:
    path, _ = used
    window = ("--from", "2026-11-01", "--to", "2026-11-04", "--group-by", "user_id")
    always = _series(path, *window, "--format", "chart", "--color", "always")
    assert always.exit_code == 0, always.output
    assert "\x1b[34m" in always.output  # the largest group in blue, the next in yellow
    assert "\x1b[33m" in always.output
    plain = ANSI.sub("", always.output)
    never = _series(path, *window, "--format", "chart", "--color", "never").output
    assert "\x1b[" not in never
    # Coloured, every group is drawn in full blocks: the bars are as long as without.
    assert [len(line) for line in plain.splitlines()] == [len(line) for line in never.splitlines()]
    assert "\x1b[" not in _series(path, *window, "--format", "chart").output  # no terminal
    use = series_text.use_colour
    assert use("auto", True, {"TERM": "xterm-256color"})
    assert not use("auto", True, {"TERM": "xterm-256color", "NO_COLOR": "1"})
    assert use("auto", True, {"TERM": "xterm", "NO_COLOR": ""})  # empty: not set
    assert not use("auto", True, {"TERM": "dumb"})
    assert not use("auto", False, {"TERM": "xterm"})
    assert use("always", False, {"NO_COLOR": "1"})  # the user's explicit choice wins
    assert not use("never", True, {"TERM": "xterm"})


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_chart_values_align_on_the_point() -> None:
    costs = ["12.5", "0.25", "3", "0.000000001"]
    results = [
        [{"requests": 1} | dict.fromkeys(AMOUNTS, 0) | {"chat_cost": Decimal(c)}] for c in costs
    ]
    data = [
        {"start": f"2026-11-0{i + 1}T00:00:00Z", "end": f"2026-11-0{i + 2}T00:00:00Z",
         "results": r}
        for i, r in enumerate(results)
    ]  # fmt: skip
    lines = series_text.chart(data, "day", "cost", 80).splitlines()[1:]
    values = [line.split("│")[1].split()[-1] for line in lines]
    assert values == costs
    # The decimal point (or a whole number's end) in one column.
    ends = {line.rindex(v) + len(v.split(".")[0]) for line, v in zip(lines, values, strict=True)}
    assert len(ends) == 1


def test_partial_buckets_are_marked(used: tuple[Path, list[str]]) -> None:
    path, _ = used
    # 2026-11-01 is a Sunday: the window holds one day of its week; it ends mid-week too.
    result = _series(path, "--from", "2026-11-01", "--to", "2026-11-04T12:00:00Z",
                     "--bucket", "week", "--format", "chart")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("2026-11-01*│")
    assert lines[2].startswith("2026-11-02*│")
    notes = [line.strip() for line in lines if line.strip().startswith("* ")]
    assert notes == [
        "* partial week: the window holds 2026-11-01 00:00 to 2026-11-02 00:00 of it",
        "* partial week: the window holds 2026-11-02 00:00 to 2026-11-04 12:00 of it",
    ]
    whole = _series(path, "--from", "2026-11-02", "--to", "2026-11-09", "--bucket", "week",
                    "--format", "chart")  # fmt: skip
    assert "*" not in whole.output


def test_html_honours_the_filters(used: tuple[Path, list[str]]) -> None:
    path, names = used
    with Registry(path) as reg:
        token = reg.create_token("alice")
    result = _series(path, "--from", "2026-11-01", "--to", "2026-11-05", "--group-by", "name",
                     "--name", names[0], "--me", "--token", token, "--bucket", "week",
                     "--format", "html")  # fmt: skip
    assert result.exit_code == 0, result.output
    page = result.output
    assert "stacked by Query LLM" in page
    assert "Only Query LLM" in page
    assert "your own usage" in page
    assert page.count('<tr data-name="') == 1  # the one Query LLM asked for
    assert 'data-start="2026-11-01T00:00:00Z"' in page  # a week from Sunday: partial
    assert 'class="bucket partial"' in page
    with Registry(path) as reg:
        mine = reg.get(names[0], metadata=True, me=True, token=token,
                       start="2026-11-01", end="2026-11-05")  # fmt: skip
    assert f'id="total-requests" data-value="{mine["requests"]}"' in page


@pytest.mark.parametrize(("no_color", "coloured"), [("", True), ("1", False)])
def test_auto_colours_a_real_terminal(
    used: tuple[Path, list[str]], no_color: str, coloured: bool
) -> None:
    """``--color auto`` (the default) on a pseudo-terminal, as a person's shell runs it."""
    path, _ = used
    qllm = Path(sys.executable).with_name("qllm")
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": no_color, "COLUMNS": "80"}
    args = ["usage", "series", "--db", str(path), "--from", "2026-11-01", "--to", "2026-11-04",
            "--group-by", "user_id", "--format", "chart"]  # fmt: skip
    with subprocess.Popen([str(qllm), *args], stdout=follower, env=env) as process:
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=60) == 0
    os.close(leader)
    assert (b"\x1b[34m" in output) is coloured
    assert b"alice" in output
