"""The in-memory training tables stay in step with the database: another process's marks,
re-marks and unmarks are seen on the next call, and a call with nothing changed reads no
row again (on a file and on PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from registry import nearest
from registry.registry import Registry
from tests.behaviour.test_training import VECTORS, stocked
from tests.support.data import ROOT

MODEL = VECTORS["names"]["model"]
QUERY = VECTORS["queries"][0]

# Another process: runs the calls given, then prints the weights it computes from cold.
OTHER = """
import json, sys
from registry.registry import Registry
location, calls, query = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
with Registry(location) as reg:
    for name, *args in calls:
        getattr(reg, name)(*args)
    print(json.dumps(reg.weights(query["query_model"], query["embedding"])))
"""


def elsewhere(location: str, *calls: list[Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", OTHER, location, json.dumps(calls), json.dumps(QUERY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def held(location: str) -> nearest.Table:
    key = (location, VECTORS["names"]["training_table_name"], "", "3")
    return nearest.TABLES._tables[key]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_another_process_s_marks_are_seen(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    location = (
        str(request.getfixturevalue("pg_location"))
        if backend == "postgres"
        else str(tmp_path / "registry.db")
    )
    with Registry(location) as reg:
        stocked(reg)
        assert reg.weights(MODEL, QUERY["embedding"]) == QUERY["expected"]
        table = held(reg.location)
        view = table.view
        assert reg.weights(MODEL, QUERY["embedding"]) == QUERY["expected"]
        assert held(reg.location).view is view  # nothing changed: nothing read again
        # a new row marked, one re-marked: caught up in place (the same table, a new view)
        new = elsewhere(location, ["mark", "c7", "B"], ["mark", "c2", "C"])
        assert new != QUERY["expected"]
        assert reg.weights(MODEL, QUERY["embedding"]) == new
        assert held(reg.location) is table
        assert held(reg.location).view is not view
        # an unmark: the table is read anew
        gone = elsewhere(location, ["unmark", "c7"])
        assert reg.weights(MODEL, QUERY["embedding"]) == gone
        assert held(reg.location) is not table
