"""Shared fixtures: every test gets real SQLite files under its own tmp_path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import registry
from registry.storage import Registry

ROOT = Path(__file__).resolve().parent.parent
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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's registry file lives (not created yet)."""
    return tmp_path / "registry.db"


@pytest.fixture
def reg(db_path: Path) -> Iterator[Registry]:
    """A fresh registry on a real file."""
    with Registry(db_path) as opened:
        yield opened


@pytest.fixture
def llm(reg: Registry) -> registry.QueryLlm:
    """One registered Query LLM."""
    return reg.register(body())


@pytest.fixture
def filled(db_path: Path) -> tuple[Path, str, str]:
    """A closed registry file with a Query LLM, a token and one event: path, name, token."""
    with Registry(db_path) as reg:
        name = reg.register(body()).name
        token = reg.create_token("alice")
        reg.record_usage(name, token=token, request_id="r1", chat_prompt_tokens=7)
    return db_path, name, token


# A real PostgreSQL, per session: the `postgres` and `pg_location` fixtures.
from pg import Postgres, pg_location, postgres, report_header  # noqa: E402, F401


def pytest_report_header() -> str:
    return report_header()
