"""Write the demo's usage logs: a week of requests by two users, chat and embedding.

Most requests were served for one of the example Query Models (``query-models/``):
those carry ``query_model``, the name of the ensemble the member answered for.

Deterministic (fixed seed), so the committed files can be regenerated exactly:

    python examples/make_usage.py
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import registry

HERE = Path(__file__).parent
START = datetime(2026, 11, 16, tzinfo=UTC)
DAYS = 7
# Credits per million tokens (prompt, completion), in the range of public prices.
PRICES = {
    "openai/gpt-4o": (Decimal("2.5"), Decimal("10")),
    "anthropic/claude-sonnet-4": (Decimal("3"), Decimal("15")),
    "deepseek/deepseek-r1": (Decimal("0.55"), Decimal("2.19")),
    "openai/gpt-4o-mini": (Decimal("0.15"), Decimal("0.6")),
    "meta-llama/llama-3.3-70b-instruct": (Decimal("0.13"), Decimal("0.4")),
}
EMBEDDING_PRICE = Decimal("0.02")  # per million prompt tokens
USERS = {"alice": 1600, "bob": 900}  # events each


def events(
    user: str,
    count: int,
    rng: random.Random,
    models: list[registry.QueryLlm],
    ensembles: dict[str, str],
) -> list[str]:
    lines = []
    # Alice leans on the big models, Bob on the small ones.
    weights = [5, 3, 2, 1, 1] if user == "alice" else [1, 1, 2, 5, 4]
    for _ in range(count):
        llm = rng.choices(models, weights)[0]
        offset = timedelta(seconds=rng.randrange(DAYS * 86_400), microseconds=rng.randrange(10**6))
        at = START + offset
        prompt, completion = rng.randint(200, 6000), rng.randint(20, 1500)
        embedding = rng.choice([0, 0, 0, rng.randint(100, 20_000)])
        per_prompt, per_completion = PRICES[llm.id]
        event = {
            "name": llm.name,
            "at": at.isoformat().replace("+00:00", "Z"),
            "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "chat_prompt_tokens": prompt,
            "chat_completion_tokens": completion,
            "chat_cost": str((prompt * per_prompt + completion * per_completion) / 1_000_000),
        }
        if embedding:
            event["embedding_prompt_tokens"] = embedding
            event["embedding_cost"] = str(embedding * EMBEDDING_PRICE / 1_000_000)
        if rng.random() < 0.7:  # the rest were direct calls of the Query LLM alone
            event["query_model"] = ensembles[llm.name]
        lines.append(json.dumps(event))
    return sorted(lines, key=lambda line: json.loads(line)["at"])


def main() -> None:
    models = [
        registry.validate(json.loads(path.read_text()))
        for path in sorted((HERE / "query-llms").glob("*.json"))
    ]
    models.sort(key=lambda llm: -PRICES[llm.id][1])
    # Each example Query LLM is a member of one example Query Model.
    ensembles = {
        member.name: model.name
        for path in sorted((HERE / "query-models").glob("*.json"))
        for model in [registry.validate_model(json.loads(path.read_text()))]
        for member in model.members
    }
    rng = random.Random(20261125)
    for user, count in USERS.items():
        target = HERE / f"usage-{user}.jsonl"
        target.write_text("\n".join(events(user, count, rng, models, ensembles)) + "\n")
        print(f"wrote {count} events to {target.name}")


if __name__ == "__main__":
    main()
