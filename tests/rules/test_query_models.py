"""Query Models (QUERY_MODEL.md sections 1-4): vectors, validation rules, names, properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

import registry
from registry._convert import normalized_model
from tests.support.data import ROOT, body

pytestmark = pytest.mark.backends  # each reg test runs on SQLite and PostgreSQL

VECTORS_PATH = ROOT / "tests" / "fixtures" / "query_model_vectors.json"
_VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
_VALID: list[dict[str, Any]] = _VECTORS["valid"]
_INVALID: list[dict[str, Any]] = _VECTORS["invalid"]
_SHARED = ROOT.parent / "shared" / "spec" / "query_model_vectors.json"
TABLE = {"type": "training_table", "embeddings_model": "openai/text-embedding-3-small", "top": 10}


def tt(base: float = 10, low: float = 1, high: float = 20) -> dict[str, Any]:
    return {"type": "training_table", "base_weight": base, "min_weight": low, "max_weight": high}


def labels(cases: list[dict[str, Any]]) -> list[str]:
    return [case["label"] for case in cases]


@pytest.mark.parametrize("case", _VALID, ids=labels(_VALID))
def test_valid_vector(case: dict[str, Any]) -> None:
    """Normalized form, canonical bytes, names and response body, exactly as the vector."""
    model = registry.validate_model(case["body"])
    assert normalized_model(model) == case["normalized"]
    assert model.canonical == case["canonical"].encode()
    assert model.name == case["name"]
    assert model.training_table_name == case["training_table_name"]
    assert registry.dump_model(model) == case["response"]
    assert [m.name for m in model.members] == sorted(m.name for m in model.members)


@pytest.mark.parametrize("case", _VALID, ids=labels(_VALID))
def test_valid_vector_canonical_is_rfc8785_of_member_names(case: dict[str, Any]) -> None:
    names = [m["name"] for m in case["response"]["models"]]
    expected = {"models": names, "weight": case["normalized"]["weight"]}
    assert rfc8785.dumps(expected) == case["canonical"].encode()


@pytest.mark.parametrize("case", _INVALID, ids=labels(_INVALID))
def test_invalid_vector(case: dict[str, Any]) -> None:
    with pytest.raises(registry.ValidationError) as caught:
        registry.validate_model(case["body"])
    assert case["path"] in [path for path, _ in caught.value.errors]


def test_fixture_copy_matches_the_spec() -> None:
    if not _SHARED.is_file():
        pytest.skip(f"{_SHARED} is not present beside this checkout")
    assert json.loads(_SHARED.read_text(encoding="utf-8")) == _VECTORS


# --- rules ---------------------------------------------------------------------------


def errors(raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(registry.ValidationError) as caught:
        registry.validate_model(raw)
    return caught.value.errors


def test_every_problem_at_once_with_request_positions() -> None:
    """Member errors carry the member's position in the request, not in the sorted order."""
    got = errors(
        {
            "models": [body(id="z/z"), body(temperature=9), body(), body(weight=tt())],
            "weight": {"type": "static", "top": 3},
            "extra": 1,
        }
    )
    paths = [path for path, _ in got]
    assert paths == sorted(paths)
    assert set(paths) == {"/extra", "/models/1/temperature", "/models/3/weight/type", "/weight/top"}


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (None, ""),
        ([], ""),
        ({"weight": {"type": "static"}}, "/models"),
        ({"models": [body()]}, "/weight"),
        ({"models": body(), "weight": {"type": "static"}}, "/models"),
        ({"models": [body()] * 129, "weight": {"type": "static"}}, "/models"),
        ({"models": [body()], "weight": {"type": "dynamic"}}, "/weight/type"),
        ({"models": [body()], "weight": {}}, "/weight/type"),
        ({"models": [body()], "weight": "static"}, "/weight"),
        ({"models": [5], "weight": {"type": "static"}}, "/models/0"),
        ({"models": [body(weight=tt())], "weight": {**TABLE, "top": 1001}}, "/weight/top"),
        ({"models": [body(weight=tt())], "weight": {**TABLE, "top": 2.5}}, "/weight/top"),
        ({"models": [body(weight=tt())], "weight": {**TABLE, "top": True}}, "/weight/top"),
        (
            {"models": [body(weight=tt())], "weight": {**TABLE, "embeddings_model": "a b"}},
            "/weight/embeddings_model",
        ),
        (
            {"models": [body()], "weight": {"type": "static", "embeddings_model": "x"}},
            "/weight/embeddings_model",
        ),
        ({"models": [body()], "weight": TABLE}, "/models/0/weight/type"),
    ],
)
def test_rule(raw: Any, path: str) -> None:
    assert path in [p for p, _ in errors(raw)]


