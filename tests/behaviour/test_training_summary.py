"""`Registry.training_summary`, what the dashboard's page of a Query Model shows: how many
rows its training table holds and each member's weight over all of them (SQLite and
PostgreSQL)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from registry.errors import NotFoundError, ValidationError
from registry.registry import Registry
from tests.behaviour.test_training import VECTORS, stocked

pytestmark = pytest.mark.backends

NAMES = VECTORS["names"]


def by_hand(members: list[dict[str, Any]], marks: dict[str, str]) -> list[dict[str, Any]]:
    """Each member's mean score over every marked row of the table, and its weight."""
    rows = [c["record"] for c in VECTORS["completions"] if c["record"]["id"] in marks]
    answer = []
    for member in members:
        table, scores = member["training_table_index"], []
        for row in rows:
            model = (
                VECTORS["model_members"]
                if row["query_model"] == NAMES["model"]
                else VECTORS["sibling_members"]
            )
            mine = []
            for vote in row["votes"]:
                if model[vote["index"]]["training_table_index"] != table:
                    continue
                c, correct = vote["confidence_id"], marks[row["id"]]
                mine.append(
                    (1.0 if c == correct else 0.0)
                    if isinstance(c, str)
                    else c.get(correct, 0) / math.fsum(c.values())
                )
            if mine:
                scores.append(math.fsum(mine) / len(mine))
        weight = member["weight"]
        score = math.fsum(scores) / len(scores)
        answer.append(
            {
                "index": member["index"],
                "weight": weight["min_weight"]
                + (weight["max_weight"] - weight["min_weight"]) * score,
                "rows": len(scores),
                "score": score,
            }
        )
    return answer


def test_the_table_as_a_whole(reg: Registry) -> None:
    stocked(reg)
    marks = {c["record"]["id"]: c["mark"] for c in VECTORS["completions"] if c["mark"]}
    for model, members in (
        (NAMES["model"], VECTORS["model_members"]),
        (NAMES["sibling_model"], VECTORS["sibling_members"]),
    ):
        got = reg.training_summary(model)
        assert got == {
            "query_model": model,
            "training_table_name": NAMES["training_table_name"],
            "rows": 6,  # every format and length; c7 was never marked
            "models": by_hand(members, marks),
        }
    reg.unmark("c1")
    reg.mark("c3", "B")
    marks.pop("c1")
    marks["c3"] = "B"
    got = reg.training_summary(NAMES["model"])
    assert got["rows"] == 5
    assert got["models"] == by_hand(VECTORS["model_members"], marks)


def test_base_weights_before_any_mark_and_a_static_model(reg: Registry) -> None:
    stocked(reg, marks=False)
    got = reg.training_summary(NAMES["model"])
    assert got["rows"] == 0
    assert [(m["weight"], m["rows"], m["score"]) for m in got["models"]] == [
        (1.0, 0, None),
        (1.0, 0, None),
        (0.8, 0, None),
        (1.5, 0, None),
    ]
    static = reg.training_summary(NAMES["static_model"])
    assert static == {**VECTORS["queries"][6]["expected"], "training_table_name": None}
    with pytest.raises(NotFoundError):
        reg.training_summary("0" * 22)
    with pytest.raises(ValidationError):
        reg.training_summary("x")
