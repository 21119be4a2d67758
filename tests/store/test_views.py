"""The views that tools such as Datasette read: exact costs beside the floats, and spend per
day, user, Query LLM and Query Model (``usage_daily``), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.registry import Registry
from tests.support.data import body

pytestmark = pytest.mark.backends

STATIC = {"type": "static"}
IDS = itertools.count()


def fill(reg: Registry) -> tuple[list[str], str]:
    """Two Query LLMs, a Query Model of both, two users and anonymous usage over three days."""
    names = [reg.register(body()).name, reg.register(body(id="meta/llama")).name]
    model = reg.register_model({"models": [body(), body(id="meta/llama")], "weight": STATIC}).name
    tokens = [reg.create_token("alice"), reg.create_token("bob"), None]
    for day in range(1, 4):
        for hour in (0, 9, 23):
            for i, token in enumerate(tokens):
                reg.record_usage(
                    names[(day + hour + i) % 2],
                    token=token,
                    at=f"2026-11-0{day}T{hour:02d}:{i * 7:02d}:00Z",
                    chat_prompt_tokens=day * 10 + i,
                    chat_completion_tokens=hour,
                    embedding_prompt_tokens=i,
                    chat_cost=f"0.{day}{hour:02d}{i}000000123",  # 12 places: rounded exactly
                    embedding_cost="0.000000001" if i else 0,
                    query_model=model if hour == 9 else None,
                )
    return names, model


def daily(reg: Registry) -> dict[tuple[Any, ...], dict[str, Any]]:
    cursor = reg.db.execute(
        "SELECT day, user_id, name, model, mode, query_model, requests, prompt_tokens,"
        " completion_tokens, tokens, cost_nano, cost_exact FROM usage_daily"
    )
    rows = {}
    for row in cursor.fetchall():
        key = (row[0], row[1], row[2], row[5])
        fields = ("model", "mode", "requests", "prompt_tokens", "completion_tokens", "tokens")
        rows[key] = dict(zip((*fields, "cost_nano", "cost_exact"), row[3:5] + row[6:], strict=True))
    return rows


def test_usage_daily_is_the_library_s_daily_series(reg: Registry) -> None:
    """Every (day, user, Query LLM, Query Model) of the view equals the library's daily
    series for that group: requests, tokens, and the cost exactly, as integer and text."""
    fill(reg)
    series = reg.usage_series(
        "2026-11-01", "2026-11-04", bucket="day", group_by=["name", "user_id", "query_model"]
    )
    expected = {}
    for bucket in series:
        for row in bucket["results"]:
            cost = row["chat_cost"] + row["embedding_cost"]
            expected[bucket["start"][:10], row["user_id"], row["name"], row["query_model"]] = (
                row["requests"],
                row["chat_prompt_tokens"] + row["embedding_prompt_tokens"],
                row["chat_completion_tokens"] + row["embedding_completion_tokens"],
                cost,
            )
    found = daily(reg)
    assert set(found) == set(expected)
    for key, (requests, prompt, completion, cost) in expected.items():
        row = found[key]
        assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (
            requests,
            prompt,
            completion,
        )
        assert row["tokens"] == prompt + completion
        assert Decimal(row["cost_nano"]) / 10**9 == cost
        assert Decimal(row["cost_exact"]) == cost
        assert row["model"] in ("openai/gpt-4o", "meta/llama")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(nano=st.integers(0, 10**15) | st.sampled_from([0, 1, 10**9, 10**9 - 1, 125 * 10**5]))
def test_cost_exact_is_the_decimal_text_of_the_nano_credits(reg: Registry, nano: int) -> None:
    """The view's decimal text of any number of nano-credits reads back as exactly that many,
    without trailing zeros (0.0125, 12, 0)."""
    name = reg.register(body(id=f"m/{next(IDS)}")).name
    reg.db.execute(
        "INSERT INTO usage_hourly (name, hour, user_id, query_model, requests,"
        " chat_completion_tokens, chat_prompt_tokens, chat_cost, embedding_completion_tokens,"
        " embedding_prompt_tokens, embedding_cost) VALUES (?, 0, '', '', 1, 0, 0, ?, 0, 0, 0)",
        [name, nano],
    )
    (exact,) = reg.db.execute(
        "SELECT cost_exact FROM usage_daily WHERE name = ?", [name]
    ).fetchone()
    assert Decimal(exact) * 10**9 == nano
    if "." in exact:
        assert not exact.endswith(("0", "."))


def test_stats_views_carry_exact_nano_credits(reg: Registry) -> None:
    names, model = fill(reg)
    for view, key, getter in (
        ("query_llm_stats", names[0], reg.get),
        ("query_model_stats", model, reg.get_model),
    ):
        (chat, embedding) = reg.db.execute(
            f"SELECT chat_cost_nano, embedding_cost_nano FROM {view} WHERE name = ?", [key]
        ).fetchone()
        totals = getter(key, metadata=True)
        assert Decimal(chat) / 10**9 == totals["chat_cost"]
        assert Decimal(embedding) / 10**9 == totals["embedding_cost"]
    (events,) = reg.db.execute("SELECT SUM(chat_cost_nano) FROM usage_events_rfc3339").fetchone()
    all_time = sum(reg.get(n, metadata=True)["chat_cost"] for n in names)
    assert Decimal(events) / 10**9 == all_time
