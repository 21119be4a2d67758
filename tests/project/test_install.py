"""The wheel installs into a fresh virtual environment and works from anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from sqlite_utils import Database

from registry.registry import Registry
from registry.store.sqlite import migration_set
from tests.support.data import ROOT, load_vectors
from tests.support.serving import port_of

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


class Installed:
    """A wheel built from the checkout and installed in a new venv, outside the checkout,
    for a user whose HOME is ``home``: built once for this module's tests."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.outside = top / "elsewhere"
        self.outside.mkdir()
        self.home = top / "home"
        self.env = _env(self.home)
        dist = top / "dist"
        built = _run([*_PIP_WHEEL, str(dist), str(ROOT)], cwd=self.outside, env=self.env)
        assert built.returncode == 0, built.stderr
        (self.wheel,) = dist.glob("query_llm_registry-*.whl")
        self.venv = top / "venv"
        created = _run([sys.executable, "-m", "venv", str(self.venv)], self.outside, self.env)
        assert created.returncode == 0, created.stderr
        self.python = str(self.venv / "bin" / "python")
        self.qllm = str(self.venv / "bin" / "qllm")
        installed = _run(
            [self.python, "-m", "pip", "install", str(self.wheel)], self.outside, self.env
        )
        assert installed.returncode == 0, installed.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return Installed(tmp_path_factory.mktemp("install"))


def test_wheel_installs_and_runs_outside_the_checkout(installed: Installed, tmp_path: Path) -> None:
    """A wheel built from the checkout installs in a new venv and validates, stores and migrates."""
    outside, env, venv = installed.outside, installed.env, installed.venv
    python, qllm = installed.python, installed.qllm
    files = zipfile.ZipFile(installed.wheel).namelist()
    assert "registry/_migrations/migrations.py" in files
    assert "registry/py.typed" in files
    assert "registry/__init__.py" in files
    assert not [name for name in files if name.startswith("migrations/")]
    assert not [name for name in files if name.startswith("tests/")]
    assert Path(qllm).is_file()

    minimal = load_vectors()["valid"][0]
    validated = _run([qllm, "validate", "-"], outside, env, json.dumps(minimal["body"]))
    assert validated.returncode == 0, validated.stderr
    assert json.loads(validated.stdout)["name"] == minimal["name"]

    # The top-level migrations/ directory of the checkout is not part of the install.
    leaked = _run([python, "-c", "import migrations"], cwd=outside, env=env)
    assert leaked.returncode != 0
    assert "ModuleNotFoundError" in leaked.stderr

    probe = _run(
        [python, "-c", _PROBE, str(tmp_path / "x.db"), json.dumps(minimal["body"])],
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


def test_installed_for_people_every_install_hint_works(
    installed: Installed, tmp_path: Path
) -> None:
    """Issue 21 item 1: the installed ``qllm`` has ``--version``, prints where its file is
    as a plain path, and every message that names an install command names one that
    works: the server extra named by ``qllm serve``'s error is installed with the command
    it names (from the built wheel, in place of the clone's ``.``) and the server then
    starts, from outside the checkout."""
    outside, home, env, wheel = installed.outside, installed.home, installed.env, installed.wheel
    python, qllm = installed.python, installed.qllm
    version = _run([qllm, "--version"], outside, env)
    assert version.returncode == 0
    assert version.stdout.strip() == "qllm, version 0.1.0"
    where = _run([qllm, "where"], outside, env)
    assert where.stdout == str(home / "data" / "qllm" / "registry.db") + "\n"
    assert not (home / "data").exists()  # saying where creates nothing

    postgres = "postgresql://u@127.0.0.1:1/x"
    hints = {
        "server": _run([qllm, "serve", "--port", "0"], outside, env).stderr,
        "client": _run([python, "-c", "import registry; registry.Client"], outside, env).stderr,
        "postgres": _run([qllm, "count", "--db", postgres], outside, env).stderr,
    }
    for extra, said in hints.items():
        assert f"pip install '.[{extra}]'" in said, said
        assert "query-llm-registry[" not in said  # the package is not published
        assert "Traceback" not in said or extra == "client"  # an ImportError, for a library

    # The command named, with the wheel standing for the clone: the server then starts.
    named = [python, "-m", "pip", "install", f"{wheel}[server]"]
    assert _run(named, cwd=outside, env=env).returncode == 0
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        server = subprocess.Popen(
            [qllm, "serve", "--port", "0", "--db", str(tmp_path / "served.db")],
            cwd=outside,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        port = port_of(server, log)
        answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert answer.json() == {"status": "ok"}
    finally:
        server.terminate()
        server.wait(timeout=60)
