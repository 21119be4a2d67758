"""``qllm validate`` (spec section 11): the response body on stdout, problems on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import registry
from registry.cli import cli
from tests.support.data import body

TRAINING_TABLE = body(
    stop=["b", "a", "b"],
    temperature=1.0,
    weight={"type": "training_table", "base_weight": 2, "min_weight": 1, "max_weight": 3},
)
FAULTY = body(temperature=9, provider={"order": ["a", ""]}, temprature=1, id="has space")


def run(*args: str, stdin: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["validate", *args], input=stdin)


def expected_output(value: Any) -> dict[str, Any]:
    return registry.dump(registry.validate(value))


def assert_one_line_error(result: Result) -> str:
    """The run failed cleanly: exit 1, nothing on stdout, one line on stderr, no traceback."""
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("value", [body(), TRAINING_TABLE], ids=["static", "training_table"])
def test_validate_file(tmp_path: Path, value: dict[str, Any]) -> None:
    """A valid body in a file prints its response body as JSON and exits 0."""
    path = tmp_path / "body.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    result = run(str(path))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == expected_output(value)
    assert result.stderr == ""


def test_validate_stdin() -> None:
    """``-`` reads the body from stdin; the output carries both names for a training table."""
    result = run("-", stdin=json.dumps(TRAINING_TABLE))
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == expected_output(TRAINING_TABLE)
    assert printed["stop"] == ["a", "b"]
    assert "temperature" not in printed
    assert printed["training_table_name"] == registry.validate(TRAINING_TABLE).training_table_name


def test_validate_prints_non_ascii_as_json() -> None:
    """Non-ASCII text round-trips through the printed JSON."""
    value = body(stop=["é", "\U0001f600"], id="modèle")
    result = run("-", stdin=json.dumps(value, ensure_ascii=False))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == expected_output(value)


def test_invalid_body_lists_every_problem_on_stderr() -> None:
    """An invalid body prints one "path: message" line per problem on stderr and exits 1."""
    result = run("-", stdin=json.dumps(FAULTY))
    assert result.exit_code == 1
    assert result.stdout == ""
    with pytest.raises(registry.ValidationError) as info:
        registry.validate(FAULTY)
    lines = result.stderr.splitlines()
    assert lines == [f"{path}: {message}" for path, message in info.value.errors]
    assert {line.split(": ", 1)[0] for line in lines} == {
        "/id",
        "/temperature",
        "/provider/order/1",
        "/temprature",
    }
    assert "/temperature: must be between 0 and 2" in lines


def test_invalid_body_in_a_file(tmp_path: Path) -> None:
    """A file argument fails the same way as stdin."""
    path = tmp_path / "faulty.json"
    path.write_text(json.dumps(FAULTY), encoding="utf-8")
    from_file, from_stdin = run(str(path)), run("-", stdin=json.dumps(FAULTY))
    assert from_file.exit_code == 1
    assert from_file.stdout == ""
    assert from_file.stderr == from_stdin.stderr


@pytest.mark.parametrize("text", ["[]", '"body"', "null", "42"])
def test_non_object_is_one_problem(text: str) -> None:
    """JSON that is not an object is one problem about the whole body."""
    line = assert_one_line_error(run("-", stdin=text))
    assert line.endswith(": must be an object")


@pytest.mark.parametrize(
    "text",
    ['{"id":', "", "{'id': 'm'}", '{"id": "m",}', "not json", '{"a": 1} trailing'],
    ids=["truncated", "empty", "single-quotes", "trailing-comma", "words", "trailing-data"],
)
def test_invalid_json_is_one_clear_line(text: str) -> None:
    """Text that is not JSON exits 1 with one line naming the problem, without a traceback."""
    line = assert_one_line_error(run("-", stdin=text))
    assert "not valid JSON" in line


def test_invalid_json_in_a_file_names_the_file(tmp_path: Path) -> None:
    """The message for a file that is not JSON names the file."""
    path = tmp_path / "broken.json"
    path.write_text("{", encoding="utf-8")
    line = assert_one_line_error(run(str(path)))
    assert "broken.json" in line
    assert "not valid JSON" in line


def test_deeply_nested_json_is_one_clear_line() -> None:
    """JSON nested too deeply for the parser is reported as one line, not a RecursionError."""
    assert_one_line_error(run("-", stdin="[" * 100_000 + "]" * 100_000))


def test_text_that_is_not_utf8_is_one_clear_line() -> None:
    """Input that is not UTF-8 (so not JSON) is reported as one line, not a UnicodeDecodeError."""
    assert_one_line_error(run("-", stdin=b'\xff\xfe{"id": "m"}'))


def test_console_script_reads_stdin() -> None:
    """The installed ``qllm`` script validates a body from stdin in a real process."""
    script = Path(sys.executable).with_name("qllm")
    assert script.is_file(), script
    completed = subprocess.run(
        [str(script), "validate", "-"],
        input=json.dumps(TRAINING_TABLE),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == expected_output(TRAINING_TABLE)
    assert completed.stderr == ""
