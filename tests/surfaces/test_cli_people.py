"""The command line for people (issue 21): ``qllm top``, rows as tables and CSV, relative
times, several files per ``register``, ``-h``, choices, help texts with examples, errors
named by the options typed, and shell completion."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import click
import pytest

import registry
from registry import times
from registry.cli import cli
from registry.query import MEASURES, SORTS
from registry.registry import Registry
from registry.series import BUCKETS, GROUPS
from tests.support.cli import fails, ok, run
from tests.support.data import body

QLLM = Path(sys.executable).with_name("qllm")
CHEAP = body(id="acme/cheap")
DEAR = body(id="=SUM(1+2)*cmd|calc", mode="select_thinking")  # a formula, were it in a sheet
IDLE = body(id="acme/idle")
NAMES = {key: registry.validate(b).name for key, b in (("cheap", CHEAP), ("dear", DEAR))}


@pytest.fixture
def used(tmp_path: Path) -> str:
    """Three Query LLMs, two of them used by alice in November 2026, one never; one Query
    Model of the two used."""
    path = str(tmp_path / "r.db")
    with Registry(path) as reg:
        alice = reg.create_token("alice")
        for b in (CHEAP, DEAR, IDLE):
            reg.register(b)
        model = reg.register_model({"models": [CHEAP, DEAR], "weight": {"type": "static"}})
        for day in range(1, 5):
            for key, cost in (("cheap", "0.01"), ("dear", "0.5")):
                reg.record_usage(
                    NAMES[key],
                    token=alice,
                    at=f"2026-11-0{day}T10:00:00Z",
                    chat_prompt_tokens=100,
                    chat_cost=cost,
                    query_model=model.name,
                )
    return path


def test_top_ranks_by_a_measure_with_readable_ids_and_shares(used: str) -> None:
    got = run(["top", "--from", "2026-11", "--to", "2026-12", "--db", used])
    assert got.exit_code == 0, got.stderr
    title, head, first, second = got.stdout.splitlines()
    assert title == "Query LLMs by cost, from 2026-11-01 00:00 to 2026-12-01 00:00 UTC"
    assert head.split() == ["rank", "id", "mode", "name", "requests", "tokens", "cost", "share"]
    assert first.split()[:2] == ["1", "=SUM(1+2)*cmd|calc"]
    assert first.split()[-3:] == ["400", "2", "98.0%"]
    short = NAMES["cheap"][:7]
    assert second.split() == ["2", "acme/cheap", "generate", short, "4", "400", "0.04", "2.0%"]
    rows = ok(["top", "--by", "requests", "--from", "2026-11-02", "--format", "json", "--db", used])
    assert [(r["rank"], r["requests"], r["share"]) for r in rows] == [
        (1, 3, Decimal("0.5")),
        (2, 3, Decimal("0.5")),
    ]
    assert {r["name"] for r in rows} == set(NAMES.values())  # the unused one is not "top"
    models = ok(["top", "--models", "--from", "2026-W44", "--format", "json", "--db", used])
    assert [(set(m["members"].split(" + ")), m["weight"], m["cost"]) for m in models] == [
        ({"acme/cheap", "=SUM(1+2)*cmd|calc"}, "static", Decimal("2.04"))
    ]


def test_csv_is_exact_and_formulas_are_inert(used: str) -> None:
    """CSV of top and list: every value exact, a cell that would be a formula escaped by
    the dashboard's own function."""
    text = run(["top", "--from", "2026-11", "--format", "csv", "--db", used]).stdout
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["rank", "id", "mode", "name", "requests", "tokens", "cost", "share"]
    assert rows[1][1] == "'=SUM(1+2)*cmd|calc"
    assert rows[1][3] == NAMES["dear"]
    assert rows[1][6:] == ["2", "0.9804"]
    listed = run(["list", "--sort", "cost", "--format", "csv", "--db", used]).stdout
    table = list(csv.reader(io.StringIO(listed)))
    assert table[0] == ["rank", "id", "mode", "name", "created", "requests", "tokens", "cost"]
    assert [row[1] for row in table[1:]] == ["'=SUM(1+2)*cmd|calc", "acme/cheap", "acme/idle"]


