"""``qllm completion ...`` and ``qllm model weights``: the worked example from the command
line, its errors on stderr one line per problem, and the exit codes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from registry.registry import Registry
from tests.support.cli import fails, ok
from tests.support.data import ROOT

VECTORS: dict[str, Any] = json.loads(
    (ROOT / "tests" / "fixtures" / "training_table_vectors.json").read_text("utf-8")
)
MODEL = VECTORS["names"]["model"]


def floats(value: Any) -> Any:
    """CLI output read with exact decimals, as the library's floats."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [floats(v) for v in value]
    return value


def models(db: Path) -> list[str]:
    with Registry(db) as reg:
        for key in ("model", "sibling_model", "static_model"):
            reg.register_model(VECTORS[key])
        token = reg.create_token("alice")
    return ["--db", str(db), "--token", token]


def test_the_worked_example_from_the_command_line(tmp_path: Path) -> None:
    options = models(tmp_path / "r.db")
    lines = tmp_path / "completions.jsonl"
    lines.write_text(
        "\n".join(json.dumps(c["record"]) for c in VECTORS["completions"]) + "\n\n",
        encoding="utf-8",
    )
    assert ok(["completion", "record", str(lines), *options]) == {"read": 7, "written": 7}
    assert ok(["completion", "record", str(lines), *options]) == {"read": 7, "written": 0}
    for completion in VECTORS["completions"]:
        if completion["mark"] is not None:
            assert (
                ok(["completion", "mark", completion["record"]["id"], completion["mark"], *options])
                == {}
            )
    for query in VECTORS["queries"]:
        prompt = tmp_path / "prompt.json"
        prompt.write_text(
            json.dumps(
                {
                    "embedding": query["embedding"],
                    "response_format_hash": query["response_format_hash"],
                }
            ),
            encoding="utf-8",
        )
        got = ok(["model", "weights", query["query_model"], "--embedding", str(prompt), *options])
        assert floats(got) == query["expected"]
    # a bare array on stdin: the default format
    first = VECTORS["queries"][0]
    got = ok(
        ["model", "weights", MODEL, "--embedding", "-", *options],
        input=json.dumps(first["embedding"]),
    )
    assert floats(got) == first["expected"]
    got = ok(["completion", "get", "c1", "--embedding", *options])
    assert got["correct_confidence_id"] == "A"
    assert floats(got["embedding"]) == [1.0, 0.0, 0.0]
    assert ok(["completion", "unmark", "c1", *options]) == {}
    assert "correct_confidence_id" not in ok(["completion", "get", "c1", *options])


def test_one_object_is_one_completion(tmp_path: Path) -> None:
    options = models(tmp_path / "r.db")
    one = tmp_path / "one.json"
    one.write_text(json.dumps(VECTORS["completions"][0]["record"], indent=2), encoding="utf-8")
    assert ok(["completion", "record", str(one), *options]) == {"written": 1}
    assert ok(["completion", "record", "-", *options], input=one.read_text()) == {"written": 0}


def test_errors_name_the_line_and_nothing_is_written(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    options = models(db)
    good = VECTORS["completions"][0]["record"]
    bad = {**VECTORS["completions"][1]["record"], "embedding": [0, float("nan")]}
    member = {**VECTORS["completions"][2]["record"], "votes": [{"index": 7, "confidence_id": "A"}]}
    lines = tmp_path / "bad.jsonl"
    lines.write_text("\n".join([json.dumps(good), "", json.dumps(bad), json.dumps(member)]))
    assert fails(["completion", "record", str(lines), *options], 1) == [
        "line 3: /embedding/1: must be a number, not nan",
        "line 4: /votes/0/index: must be a member index of "
        f"{VECTORS['names']['sibling_model']}: 0 to 3",
    ]
    lines.write_text(json.dumps(good) + "\n{not json\n")
    assert fails(["completion", "record", str(lines), *options], 1)[0].startswith(
        "line 2: is not valid JSON"
    )
    with Registry(db) as reg:
        assert reg.db.execute("SELECT COUNT(*) FROM completions").fetchone() == (0,)


def test_exit_codes(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    options = models(db)
    one = tmp_path / "one.json"
    one.write_text(json.dumps(VECTORS["completions"][0]["record"]), encoding="utf-8")
    ok(["completion", "record", str(one), "--db", str(db)])  # anonymous
    assert fails(["completion", "get", "nope", *options], 3) == ["no completion named nope"]
    assert fails(["completion", "mark", "c1", "", *options], 1) == [
        "/correct_confidence_id: must be a non-empty string"
    ]
    with Registry(db) as reg:
        bob = reg.create_token("bob")
    ok(["completion", "mark", "c1", "A", "--db", str(db), "--token", bob])  # anonymous: anyone
    with Registry(db) as reg:
        reg.record_completion(
            "hers", MODEL, [1, 0, 0], [{"index": 0, "confidence_id": "A"}], token=options[-1]
        )
    assert fails(["completion", "mark", "hers", "A", "--db", str(db), "--token", bob], 4) == [
        "completion hers was recorded by another user: only they may mark it"
    ]
    prompt = tmp_path / "p.json"
    prompt.write_text('{"embedding": [0, 0], "format": "x"}', encoding="utf-8")
    assert fails(["model", "weights", MODEL, "--embedding", str(prompt), *options], 1) == [
        "/format: unknown key"
    ]
    prompt.write_text("[0, 0]", encoding="utf-8")
    assert fails(["model", "weights", MODEL, "--embedding", str(prompt), *options], 1) == [
        "/embedding: must not be all zero (after rounding to float32)"
    ]
    prompt.write_text("[1]", encoding="utf-8")
    assert fails(["model", "weights", "0" * 22, "--embedding", str(prompt), *options], 3) == [
        f"no Query Model named {'0' * 22}"
    ]
