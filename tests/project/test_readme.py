"""The README's examples run as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.data import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
QLLM = Path(sys.executable).with_name("qllm")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python examples run in order, their asserts included, in an empty directory."""
    monkeypatch.chdir(tmp_path)
    code = blocks("python")
    assert len(code) == 3  # Query LLMs, Query Models, then training tables
    exec(compile("\n".join(code), "README.md", "exec"), {})
    assert (tmp_path / "usage.db").is_file()


def matches(expected: str, actual: str) -> bool:
    """Line by line; an expected line containing "..." matches any text in its place."""
    wanted, got = expected.splitlines(), actual.splitlines()
    if len(wanted) != len(got):
        return False
    for want, line in zip(wanted, got, strict=True):
        pattern = ".*".join(re.escape(part) for part in want.split("..."))
        if not re.fullmatch(pattern, line):
            return False
    return True


# ``export NAME="$(command)"``: a value kept for the steps after it, as a shell session does.
EXPORT = re.compile(r'export (\w+)="\$\((.*)\)"')


def test_console_example_prints_what_it_shows(tmp_path: Path) -> None:
    """Each command of the console examples (one session, in order) prints exactly the
    output shown under it."""
    sessions = blocks("console")
    steps = [step for session in sessions for step in re.split(r"^\$ ", session, flags=re.M)[1:]]
    assert len(steps) >= 5
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{QLLM.parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("QLLM_DB", None)
    env.pop("QLLM_TOKEN", None)
    for step in steps:
        command, _, expected = step.partition("\n")
        exported = EXPORT.fullmatch(command.strip())
        if exported:
            name, inner = exported.groups()
            assert shlex.split(inner)[0] == "qllm"
            value = subprocess.run(
                inner, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=60, check=True,
            ).stdout.strip()  # fmt: skip
            assert value
            env[name] = value
            continue
        result = subprocess.run(
            command,
            check=False,
            shell=True,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        shown = result.stdout + result.stderr
        assert matches(expected, shown), f"$ {command}\n{shown}"
        assert "Traceback" not in shown
        assert shlex.split(command)[0] == "qllm"
