"""The wheel installs into a fresh virtual environment and works from anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlite_utils import Database

from registry.registry import Registry
from registry.store.sqlite import migration_set
from tests.support.data import ROOT, load_vectors

pytestmark = pytest.mark.slow

_PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w"]
TIMEOUT = 600  # seconds: building and installing may download dependencies

_PROBE = """
import json, sys
import registry
from registry.store.sqlite import migration_set
from sqlite_utils import Database

path = sys.argv[1]
with registry.Registry(path) as reg:
    llm = reg.register(json.loads(sys.argv[2]))
migrations = migration_set()
print(json.dumps({
    "registry": registry.__file__,
    "migration_file": migrations._migrations[0].fn.__code__.co_filename,
    "applied": [m.name for m in migrations.applied(Database(path))],
    "name": llm.name,
}))
"""


def _env(home: Path) -> dict[str, str]:
    """The environment of a user who has nothing of this checkout on their path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "QLLM_DB", "QLLM_TOKEN"}
    }
    env["HOME"] = str(home)
    env["XDG_DATA_HOME"] = str(home / "data")
    return env


def _run(
    args: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _applied_in_checkout(tmp_path: Path) -> list[str]:
    path = tmp_path / "checkout.db"
    with Registry(path):
        pass
    migrations = migration_set()
    return [m.name for m in migrations.applied(Database(path))]


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    """A wheel built from the checkout installs in a new venv and validates, stores and migrates."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = _env(tmp_path / "home")

    dist = tmp_path / "dist"
    built = _run(
        [*_PIP_WHEEL, str(dist), str(ROOT)],
        cwd=outside,
        env=env,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("query_llm_registry-*.whl")

    files = zipfile.ZipFile(wheel).namelist()
    assert "registry/_migrations/migrations.py" in files
    assert "registry/py.typed" in files
    assert "registry/__init__.py" in files
    assert not [name for name in files if name.startswith("migrations/")]
    assert not [name for name in files if name.startswith("tests/")]

    venv = tmp_path / "venv"
    created = _run([sys.executable, "-m", "venv", str(venv)], cwd=outside, env=env)
    assert created.returncode == 0, created.stderr
    python, qllm = venv / "bin" / "python", venv / "bin" / "qllm"
    installed = _run([str(python), "-m", "pip", "install", str(wheel)], cwd=outside, env=env)
    assert installed.returncode == 0, installed.stderr
    assert qllm.is_file()

    minimal = load_vectors()["valid"][0]
    validated = _run([str(qllm), "validate", "-"], outside, env, json.dumps(minimal["body"]))
    assert validated.returncode == 0, validated.stderr
    assert json.loads(validated.stdout)["name"] == minimal["name"]

    # The top-level migrations/ directory of the checkout is not part of the install.
    leaked = _run([str(python), "-c", "import migrations"], cwd=outside, env=env)
    assert leaked.returncode != 0
    assert "ModuleNotFoundError" in leaked.stderr

    probe = _run(
        [str(python), "-c", _PROBE, str(tmp_path / "x.db"), json.dumps(minimal["body"])],
        cwd=outside,
        env=env,
    )
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout)
    site = venv.resolve()
    assert Path(report["registry"]).resolve().is_relative_to(site)
    migration_file = Path(report["migration_file"]).resolve()
    assert migration_file.is_relative_to(site)
    assert migration_file.parts[-3:] == ("registry", "_migrations", "migrations.py")
    assert report["applied"]
    assert report["applied"] == _applied_in_checkout(tmp_path)
    assert report["name"] == minimal["name"]
