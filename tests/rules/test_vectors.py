"""The spec's worked examples (spec sections 2-4): every case of vectors.json."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785

import registry
from tests.support.data import ROOT, VECTORS, load_vectors

_VECTORS = load_vectors()
_VALID: list[dict[str, Any]] = _VECTORS["valid"]
_INVALID: list[dict[str, Any]] = _VECTORS["invalid"]
# The spec directory sits beside the repository: <parent>/shared/spec/vectors.json.
_SHARED = ROOT.parent / "shared" / "spec" / "vectors.json"


def _labels(cases: list[dict[str, Any]]) -> list[str]:
    return [case["label"] for case in cases]


def test_labels_are_unique() -> None:
    """Every vector has its own label, so a failing test id names exactly one case."""
    labels = _labels(_VALID) + _labels(_INVALID)
    assert len(labels) == len(set(labels))
    assert _VALID
    assert _INVALID


@pytest.mark.parametrize("case", _VALID, ids=_labels(_VALID))
def test_valid_vector(case: dict[str, Any]) -> None:
    """A valid vector normalizes, serializes and is named exactly as the vector says."""
    llm = registry.validate(case["body"])
    dumped = registry.dump(llm)

    assert dumped.pop("name") == case["name"]
    if case["training_table_name"] is None:
        assert "training_table_name" not in dumped
    else:
        assert dumped.pop("training_table_name") == case["training_table_name"]
    assert dumped == case["normalized"]
    assert llm.canonical.decode() == case["canonical"]
    assert llm.name == case["name"]
    assert llm.training_table_name == case["training_table_name"]


@pytest.mark.parametrize("case", _VALID, ids=_labels(_VALID))
def test_valid_vector_is_self_consistent(case: dict[str, Any]) -> None:
    """A vector's canonical text is RFC 8785 of its normalized form, which is a fixed point."""
    assert rfc8785.dumps(case["normalized"]).decode() == case["canonical"]
    assert registry.validate(case["normalized"]).name == case["name"]


@pytest.mark.parametrize("case", _INVALID, ids=_labels(_INVALID))
def test_invalid_vector(case: dict[str, Any]) -> None:
    """An invalid vector is rejected with its one problem reported at exactly the given path."""
    with pytest.raises(registry.ValidationError) as info:
        registry.validate(case["body"])
    paths = {path for path, _ in info.value.errors}
    assert paths == {case["path"]}


def test_fixture_copy_matches_the_spec() -> None:
    """The copy in tests/fixtures is byte-for-byte the spec's vectors.json, when that exists."""
    if not _SHARED.is_file():
        pytest.skip(f"{_SHARED} is not present beside this checkout")
    assert VECTORS.read_bytes() == _SHARED.read_bytes()