def test_an_empty_window_is_said_to_be_one(used: str) -> None:
    """No usage in the window: top shows none and says so; list --sort cost still lists
    every name (the spec's answer) but says that the order means nothing."""
    top = run(["top", "--from", "2026-12-01", "--to", "2026-12-02", "--db", used])
    assert top.exit_code == 0
    assert top.stdout.splitlines()[-1] == "(no usage from 2026-12-01 00:00 to 2026-12-02 00:00 UTC)"
    empty = run(["top", "--from", "2026-12", "--format", "json", "--db", used])
    assert json.loads(empty.stdout) == []
    assert "no usage from 2026-12-01 00:00" in empty.stderr
    listed = run(["list", "--sort", "cost", "--from", "2026-12", "--to", "2027-01", "--db", used])
    assert len(json.loads(listed.stdout)) == 3
    assert listed.stderr == (
        "no usage from 2026-12-01 00:00 to 2027-01-01 00:00 UTC:"
        " no Query LLM has any cost in this window\n"
    )
    table = run(["list", "--sort", "cost", "--from", "2026-12", "--format", "table", "--db", used])
    assert "every cost is 0, so the order says nothing" in table.stdout.splitlines()[-1]
    used_window = run(["list", "--sort", "cost", "--from", "2026-11", "--db", used])
    assert used_window.stderr == ""


def test_get_metadata_prints_the_totals_people_ask_for(used: str) -> None:
    got = ok(["get", NAMES["dear"], "--metadata", "--from", "2026-11-02", "--db", used])
    assert (got["tokens"], got["cost"], got["requests"]) == (300, Decimal("1.5"), 3)
    assert "cost" not in ok(["get", NAMES["dear"], "--db", used])  # only with --metadata
    model = ok(["model", "list", "--db", used])[0]
    totals = ok(["model", "get", model, "--metadata", "--db", used])
    assert (totals["tokens"], totals["cost"]) == (800, Decimal("2.04"))


@pytest.mark.parametrize(
    ("args", "requests"),
    [
        (["--from", "2026-W44", "--to", "2026-W45"], 1),  # Monday 26 Oct to Monday 2 Nov
        (["--from", "2026-11-03"], 2),
        (["--from", "2026-11", "--to", "2026-11-03T10:00:00+00:00"], 2),
        (["--from", "-3650d"], 4),
        (["--last", "520w"], 4),
        (["--from", "yesterday"], 0),
        (["--from", "today", "--to", "now"], 0),
    ],
)
def test_relative_and_calendar_times(used: str, args: list[str], requests: int) -> None:
    """The events of one Query LLM at 10:00 UTC on 1 to 4 November 2026."""
    got = ok(["get", NAMES["dear"], "--metadata", *args, "--db", used])
    assert got["requests"] == requests


def test_several_files_per_register(tmp_path: Path) -> None:
    """Each file its own registration, printed as a JSON array in order; if any file is
    invalid, none is registered and every problem is named by its file."""
    db = str(tmp_path / "r.db")
    files = []
    for index, b in enumerate((CHEAP, DEAR)):
        files.append(tmp_path / f"{index}.json")
        files[-1].write_text(json.dumps(b), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "x/y", "mode": "generate"}), encoding="utf-8")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    lines = fails(["register", str(files[0]), str(bad), str(broken), "--db", db], 1)
    assert lines[0] == f"{bad}: /weight: is required"
    assert lines[1].startswith(f"{broken}: ")
    assert not Path(db).exists()
    printed = ok(["register", *map(str, files), "--db", db])
    assert [p["name"] for p in printed] == [NAMES["cheap"], NAMES["dear"]]
    assert ok(["register", str(files[0]), "--db", db])["name"] == NAMES["cheap"]  # one: a body
    assert len(ok(["validate", *map(str, files)])) == 2
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"models": [CHEAP], "weight": {"type": "static"}}))
    assert len(ok(["model", "register", str(model), str(model), "--db", db])) == 2
    assert ok(["model", "count", "--db", db]) == 1


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(cli), ids=" ".join)
def test_every_command_has_h_help_for_every_option_and_an_example(path: tuple[str, ...]) -> None:
    short = run([*path, "-h"])
    assert short.exit_code == 0
    assert short.stdout == run([*path, "--help"]).stdout
    lines = [line for line in short.stdout.splitlines() if line.strip()]
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"qllm {' '.join(path)} {param.opts[0]} has no help"
    # The example closes the description: the last lines before the options.
    text = short.stdout.split("\nOptions:")[0]
    example = text.split("Example:")[-1].strip().splitlines()
    assert "Example:" in text, lines
    assert example
    assert all(line.strip().split()[0] in ("qllm", "sqlite3", "export") or "qllm" in line
               for line in example)  # fmt: skip


def test_time_options_say_what_they_take() -> None:
    text = run(["get", "-h"]).stdout
    flat = " ".join(text.split())
    for form in (
        "2026-W47",
        "-7d",
        "today",
        "an offset is required",
        "Ignored without --metadata",
    ):
        assert form in flat
    assert "RFC 3339 time" not in flat
    serve = " ".join(run(["serve", "-h"]).stdout.split())
    assert "postgresql:// URL" in serve
    usage = " ".join(run(["usage", "-h"]).stdout.split())
    assert "series" in usage.split("Commands:")[0]


