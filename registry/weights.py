"""Each member's weight from a training table: the match score, a row's scores, and the
weight formula. Pure: the nearest rows come from `registry.nearest`, the rows from a store.

- A vote's match score for the correct answer ``a``: a string vote scores 1 if it is
  ``a``, else 0; a distribution scores ``p[a] / sum(p)`` (0 without ``a``).
- A row (a marked completion) scores each ``training_table_index`` with the mean score
  of the votes of the members that have it; a training_table_index no member of which
  voted has no score in that row (NaN in the arrays here).
- Over the nearest rows, member ``i`` of training_table_index ``t`` has ``rows_i`` rows
  in which ``t`` has a score, ``score_i`` their mean, and the weight
  ``min_weight + (max_weight - min_weight) * score_i``; ``base_weight`` with no row.

Sums are `math.fsum` (exactly rounded): a mean does not depend on the order rows come in,
so every backend and every engine gives the same bits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from attrs import frozen

from registry.model import Completion

SCORES = np.dtype("<f8")  # a row's scores as stored: float64, NaN where no member voted


@frozen
class Member:
    """What the weights need of one member: its training table index (None: static) and
    its weight (``{"type": "static", "weight": w}`` or the training-table bounds)."""

    index: int
    table_index: int | None
    weight: Mapping[str, Any]


@frozen
class Ensemble:
    """A registered Query Model as the weights read it."""

    name: str
    training_table_name: str | None
    top: int  # 0 for a static model
    members: tuple[Member, ...]

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Ensemble:
        """From a Query Model's response body (``index`` and ``training_table_index`` set)."""
        strategy = body["weight"]
        return cls(
            name=body["name"],
            training_table_name=body.get("training_table_name"),
            top=int(strategy.get("top", 0)),
            members=tuple(
                Member(m["index"], m.get("training_table_index"), m["weight"])
                for m in body["models"]
            ),
        )

    @property
    def tables(self) -> int:
        """How many distinct training tables its members have (a row's scores)."""
        return len({m.table_index for m in self.members if m.table_index is not None})

    def vote_problems(self, completion: Completion) -> list[tuple[tuple[str | int, ...], str]]:
        """A completion's votes that name no member of this model: ``(path, message)``."""
        last = len(self.members) - 1
        return [
            (("votes", position, "index"), f"must be a member index of {self.name}: 0 to {last}")
            for position, vote in enumerate(completion.votes)
            if vote.index > last
        ]


def match(confidence: str | Mapping[str, float], correct: str) -> float:
    """The match score of one vote for the correct answer."""
    if isinstance(confidence, str):
        return 1.0 if confidence == correct else 0.0
    return float(confidence.get(correct, 0)) / math.fsum(confidence.values())


def row_scores(
    ensemble: Ensemble, votes: Iterable[Mapping[str, Any]], correct: str
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A marked completion's score per training_table_index (NaN: no member of it voted);
    ``votes`` as stored (``index`` and ``confidence_id``)."""
    by_table: dict[int, list[float]] = {}
    for vote in votes:
        table = ensemble.members[vote["index"]].table_index
        if table is not None:
            by_table.setdefault(table, []).append(match(vote["confidence_id"], correct))
    scores = np.full(ensemble.tables, np.nan, dtype=SCORES)
    for table, found in by_table.items():
        scores[table] = math.fsum(found) / len(found)
    return scores


def static(ensemble: Ensemble) -> dict[str, Any]:
    """The answer for a static model (or any model with no rows): no row read."""
    return answer(ensemble, np.empty((0, ensemble.tables), dtype=SCORES))


def answer(ensemble: Ensemble, scores: np.ndarray[Any, np.dtype[np.float64]]) -> dict[str, Any]:
    """Each member's weight from the scores of the nearest rows (one row per row read, one
    column per training_table_index): the weights response."""
    members = []
    for member in ensemble.members:
        weight = member.weight
        if member.table_index is None:
            members.append(
                {"index": member.index, "weight": float(weight["weight"]), "rows": 0, "score": None}
            )
            continue
        column = scores[:, member.table_index]
        found = column[~np.isnan(column)]
        members.append(_weighed(member, found.tolist()))
    return {"query_model": ensemble.name, "rows": int(scores.shape[0]), "models": members}


def summed(member: Member, total: float, rows: int) -> dict[str, Any]:
    """A member's weight from the exact sum and the count of its scores."""
    weight = member.weight
    if rows == 0:
        return {
            "index": member.index,
            "weight": float(weight["base_weight"]),
            "rows": 0,
            "score": None,
        }
    score = total / rows
    low, high = weight["min_weight"], weight["max_weight"]
    return {
        "index": member.index,
        "weight": float(low + (high - low) * score),
        "rows": rows,
        "score": score,
    }


def _weighed(member: Member, found: Sequence[float]) -> dict[str, Any]:
    return summed(member, math.fsum(found), len(found))


def overall(ensemble: Ensemble, rows: Sequence[bytes]) -> dict[str, Any]:
    """Each member's weight over ``rows`` (every row's stored scores) taken together: the
    table as a whole, by the same formula."""
    joined = np.frombuffer(b"".join(rows), dtype=SCORES)
    return answer(ensemble, joined.reshape(len(rows), ensemble.tables))