def test_limits_are_inclusive() -> None:
    assert (
        len(
            registry.validate_model(
                {"models": [body()] * 128, "weight": {"type": "static"}}
            ).members
        )
        == 128
    )
    for top in (1, 1000, 1000.0):
        model = registry.validate_model(
            {"models": [body(weight=tt())], "weight": {**TABLE, "top": top}}
        )
        assert registry.dump_model(model)["weight"]["top"] == int(top)


def test_one_mib_limit_of_the_normalized_form() -> None:
    """Each member is under its 64 KiB limit; 128 of them together are over 1 MiB."""
    big = body(stop=[f"{i:05d}" + "x" * 9000 for i in range(1)] + ["y" * 9000])
    assert len(registry.validate(big).canonical) < 64 * 1024
    got = errors({"models": [big] * 128, "weight": {"type": "static"}})
    assert got[0][0] == ""
    assert "1 MiB" in got[0][1]
    registry.validate_model({"models": [big] * 50, "weight": {"type": "static"}})


def test_member_over_64_kib_is_its_own_error() -> None:
    huge = body(stop=["x" * 70_000])
    assert errors({"models": [body(), huge], "weight": {"type": "static"}})[0][0] == "/models/1"


def test_member_weights_and_top_stay_out_of_the_training_table_name() -> None:
    one = registry.validate_model({"models": [body(weight=tt())], "weight": TABLE})
    two = registry.validate_model(
        {"models": [body(weight=tt(2, 0, 3))], "weight": {**TABLE, "top": 99}}
    )
    assert one.name != two.name
    assert one.training_table_name == two.training_table_name
    other = registry.validate_model(
        {"models": [body(weight=tt())], "weight": {**TABLE, "embeddings_model": "e/other"}}
    )
    assert other.training_table_name != one.training_table_name


def test_static_model_has_no_training_table_name() -> None:
    model = registry.validate_model({"models": [body()], "weight": {"type": "static"}})
    assert model.training_table_name is None
    dumped = registry.dump_model(model)
    assert "training_table_name" not in dumped
    assert "training_table_index" not in dumped["models"][0]


# --- properties -------------------------------------------------------------------------

_members = st.lists(
    st.builds(
        lambda temperature, model_id, weight: body(
            id=model_id, temperature=temperature, weight={"type": "static", "weight": weight}
        ),
        st.sampled_from([0, 0.5, 1, 1.5, 2]),
        st.sampled_from(["openai/gpt-4o", "a/b", "deepseek/r1"]),
        st.sampled_from([0.5, 1, 3]),
    ),
    min_size=1,
    max_size=8,
)


def static(members: list[dict[str, Any]]) -> dict[str, Any]:
    return {"models": members, "weight": {"type": "static"}}


@settings(max_examples=50, deadline=None)
@given(_members, st.randoms(use_true_random=False))
def test_member_order_never_changes_the_name(members: list[dict[str, Any]], rng: Any) -> None:
    shuffled = list(members)
    rng.shuffle(shuffled)
    assert (
        registry.validate_model(static(members)).name
        == registry.validate_model(static(shuffled)).name
    )


@settings(max_examples=50, deadline=None)
@given(_members, st.booleans())
def test_normalizing_a_normalized_model_changes_nothing(
    members: list[dict[str, Any]], table: bool
) -> None:
    if table:
        raw = {"models": [m | {"weight": tt()} for m in members], "weight": {**TABLE, "top": 10.0}}
    else:
        raw = static(members)
    model = registry.validate_model(raw)
    again = registry.validate_model(normalized_model(model))
    assert normalized_model(again) == normalized_model(model)
    assert again.name == model.name
    assert again.training_table_name == model.training_table_name


@settings(max_examples=50, deadline=None)
@given(_members, st.data())
def test_a_member_change_changes_the_name(members: list[dict[str, Any]], data: Any) -> None:
    index = data.draw(st.integers(0, len(members) - 1))
    changed = list(members)
    changed[index] = changed[index] | {"max_tokens": 7}  # a new member name
    assert registry.validate(changed[index]).name != registry.validate(members[index]).name
    assert (
        registry.validate_model(static(members)).name
        != registry.validate_model(static(changed)).name
    )


@settings(max_examples=50, deadline=None)
@given(_members, st.data())
def test_duplicates_change_the_name(members: list[dict[str, Any]], data: Any) -> None:
    index = data.draw(st.integers(0, len(members) - 1))
    more = [*members, members[index]]
    model, bigger = registry.validate_model(static(members)), registry.validate_model(static(more))
    assert len(bigger.members) == len(model.members) + 1
    assert bigger.name != model.name