def _choices(command: click.Command, name: str) -> tuple[str, ...]:
    (param,) = [p for p in command.params if p.name == name]
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


def test_choices_come_from_the_library() -> None:
    """--sort, --bucket, --group-by, --metric and --by are choices made from the library's
    constants, so completion offers them."""
    usage = cli.commands["usage"]
    assert isinstance(usage, click.Group)
    series = usage.commands["series"]
    assert _choices(cli.commands["list"], "sort") == SORTS
    assert _choices(series, "bucket") == BUCKETS
    assert _choices(series, "group_by") == GROUPS
    assert _choices(series, "metric") == tuple(MEASURES)
    assert _choices(cli.commands["top"], "by") == tuple(MEASURES)


def _complete(words: str) -> list[str]:
    """What bash completion offers after ``words`` (the real script, click's protocol)."""
    env = {
        **os.environ,
        "_QLLM_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    done = subprocess.run([str(QLLM)], env=env, capture_output=True, text=True, check=False)
    return [line.split(",", 1)[1] for line in done.stdout.splitlines() if "," in line]


def test_shell_completion_offers_the_choices() -> None:
    assert _complete("qllm list --sort ") == list(SORTS)
    assert _complete("qllm usage series --bucket w") == ["week"]
    assert _complete("qllm usage series --group-by ") == list(GROUPS)
    assert _complete("qllm top --by c") == ["completion_tokens", "cost"]
    assert "top" in _complete("qllm t")


def test_errors_name_the_options_typed_but_body_paths_stay(tmp_path: Path, used: str) -> None:
    assert fails(["usage", "series", "--from", "2026-11", "--me", "--db", used], 4) == [
        "--me needs a token (QLLM_TOKEN or --token)"
    ]
    assert fails(["usage", "series", "--from", "2026-11", "--name", "x", "--db", used], 1) == [
        "--name: 'x' is not a Query LLM name (22 base62)"
    ]
    assert fails(["usage", "series", "--from", "2026-12", "--to", "2026-11", "--db", used], 1) == [
        "--from: must be earlier than --to"
    ]
    assert fails(["top", "--last", "7d", "--from", "today", "--db", used], 1) == [
        "--last: cannot be used with --from or --to"
    ]
    file = tmp_path / "b.json"
    file.write_text(json.dumps({**CHEAP, "from": 1}), encoding="utf-8")
    lines = fails(["register", str(file), "--db", used], 1)
    assert lines == ["/from: unknown key"]  # a key of the FILE's body, not --from


def test_usage_at_takes_the_grammar_too(used: str) -> None:
    ok(["usage", "record", NAMES["cheap"], "--at", "-1h", "--chat-cost", "1", "--db", used])
    got = ok(["get", NAMES["cheap"], "--metadata", "--last", "2h", "--db", used])
    assert got["cost"] == 1
    assert times.now() > 0


def test_an_import_without_its_token_is_mended_by_claim(tmp_path: Path, used: str) -> None:
    """Issue 21 item 6: the re-import with the token says the user is what differs and how
    to go on; ``qllm usage claim`` gives the events to the caller, and the import then
    repeats them exactly."""
    carol = ok(["token", "create", "carol", "--db", used])["token"]
    lines = tmp_path / "u.jsonl"
    events = [
        {"name": NAMES["cheap"], "request_id": f"c{i}", "chat_cost": "0.25"} for i in range(3)
    ]
    lines.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    assert ok(["usage", "import", str(lines), "--db", used]) == {"read": 3, "written": 3}
    as_carol = {"QLLM_TOKEN": carol}
    again = fails(["usage", "import", str(lines), "--db", used], 1, env=as_carol)
    assert again[0].startswith(
        "line 1: /request_id: was recorded before with other content: it was recorded by no"
        " user (without a token), and this time by 'carol'."
    )
    assert ok(["usage", "claim", str(lines), "--db", used], env=as_carol) == {
        "read": 3,
        "claimed": 3,
    }
    assert ok(["usage", "import", str(lines), "--db", used], env=as_carol)["written"] == 0
    mine = ok(["get", NAMES["cheap"], "--metadata", "--me", "--db", used], env=as_carol)
    assert (mine["requests"], mine["cost"]) == (3, Decimal("0.75"))
    assert fails(["usage", "claim", str(lines), "--db", used], 4) == [
        "claiming usage needs a token"
    ]
