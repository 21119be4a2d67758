"""What tests share as data: the repository root, the spec's vectors, a small valid body,
and the amounts and counters of usage as the spec lists them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The spec's worked examples live beside the repository (../shared/spec); a
# copy is kept in tests/fixtures so a clean clone tests the same vectors.
VECTORS = ROOT / "tests" / "fixtures" / "vectors.json"


# The six amounts of a usage event and the counters of spec 5, as the spec lists them.
AMOUNTS = (
    "chat_completion_tokens",
    "chat_prompt_tokens",
    "chat_cost",
    "embedding_completion_tokens",
    "embedding_prompt_tokens",
    "embedding_cost",
)
COUNTERS = ("requests", *AMOUNTS)
# The counters of a Query LLM with no usage in range.
ZERO_METADATA = dict.fromkeys(COUNTERS, 0)


def load_vectors() -> dict[str, Any]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def body(**changes: Any) -> dict[str, Any]:
    """A small valid Query LLM body, with ``changes`` applied."""
    result: dict[str, Any] = {
        "id": "openai/gpt-4o",
        "mode": "generate",
        "weight": {"type": "static", "weight": 1},
    }
    result.update(changes)
    return result
