"""The training-table loop on generated embeddings: record each ensemble call, mark the
right answer later, and watch each member's weight leave its base weight.

Seeded: the same figures on every run. The registry is a temporary file unless a
location is given (``python training.py --db PATH``).

    python examples/training.py
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from registry import Registry

HERE = Path(__file__).resolve().parent
DIMENSIONS = 64
TOPICS = ("math", "poetry")
ANSWERS = ("A", "B", "C", "D")
# How often each member picks the right answer, by topic: the table should find out.
SKILL = {"claude": {"math": 0.4, "poetry": 0.9}, "deepseek": {"math": 0.9, "poetry": 0.3}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="registry location (default: a temporary file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run(args.db or str(Path(folder) / "training.db"))


def run(location: str) -> None:
    rng = np.random.default_rng(2026)
    directions = {topic: rng.standard_normal(DIMENSIONS) for topic in TOPICS}

    def prompt(topic: str) -> list[float]:
        """An embedding of a prompt on ``topic``: its direction, and some noise."""
        vector = directions[topic] + 0.6 * rng.standard_normal(DIMENSIONS)
        return [round(float(x), 6) for x in vector]

    def vote(member: str, topic: str, correct: str) -> str:
        if rng.random() < SKILL[member][topic]:
            return correct
        return str(rng.choice([a for a in ANSWERS if a != correct]))

    with Registry(location) as reg:
        body = json.loads((HERE / "query-models" / "learned-select.json").read_text())
        model = reg.register_model(body)
        members = {m["id"].split("/")[0]: m["index"] for m in reg.get_model(model.name)["models"]}
        claude, deepseek = members["anthropic"], members["deepseek"]
        # 1. Each call of the ensemble: both members voted; the registry keeps the votes
        #    and the prompt's embedding (deepseek's vote is a distribution, from logprobs).
        calls: list[dict[str, Any]] = []
        truth: dict[str, str] = {}
        for i in range(80):
            topic = TOPICS[i % 2]
            correct = str(rng.choice(ANSWERS))
            picked = vote("deepseek", topic, correct)
            calls.append(
                {
                    "id": f"call-{i:03d}",
                    "query_model": model.name,
                    "embedding": prompt(topic),
                    "votes": [
                        {"index": claude, "confidence_id": vote("claude", topic, correct)},
                        {
                            "index": deepseek,
                            "confidence_id": {picked: 0.8, "A" if picked != "A" else "B": 0.2},
                        },
                    ],
                }
            )
            truth[f"call-{i:03d}"] = correct
        written = reg.record_completions(calls)
        print(f"recorded {written} completions of {model.name} (top {body['weight']['top']})")
        # 2. Later, the right answers become known: each mark makes a training row.
        # 3. Before the next call, ask for each member's weight for its prompt.
        questions = {topic: prompt(topic) for topic in TOPICS}
        marked = 0
        for goal in (0, 4, 10, 20, 80):
            for call in calls[marked:goal]:
                reg.mark(call["id"], truth[call["id"]])
            marked = goal
            line = []
            for topic in TOPICS:
                got = reg.weights(model.name, questions[topic])
                weights = {m["index"]: m["weight"] for m in got["models"]}
                line.append(
                    f"{topic}: claude {weights[claude]:5.2f}, deepseek {weights[deepseek]:5.2f}"
                    f" ({got['rows']} rows)"
                )
            print(f"{marked:2d} marked | " + " | ".join(line))
        print("base weights: claude 10, deepseek 5; bounds: claude 1 to 20, deepseek 0.5 to 15")


if __name__ == "__main__":
    main()
