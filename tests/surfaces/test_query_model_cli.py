"""``qllm model ...``, ``usage record --query-model`` and ``query_model`` in ``usage import``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import registry
from registry.registry import Registry
from tests.support.cli import ok, run
from tests.support.data import body

QLLM = Path(sys.executable).with_name("qllm")
MODEL = {"models": [body(), body(temperature=0.5)], "weight": {"type": "static"}}
NAME = registry.validate_model(MODEL).name
MEMBER = registry.validate(body()).name


def write(path: Path, value: object) -> str:
    path.write_text(json.dumps(value), encoding="utf-8")
    return str(path)


def test_model_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    file = write(tmp_path / "model.json", MODEL)
    assert ok(["model", "validate", file]) == registry.dump_model(registry.validate_model(MODEL))
    assert ok(["model", "register", file, "--db", db])["name"] == NAME
    assert ok(["model", "get", NAME, "--db", db, "--readonly"])["name"] == NAME
    assert ok(["model", "count", "--db", db]) == 1
    assert ok(["count", "--db", db]) == 2
    assert ok(["model", "list", "--db", db, "--sort", "requests"]) == [NAME]
    assert ok(
        ["usage", "record", MEMBER, "--db", db, "--query-model", NAME, "--chat-cost", "0.25"]
    ) == {"written": 1}
    lines = tmp_path / "events.jsonl"
    lines.write_text(
        json.dumps({"name": MEMBER, "query_model": NAME, "chat_cost": "0.5"})
        + "\n"
        + json.dumps({"name": MEMBER})
        + "\n",
        encoding="utf-8",
    )
    assert ok(["usage", "import", str(lines), "--db", db]) == {"read": 2, "written": 2}
    got = ok(["model", "get", NAME, "--db", db, "--metadata"])
    assert got["requests"] == 2
    assert str(got["chat_cost"]) == "0.750000000" or float(got["chat_cost"]) == 0.75
    assert ok(["get", MEMBER, "--db", db, "--metadata"])["requests"] == 3


def test_model_exit_codes(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    bad = write(
        tmp_path / "bad.json", {"models": [body(temperature=7)], "weight": {"type": "static"}}
    )
    result = run(["model", "validate", bad])
    assert result.exit_code == 1
    assert result.stderr.startswith("/models/0/temperature:")
    assert run(["model", "register", bad, "--db", db]).exit_code == 1
    assert not Path(db).exists()  # invalid input writes nothing, not even a new file
    with Registry(db):
        pass
    assert run(["model", "get", MEMBER, "--db", db]).exit_code == 3
    assert run(["model", "list", "--db", db, "--me"]).exit_code == 4
    assert run(["model", "count", "--db", db, "--token", "nope"]).exit_code == 4
    ok(["model", "register", write(tmp_path / "m.json", MODEL), "--db", db])
    other = ok(["register", write(tmp_path / "o.json", body(id="o/o")), "--db", db])["name"]
    result = run(["usage", "record", other, "--db", db, "--query-model", NAME])
    assert result.exit_code == 1
    assert result.stderr.startswith("--query-model:")  # the option, as typed
    lines = tmp_path / "events.jsonl"
    lines.write_text(json.dumps({"name": other, "query_model": NAME}) + "\n", encoding="utf-8")
    result = run(["usage", "import", str(lines), "--db", db])
    assert result.exit_code == 1
    assert result.stderr.startswith("line 1: /query_model:")


def test_installed_qllm_model_register_from_stdin(tmp_path: Path) -> None:
    """The console script, in a real process, reads the body from stdin."""
    done = subprocess.run(
        [str(QLLM), "model", "register", "-", "--db", str(tmp_path / "r.db")],
        input=json.dumps(MODEL),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == NAME


def test_model_reads_never_create_a_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "r.db"
    for args in (["model", "get", NAME], ["model", "list"], ["model", "count"]):
        result = run([*args, "--db", str(missing)])
        assert result.exit_code == 5
        assert "no registry at" in result.stderr
    assert not missing.parent.exists()
