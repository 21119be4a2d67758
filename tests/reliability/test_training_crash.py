"""A process killed (SIGKILL) in the middle of a batch of completions keeps none of it: on a
file and on PostgreSQL, killed inside the write transaction (its rows inserted, no COMMIT
yet), killed while it validates, and killed from outside at moments along the way."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.registry import Registry
from tests.support.data import ROOT

pytestmark = pytest.mark.slow

VECTORS = json.loads((ROOT / "tests" / "fixtures" / "training_table_vectors.json").read_text())
MODEL = VECTORS["names"]["model"]
TOTAL = 3000  # completions of 1,536 numbers in each killed batch

# The batch's process: ``where`` says where it kills itself ("insert": after the rows are
# inserted, inside the transaction; "validate": half-way through reading the batch; "none":
# it is killed from outside). It writes ``started`` once it has begun.
WORKER = """
import os, signal, sys
from pathlib import Path
import numpy as np
from registry.registry import Registry
from registry.store import training
location, where, started, tag, total, model = sys.argv[1:7]
total = int(total)
def die():
    os.kill(os.getpid(), signal.SIGKILL)
rng = np.random.default_rng(7)
def batch():
    Path(started).write_text("1")
    for i in range(total):
        if where == "validate" and i == total // 2:
            die()
        yield {
            "id": f"{tag}-{i}",
            "query_model": model,
            "embedding": rng.standard_normal(1536).tolist(),
            "votes": [{"index": i % 4, "confidence_id": "A"}],
        }
def patch():
    if where == "insert":
        for cls in training.TrainingSql.__subclasses__() + [training.TrainingSql]:
            for sub in [cls, *cls.__subclasses__()]:
                inner = sub.__dict__.get("insert_new_completions")
                if inner is None:
                    continue
                def wrapped(self, rows, inner=inner):
                    done = inner(self, rows)
                    die()
                    return done
                sub.insert_new_completions = wrapped
with Registry(location) as reg:  # opened: the backend's modules are imported
    patch()
    reg.record_completions(batch())
"""


def completions(location: str, tag: str) -> int:
    with Registry(location) as reg:
        (count,) = reg.db.execute(
            "SELECT COUNT(*) FROM completions WHERE id LIKE ?", [f"{tag}-%"]
        ).fetchone()
        return int(count)


def stocked(location: str) -> None:
    with Registry(location) as reg:
        reg.register_model(VECTORS["model"])
        reg.record_completion(**VECTORS["completions"][0]["record"])


def run(location: str, where: str, started: Path, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, location, where, str(started), tag, str(TOTAL), MODEL],
        cwd=ROOT,
        text=True,
        stderr=subprocess.PIPE,
    )


def after(location: str, tag: str) -> None:
    """Nothing of the killed batch; the registry opens and the same batch then goes in whole."""
    assert completions(location, tag) == 0
    with Registry(location) as reg:
        assert reg.get_completion("c1")["id"] == "c1"
        vector = [0.5] * 1536
        assert (
            reg.record_completions(
                [
                    {
                        "id": f"{tag}-{i}",
                        "query_model": MODEL,
                        "embedding": vector,
                        "votes": [{"index": 0, "confidence_id": "A"}],
                    }
                    for i in range(3)
                ]
            )
            == 3
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_killed_batch_of_completions_keeps_none(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    location = (
        str(request.getfixturevalue("pg_location"))
        if backend == "postgres"
        else str(tmp_path / "registry.db")
    )
    stocked(location)
    for where in ("insert", "validate"):
        started = tmp_path / f"started-{where}"
        proc = run(location, where, started, where)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, err
        after(location, where)
    for number, delay in enumerate((0.5, 2.0, 4.0)):
        started, tag = tmp_path / f"started-{number}", f"outside{number}"
        proc = run(location, "none", started, tag)
        while not started.exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=300)
        found = completions(location, tag)
        # killed before its commit: none; a batch that finished first: all of it
        assert found in (0, TOTAL), f"{found} of {TOTAL} survived a kill after {delay} s"
