"""``make demo`` on a fresh copy of the repository, as a newcomer runs it (issue 21 item 2):
it installs what it needs, works in a file of its own that it names, writes nothing else
(not the user's registry, not a log beside the examples), and runs again."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.data import ROOT

pytestmark = pytest.mark.slow
TIMEOUT = 600  # seconds: the first run makes a virtual environment and installs qllm


def _files(top: Path) -> dict[str, str]:
    """Every file under ``top`` but the virtual environment, with its content's hash."""
    found = {}
    for path in sorted(top.rglob("*")):
        relative = path.relative_to(top)
        if relative.parts[0] == ".venv" or not path.is_file() or "__pycache__" in relative.parts:
            continue
        found[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _copy_of_the_checkout(into: Path) -> None:
    """The repository's files as a clone has them (tracked, and new ones not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            target = into / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def test_make_demo_from_a_fresh_copy_twice(tmp_path: Path) -> None:
    clone, home = tmp_path / "clone", tmp_path / "home"
    home.mkdir()
    _copy_of_the_checkout(clone)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"QLLM_DB", "QLLM_TOKEN", "XDG_DATA_HOME", "VIRTUAL_ENV", "PYTHONPATH"}
    }
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    # pip's downloads are kept where they were, so that the test does not fetch them again.
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    before = _files(clone)
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            ["make", "demo"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        outputs.append(done.stdout)
        after = _files(clone)
        assert {k: v for k, v in after.items() if k != "examples/demo.db"} == before
        assert "examples/demo.db" in after
        assert not (home / ".local").exists()  # the user's own registry is never made
        assert "Traceback" not in done.stdout + done.stderr
    first, second = outputs
    demo_db = clone / "examples" / "demo.db"
    assert any(line.startswith(f"registry file: {demo_db} ") for line in first.splitlines())
    for output in outputs:
        assert "Query LLMs by cost, from 2026-11-16 00:00 to 2026-11-23 00:00 UTC" in output
        assert "\ndone." in output
        assert "--token" not in output  # tokens go in QLLM_TOKEN, never on a command line

    # The second run starts from nothing again: the same figures.
    def tops(output: str) -> list[str]:  # the first row of each ranking by a share
        return [line for line in output.splitlines() if line.startswith("   1  ") and "%" in line]

    assert len(tops(first)) == 2
    assert tops(first) == tops(second)
    assert "pip install" not in second  # nothing installed the second time

    # The training-table loop: before any mark every member has its base weight; with
    # marks, the weights move away from it (issue 20: the demo shows them moving).
    def weights(output: str, marked: int) -> list[str]:
        [line] = [row for row in output.splitlines() if row.startswith(f"{marked:2d} marked | ")]
        return re.findall(r"(?:claude|deepseek) +([0-9.]+)", line)

    for output in outputs:
        assert set(weights(output, 0)) == {"10.00", "5.00"}  # the base weights
        assert weights(output, 80) != weights(output, 0)
        assert not set(weights(output, 80)) & {"10.00", "5.00"}
