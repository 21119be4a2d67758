"""The weights against a brute-force computation: random training tables, marks, re-marks
and unmarks, through a real registry file (its store, the in-memory tables and their
catching up), and the exact search alone against a sort of every row."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import nearest
from registry.completions import FLOAT32
from registry.registry import Registry
from tests.support.data import body

ANSWERS = ("A", "B", "C")
FORMATS = ("", "f2")
# Members: two share a training table (they differ only in their weights), two have their own.
SHARED = {"id": "openai/gpt-4o", "mode": "select_thinking"}
OWN = [
    {"id": "anthropic/claude-sonnet-4", "mode": "select_thinking"},
    {"id": "deepseek/deepseek-r1", "mode": "generate"},
]


def bounds() -> st.SearchStrategy[dict[str, Any]]:
    def made(values: list[float]) -> dict[str, Any]:
        low, base, high = sorted(values)
        return {
            "type": "training_table",
            "min_weight": low,
            "base_weight": base,
            "max_weight": high + 0.5,
        }

    return st.lists(st.sampled_from([0, 0.25, 0.5, 1, 2, 3]), min_size=3, max_size=3).map(made)


def confidence() -> st.SearchStrategy[Any]:
    distribution = st.dictionaries(
        st.sampled_from(ANSWERS), st.integers(0, 3), min_size=1, max_size=3
    ).filter(lambda d: sum(d.values()) > 0)
    return st.sampled_from(ANSWERS) | distribution


# Few distinct directions, doubled and tripled: many exact ties (broken by id) and near ones.
BASES = [(1, 0, 0), (1, 1, 0), (0, 1, 0), (2, 1, -1), (-1, 0, 1), (1, 1, 1, 1), (0, 0, 1, 2)]
vectors = st.tuples(st.sampled_from(BASES), st.sampled_from([1, 2, 3])).map(
    lambda pair: [v * pair[1] for v in pair[0]]
)
ids = st.text(alphabet="abAB_9", min_size=1, max_size=3)


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    weights = [draw(bounds()) for _ in range(4)]
    top = draw(st.integers(1, 5))
    rows = draw(st.lists(ids, min_size=1, max_size=12, unique=True))
    completions = [
        {
            "id": row,
            "embedding": draw(vectors),
            "response_format_hash": draw(st.sampled_from(FORMATS)),
            "votes": [
                {"index": index, "confidence_id": draw(confidence())}
                for index in sorted(draw(st.sets(st.integers(0, 3), min_size=1)))
            ],
        }
        for row in rows
    ]
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("mark"), st.sampled_from(rows), st.sampled_from(ANSWERS)),
                st.tuples(st.just("unmark"), st.sampled_from(rows)),
                st.tuples(st.just("query"), vectors, st.sampled_from(FORMATS)),
            ),
            min_size=1,
            max_size=25,
        )
    )
    return {"weights": weights, "top": top, "completions": completions, "steps": steps}


def cosine(a: list[int], q: list[int]) -> float:
    """The similarity as the registry defines it: float64 from the float32 values (exact
    here: small integers), dot over the product of the norms."""
    dot = float(sum(x * y for x, y in zip(a, q, strict=True)))
    return dot / (math.sqrt(float(sum(x * x for x in a))) * math.sqrt(float(sum(y * y for y in q))))


def match(vote: Any, correct: str) -> float:
    if isinstance(vote, str):
        return 1.0 if vote == correct else 0.0
    return float(vote.get(correct, 0)) / math.fsum(vote.values())


def brute_force(
    model: dict[str, Any],
    completions: dict[str, Any],
    marks: dict[str, str],
    query: list[int],
    fmt: str,
) -> dict[str, Any]:
    members = model["models"]
    candidates = [
        c
        for c in completions.values()
        if c["id"] in marks
        and c["response_format_hash"] == fmt
        and len(c["embedding"]) == len(query)
    ]
    candidates.sort(key=lambda c: (-cosine(c["embedding"], query), c["id"]))
    chosen = candidates[: model["weight"]["top"]]
    answer = []
    for member in members:
        table = member["training_table_index"]
        scores = []
        for row in chosen:
            mine = [
                match(v["confidence_id"], marks[row["id"]])
                for v in row["votes"]
                if members[v["index"]]["training_table_index"] == table
            ]
            if mine:
                scores.append(math.fsum(mine) / len(mine))
        weight = member["weight"]
        if scores:
            score = math.fsum(scores) / len(scores)
            value = weight["min_weight"] + (weight["max_weight"] - weight["min_weight"]) * score
            answer.append(
                {
                    "index": member["index"],
                    "weight": float(value),
                    "rows": len(scores),
                    "score": score,
                }
            )
        else:
            answer.append(
                {
                    "index": member["index"],
                    "weight": float(weight["base_weight"]),
                    "rows": 0,
                    "score": None,
                }
            )
    return {"query_model": model["name"], "rows": len(chosen), "models": answer}


@settings(max_examples=60, deadline=None)
@given(scenario())
def test_weights_equal_a_brute_force_computation(case: dict[str, Any]) -> None:
    shared, own = case["weights"][:2], case["weights"][2:]
    bodies = [body(**SHARED, weight=w) for w in shared] + [
        body(**m, weight=w) for m, w in zip(OWN, own, strict=True)
    ]
    strategy = {"type": "training_table", "embeddings_model": "e/m", "top": case["top"]}
    with tempfile.TemporaryDirectory() as folder, Registry(Path(folder) / "r.db") as reg:
        name = reg.register_model({"models": bodies, "weight": strategy}).name
        model = reg.get_model(name)
        assert len({m["training_table_index"] for m in model["models"]}) == 3
        completions = {c["id"]: c for c in case["completions"]}
        assert reg.record_completions([{**c, "query_model": name} for c in completions.values()])
        marks: dict[str, str] = {}
        for step in case["steps"]:
            if step[0] == "mark":
                reg.mark(step[1], step[2])
                marks[step[1]] = step[2]
            elif step[0] == "unmark":
                reg.unmark(step[1])
                marks.pop(step[1], None)
            else:
                got = reg.weights(name, step[1], step[2])
                assert got == brute_force(model, completions, marks, step[1], step[2])


# --- the search alone, on tables large enough for the float32 product to matter ----------------


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    dimensions=st.sampled_from([1, 2, 7, 64]),
    top=st.integers(1, 120),
    duplicates=st.integers(0, 400),
)
def test_the_search_is_the_exact_sort_of_every_row(
    seed: int, n: int, dimensions: int, top: int, duplicates: int
) -> None:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((n, dimensions)).astype(FLOAT32)
    # copies of a few rows, scaled by powers of two (exactly the same similarity), some tiny
    # or huge (norms the float32 product cannot be trusted with)
    original = matrix.copy()
    for _ in range(duplicates):
        source, target = rng.integers(0, n, size=2)
        if rng.integers(0, 2):
            matrix[target] = original[source] * FLOAT32.type(2.0 ** int(rng.integers(-64, 65)))
        else:  # a near tie: one number a float32 step away, below what a float32 sum resolves
            matrix[target] = original[source]
            k = int(rng.integers(0, dimensions))
            matrix[target, k] = np.nextafter(matrix[target, k], FLOAT32.type(np.inf))
    query = rng.standard_normal(dimensions).astype(FLOAT32)
    if rng.integers(0, 2):
        query = matrix[int(rng.integers(0, n))].copy()
    row_ids = [f"{rng.integers(0, 10**6):06d}-{i}" for i in range(n)]
    table = nearest.Table.load(
        dimensions,
        1,
        n,
        ((row_ids[i], matrix[i].tobytes(), np.zeros(1).tobytes(), 1) for i in range(n)),
        1,
        0,
    )
    found = [row_ids[i] for i in table.search(table.view, query.tobytes(), top)]
    q = query.astype(np.float64)
    exact = []
    for i in range(n):
        a = matrix[i].astype(np.float64)
        similarity = math.fsum(a * q) / (math.sqrt(math.fsum(a * a)) * math.sqrt(math.fsum(q * q)))
        exact.append((-similarity, row_ids[i]))
    expected = [row_id for _, row_id in sorted(exact)[:top]]
    assert set(found) == set(expected)


def test_the_nearest_rows_of_the_worked_example() -> None:
    from tests.behaviour.test_training import VECTORS

    rows = [c for c in VECTORS["completions"] if c["mark"] is not None]
    for query in [*VECTORS["queries"], VECTORS["after"]["query"]]:
        expected = (
            VECTORS["after"]["nearest"] if query is VECTORS["after"]["query"] else query["nearest"]
        )
        if query["query_model"] == VECTORS["names"]["static_model"]:
            continue
        marks = dict(VECTORS["after"]["mark"]) if query is VECTORS["after"]["query"] else {}
        kept = [
            r
            for r in rows
            if r["record"]["response_format_hash"] == query["response_format_hash"]
            and len(r["record"]["embedding"]) == len(query["embedding"])
            and not (
                query is VECTORS["after"]["query"]
                and r["record"]["id"] in VECTORS["after"]["unmark"]
            )
        ]
        del marks
        top = 2 if query["query_model"] == VECTORS["names"]["sibling_model"] else 3
        if not kept:
            assert expected == []
            continue
        table = nearest.Table.load(
            len(query["embedding"]),
            1,
            len(kept),
            (
                (
                    r["record"]["id"],
                    np.asarray(r["record"]["embedding"], dtype=FLOAT32).tobytes(),
                    np.zeros(1).tobytes(),
                    1,
                )
                for r in kept
            ),
            1,
            0,
        )
        vector = np.asarray(query["embedding"], dtype=FLOAT32).tobytes()
        assert [table.ids[i] for i in table.search(table.view, vector, top)] == expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_near_ties_below_float32_precision_are_ranked_exactly(seed: int) -> None:
    """2,000 copies of one embedding, each nudged by a float32 step or two: the float32
    product cannot order them, the search must (its band recomputes them in float64)."""
    rng = np.random.default_rng(seed)
    dimensions, n, top = 256, 2000, 10
    base = rng.standard_normal(dimensions).astype(FLOAT32)
    matrix = np.repeat(base[None, :], n, axis=0)
    for i in range(n):
        for k in rng.integers(0, dimensions, size=3):
            direction = FLOAT32.type(np.inf if rng.integers(0, 2) else -np.inf)
            matrix[i, k] = np.nextafter(matrix[i, k], direction)
    query = (base + rng.standard_normal(dimensions).astype(FLOAT32) * FLOAT32.type(0.01)).astype(
        FLOAT32
    )
    row_ids = [f"r{i:05d}" for i in range(n)]
    table = nearest.Table.load(
        dimensions,
        1,
        n,
        ((row_ids[i], matrix[i].tobytes(), np.zeros(1).tobytes(), 1) for i in range(n)),
        1,
        0,
    )
    q = query.astype(np.float64)
    norms = nearest.norms_of(matrix)
    exact = nearest.cosines(matrix, norms, q, float(np.sqrt((q * q).sum())))
    expected = sorted(range(n), key=lambda i: (-exact[i], row_ids[i]))[:top]
    assert list(table.search(table.view, query.tobytes(), top)) == expected
