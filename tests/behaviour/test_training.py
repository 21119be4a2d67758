"""Training tables on every surface (the library, HTTP, PostgreSQL): completions recorded
and read, marked and unmarked, and the weights, with the worked example's every look-up."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import registry
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from tests.support.behaviour import Reg
from tests.support.data import ROOT

pytestmark = pytest.mark.surfaces

VECTORS: dict[str, Any] = json.loads(
    (ROOT / "tests" / "fixtures" / "training_table_vectors.json").read_text("utf-8")
)
NAMES = VECTORS["names"]
MODEL = NAMES["model"]
RECORDS = [c["record"] for c in VECTORS["completions"]]


def stocked(reg: Reg, *, marks: bool = True) -> None:
    """The worked example: its three Query Models and seven completions, marked."""
    for key in ("model", "sibling_model", "static_model"):
        reg.register_model(VECTORS[key])
    for completion in VECTORS["completions"]:
        assert reg.record_completion(**completion["record"]) == 1
        if marks and completion["mark"] is not None:
            reg.mark(completion["record"]["id"], completion["mark"])


def errors(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, str]]:
    return exc.value.errors


def count(reg: Reg, table: str) -> int:
    return int(reg.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def weigh(reg: Reg, query: dict[str, Any]) -> dict[str, Any]:
    return reg.weights(query["query_model"], query["embedding"], query["response_format_hash"])


# --- the worked example ------------------------------------------------------------------------


def test_the_names_of_the_worked_example(reg: Reg) -> None:
    model = reg.register_model(VECTORS["model"])
    sibling = reg.register_model(VECTORS["sibling_model"])
    static = reg.register_model(VECTORS["static_model"])
    assert (model.name, sibling.name, static.name) == (
        MODEL,
        NAMES["sibling_model"],
        NAMES["static_model"],
    )
    assert model.training_table_name == sibling.training_table_name == NAMES["training_table_name"]
    assert static.training_table_name is None
    members = reg.get_model(MODEL)["models"]
    assert [
        {k: m[k] for k in ("index", "id", "weight", "training_table_index")} for m in members
    ] == VECTORS["model_members"]
    siblings = reg.get_model(NAMES["sibling_model"])["models"]
    assert [
        {k: m[k] for k in ("index", "id", "weight", "training_table_index")} for m in siblings
    ] == VECTORS["sibling_members"]


@pytest.mark.parametrize("look_up", range(len(VECTORS["queries"])))
def test_every_look_up_of_the_worked_example(reg: Reg, look_up: int) -> None:
    stocked(reg)
    query = VECTORS["queries"][look_up]
    assert weigh(reg, query) == query["expected"]


def test_a_remark_and_an_unmark_then_the_look_up_again(reg: Reg) -> None:
    stocked(reg)
    first = VECTORS["queries"][0]
    assert weigh(reg, first) == first["expected"]  # the table is in memory now
    after = VECTORS["after"]
    for completion, answer in after["mark"].items():
        reg.mark(completion, answer)
    for completion in after["unmark"]:
        reg.unmark(completion)
    assert weigh(reg, after["query"]) == after["expected"]
    assert reg.get_completion("c2").get("correct_confidence_id") is None  # it stays, unmarked
    assert reg.get_completion("c1")["correct_confidence_id"] == "B"


def test_weights_move_from_the_base_weights_as_rows_are_marked(reg: Reg) -> None:
    stocked(reg, marks=False)
    bodies = reg.get_model(MODEL)
    query = VECTORS["queries"][0]
    base = weigh(reg, query)
    assert base["rows"] == 0
    assert [m["weight"] for m in base["models"]] == [1.0, 1.0, 0.8, 1.5]
    assert all(m["score"] is None and m["rows"] == 0 for m in base["models"])
    reg.mark("c1", "A")
    one = weigh(reg, query)
    assert one["rows"] == 1
    assert [m["weight"] for m in one["models"]] == [1.25, 1.5, 0.95, 2.0]
    # a computed answer: the stored bodies keep their weights
    assert reg.get_model(MODEL) == bodies


# --- completions ------------------------------------------------------------------------------


def test_get_completion_returns_what_was_recorded(reg: Reg) -> None:
    stocked(reg, marks=False)
    token = reg.create_token("alice")
    reg.record_completion(
        "mine",
        MODEL,
        [0.1, 0.2, 0.3],
        [{"index": 3, "confidence_id": {"x": 1, "y": 3}}, {"index": 0, "confidence_id": "x"}],
        response_format_hash="fmt-1",
        at="2026-11-01T10:00:00+01:00",
        token=token,
    )
    got = reg.get_completion("mine")
    assert got["id"] == "mine"
    assert got["query_model"] == MODEL
    assert got["response_format_hash"] == "fmt-1"
    assert got["at"] == "2026-11-01T09:00:00.000000Z"
    assert got["user_id"] == "alice"
    assert registry.times.parse(got["created"]) <= registry.times.now()
    # in member index order, as stored
    assert got["votes"] == [
        {"index": 0, "confidence_id": "x"},
        {"index": 3, "confidence_id": {"x": 1, "y": 3}},
    ]
    assert "embedding" not in got
    assert "correct_confidence_id" not in got
    # the embedding as stored: float32 values
    with_embedding = reg.get_completion("mine", embedding=True)
    assert with_embedding["embedding"] == [float(np.float32(x)) for x in (0.1, 0.2, 0.3)]
    reg.mark("mine", "y", token=token)
    assert reg.get_completion("mine")["correct_confidence_id"] == "y"


def test_anonymous_completions_numpy_embeddings_and_bad_tokens(reg: Reg) -> None:
    stocked(reg, marks=False)
    assert reg.get_completion("c1")["user_id"] is None
    vector = np.array([0.25, 0.5, 0.125], dtype=np.float64)
    assert reg.record_completion("np", MODEL, vector, [{"index": 1, "confidence_id": "B"}]) == 1
    assert reg.get_completion("np", embedding=True)["embedding"] == [0.25, 0.5, 0.125]
    assert reg.weights(MODEL, vector)["rows"] == 0
    with pytest.raises(AuthenticationError):
        reg.record_completion("x", MODEL, [1], [{"index": 0, "confidence_id": "A"}], token="nope")
    with pytest.raises(AuthenticationError):
        reg.weights(MODEL, [1], token="nope")
    with pytest.raises(registry.RegistryError):
        reg.get_completion("x")


def test_an_unknown_completion_is_not_found(reg: Reg) -> None:
    stocked(reg, marks=False)
    unknown: tuple[Callable[[], object], ...] = (
        lambda: reg.get_completion("nope"),
        lambda: reg.mark("nope", "A"),
        lambda: reg.unmark("nope"),
    )
    for call in unknown:
        with pytest.raises(NotFoundError):
            call()


def test_a_replay_is_a_no_op_and_other_content_a_conflict(reg: Reg) -> None:
    stocked(reg, marks=False)
    record = dict(RECORDS[1])
    assert reg.record_completion(**record) == 0
    # the embedding is compared as float32: 0.9 and its float32 value are the same number
    close = {**record, "embedding": [float(np.float32(0.9)), 0.1, 0.0]}
    assert reg.record_completion(**close) == 0
    stored = reg.get_completion("c2")
    for change in (
        {"embedding": [0.9, 0.1, 0.001]},
        {"votes": [{"index": 0, "confidence_id": "C"}]},
        {"response_format_hash": "other"},
        {"at": "2026-01-01T00:00:00Z"},  # the stored one is the time it was recorded
    ):
        with pytest.raises(ConflictError) as exc:
            reg.record_completion(**{**record, **change})
        assert errors(exc) == [("/id", "was recorded before with different content")]
    assert reg.get_completion("c2") == stored
    assert count(reg, "completions") == len(RECORDS)


def test_a_batch_is_all_or_nothing(reg: Reg) -> None:
    stocked(reg, marks=False)
    new = [{**RECORDS[0], "id": f"b{i}"} for i in range(3)]
    assert reg.record_completions([new[0], RECORDS[0]]) == 1  # c1 again: a replay
    bad = [new[1], {**new[2], "embedding": [0.0, 0.0]}, {**RECORDS[1], "votes": []}]
    with pytest.raises(ValidationError) as exc:
        reg.record_completions(bad)
    assert errors(exc) == [
        ("/1/embedding", "must not be all zero (after rounding to float32)"),
        ("/2/votes", "must be an array of 1 to 128 votes"),
    ]
    conflicting = [new[1], {**RECORDS[2], "response_format_hash": "x"}]
    with pytest.raises(ConflictError) as conflict:
        reg.record_completions(conflicting)
    assert errors(conflict) == [("/1/id", "was recorded before with different content")]
    with pytest.raises(registry.RegistryError):
        reg.get_completion("b1")
    assert count(reg, "completions") == len(RECORDS) + 1
    # the same id twice in a batch: the first is kept, the second must repeat it
    assert reg.record_completions([new[2], new[2]]) == 1
    with pytest.raises(ConflictError):
        reg.record_completions(
            [{**new[1], "id": "d"}, {**new[0], "id": "d", "response_format_hash": "y"}]
        )


def test_every_problem_at_its_path_and_nothing_written(reg: Reg) -> None:
    stocked(reg, marks=False)
    before = count(reg, "completions")
    with pytest.raises(ValidationError) as exc:
        reg.record_completion(
            "",
            MODEL,
            [1.0, float("nan"), True, "2", 1e39],
            [
                {"index": 0, "confidence_id": "A"},
                {"index": 9, "confidence_id": "A"},
                {"index": 0, "confidence_id": "B"},
                {"index": 1, "confidence_id": {"A": -1, "": 2}},
                {"index": 2, "confidence_id": {"A": 0}},
                {"index": 3, "confidence_id": "x" * 129, "extra": 1},
            ],
            response_format_hash="caf\u00e9",
        )
    assert errors(exc) == [
        ("/embedding/1", "must be a number, not nan"),
        ("/embedding/2", "must be a number"),
        ("/embedding/3", "must be a number"),
        ("/embedding/4", "must be within float32's range (-3.4028235e+38 to 3.4028235e+38)"),
        ("/id", "must be a non-empty string"),
        ("/response_format_hash", "must be at most 128 printable ASCII characters (space to ~)"),
        ("/votes/2/index", "member 0 voted already (/votes/0)"),
        ("/votes/3/confidence_id/", "an answer must be a non-empty string"),
        ("/votes/3/confidence_id/A", "must be a probability >= 0"),
        ("/votes/4/confidence_id", "probabilities must sum to a finite number greater than 0"),
        ("/votes/5/confidence_id", "must be at most 128 characters"),
        ("/votes/5/extra", "unknown key"),
    ]
    # what needs the Query Model: a vote for a non-member, an unknown model
    with pytest.raises(ValidationError) as member:
        reg.record_completion("x", MODEL, [1, 0], [{"index": 4, "confidence_id": "A"}])
    assert errors(member) == [
        ("/votes/0/index", f"must be a member index of {MODEL}: 0 to 3"),
    ]
    unknown = "0" * 22
    with pytest.raises(ValidationError) as model:
        reg.record_completion("x", unknown, [1, 0], [{"index": 0, "confidence_id": "A"}])
    assert errors(model) == [("/query_model", f"no Query Model named {unknown} is registered")]
    with pytest.raises(ValidationError) as zero:
        reg.record_completion("x", MODEL, [0, 1e-50], [{"index": 0, "confidence_id": "A"}])
    assert errors(zero) == [("/embedding", "must not be all zero (after rounding to float32)")]
    with pytest.raises(ValidationError) as long:
        reg.record_completion("x", MODEL, [1.0] * 16_385, [{"index": 0, "confidence_id": "A"}])
    assert errors(long) == [("/embedding", "must be an array of 1 to 16,384 numbers")]
    assert count(reg, "completions") == before


def test_a_static_model_records_completions_and_weighs_by_its_own_weights(reg: Reg) -> None:
    stocked(reg)
    static = NAMES["static_model"]
    reg.record_completion("s1", static, [1, 0, 0], [{"index": 1, "confidence_id": "A"}])
    reg.mark("s1", "A")
    assert reg.get_completion("s1")["correct_confidence_id"] == "A"
    assert reg.weights(static, [1, 0, 0]) == VECTORS["queries"][6]["expected"]


# --- marks and who may make them -----------------------------------------------------------------


def test_only_the_recorder_may_mark_what_they_recorded(reg: Reg) -> None:
    stocked(reg, marks=False)
    alice, bob = reg.create_token("alice"), reg.create_token("bob")
    reg.record_completion(
        "hers", MODEL, [1, 0, 0], [{"index": 0, "confidence_id": "A"}], token=alice
    )
    refused: tuple[Callable[[], object], ...] = (
        lambda: reg.mark("hers", "A", token=bob),
        lambda: reg.mark("hers", "A"),
        lambda: reg.unmark("hers", token=bob),
    )
    for call in refused:
        with pytest.raises(AuthorizationError):
            call()
    assert "correct_confidence_id" not in reg.get_completion("hers")
    assert count(reg, "completion_marks") == 0
    reg.mark("hers", "A", token=alice)
    with pytest.raises(AuthorizationError):
        reg.unmark("hers", token=bob)
    assert reg.get_completion("hers")["correct_confidence_id"] == "A"
    # an anonymous completion: anyone may mark it
    reg.mark("c1", "A", token=bob)
    reg.mark("c1", "B")
    assert reg.get_completion("c1")["correct_confidence_id"] == "B"
    with pytest.raises(AuthenticationError):
        reg.mark("c1", "A", token="qllm_not_a_token")


def test_marks_are_checked(reg: Reg) -> None:
    stocked(reg, marks=False)
    with pytest.raises(ValidationError) as exc:
        reg.mark("", "")
    assert errors(exc) == [
        ("/correct_confidence_id", "must be a non-empty string"),
        ("/id", "must be a non-empty string"),
    ]
    assert count(reg, "completion_marks") == 0


def test_unmark_removes_the_row_and_keeps_the_completion(reg: Reg) -> None:
    stocked(reg)
    rows = count(reg, "completion_marks")
    reg.unmark("c4")
    reg.unmark("c4")  # unmarked already: nothing to do
    reg.unmark("c7")  # never marked
    assert count(reg, "completion_marks") == rows - 1
    assert reg.get_completion("c4")["id"] == "c4"


# --- weights: errors ------------------------------------------------------------------------


def test_weights_refuse_bad_input(reg: Reg) -> None:
    stocked(reg)
    with pytest.raises(NotFoundError):
        reg.weights("0" * 22, [1, 0, 0])
    with pytest.raises(ValidationError) as name:
        reg.weights("abc", [1, 0, 0])
    assert errors(name) == [("/name", "must be a Query Model name: 22 base62 characters")]
    with pytest.raises(ValidationError) as embedding:
        reg.weights(MODEL, [0, float("inf"), 0])
    assert errors(embedding) == [("/embedding/1", "must be a number, not inf")]
    with pytest.raises(ValidationError) as zero:
        reg.weights(MODEL, [0, 0, 0], response_format_hash="\n")
    assert errors(zero) == [
        ("/embedding", "must not be all zero (after rounding to float32)"),
        ("/response_format_hash", "must be at most 128 printable ASCII characters (space to ~)"),
    ]


def test_ids_with_a_slash_and_unicode_work_everywhere(reg: Reg) -> None:
    stocked(reg, marks=False)
    for completion in ("run/42", "ü?#%20 x"):
        reg.record_completion(completion, MODEL, [1, 0, 0], [{"index": 0, "confidence_id": "A"}])
        reg.mark(completion, "A")
        assert reg.get_completion(completion)["correct_confidence_id"] == "A"
        reg.unmark(completion)
