"""Claiming usage recorded without a token (issue 21 item 6): a forgotten token mended, on
SQLite and PostgreSQL, the rollups moved with the events and equal to a rebuild after."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

import registry
from registry.registry import Registry
from tests.support.data import body

pytestmark = pytest.mark.backends

AT = "2026-11-01T10:15:00Z"


def usage(name: str, model: str | None = None) -> list[dict[str, Any]]:
    """Six events over two hours: four with request_ids, one of them timeless, and two
    more with the Query Model, if any."""
    events: list[dict[str, Any]] = [
        {"name": name, "request_id": f"r{i}", "at": f"2026-11-01T1{i % 2}:00:0{i}Z",
         "chat_prompt_tokens": 10 * i, "chat_cost": f"0.{i}"}
        for i in range(1, 5)
    ]  # fmt: skip
    if model is not None:
        events += [
            {
                "name": name,
                "request_id": f"m{i}",
                "at": AT,
                "chat_cost": "1.5",
                "query_model": model,
            }
            for i in range(2)
        ]
    return events


def tables(reg: Registry) -> dict[str, list[tuple[Any, ...]]]:
    """Both rollups, every row, in key order."""
    return {
        table: [tuple(row) for row in reg.db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4")]
        for table in ("usage_hourly", "usage_totals")
    }


def test_a_forgotten_token_is_mended_by_claiming(reg: Registry, llm: registry.QueryLlm) -> None:
    model = reg.register_model({"models": [body()], "weight": {"type": "static"}})
    alice = reg.create_token("alice")
    events = usage(llm.name, model.name)
    assert reg.record_usage_many(events) == 6  # the token was forgotten
    reg.record_usage(llm.name, at=AT, chat_cost="7")  # another anonymous event, not claimed
    everyone = reg.get(llm.name, metadata=True)
    timeless = [
        {k: v for k, v in e.items() if k != "at"} if i == 0 else e for i, e in enumerate(events)
    ]
    assert reg.claim_usage(timeless, token=alice) == 6
    mine = reg.get(llm.name, metadata=True, me=True, token=alice)
    assert (mine["requests"], mine["chat_cost"]) == (6, Decimal("4"))
    assert reg.get(llm.name, metadata=True) == everyone  # the totals of everyone stay
    assert reg.get_model(model.name, metadata=True, me=True, token=alice)["requests"] == 2
    assert reg.list(me=True, token=alice) == [llm.name]
    series = reg.usage_series("2026-11-01", "2026-11-02", group_by=["user_id"])
    assert [(r["user_id"], r["requests"]) for r in series[0]["results"]] == [
        (None, 1),
        ("alice", 6),
    ]
    # The rollups are what a rebuild from the events makes of them.
    moved = tables(reg)
    reg.rebuild_rollups()
    assert tables(reg) == moved
    # Claiming again changes nothing; importing with the token now repeats them exactly.
    assert reg.claim_usage(events, token=alice) == 0
    assert reg.record_usage_many(events, token=alice) == 0
    assert tables(reg) == moved


def test_what_cannot_be_claimed_is_refused_whole(reg: Registry, llm: registry.QueryLlm) -> None:
    alice, bob = reg.create_token("alice"), reg.create_token("bob")
    events = usage(llm.name)
    reg.record_usage_many(events[:2])  # anonymous
    reg.record_usage_many(events[2:3], token=bob)
    before = tables(reg), reg.get(llm.name, metadata=True)
    asked = [
        events[0],
        {**events[1], "chat_cost": "0.9"},  # not what was recorded
        events[2],  # bob's
        events[3],  # never recorded
        {"name": llm.name},  # no request_id
    ]
    with pytest.raises(registry.ValidationError) as caught:
        reg.claim_usage(asked, token=alice)
    assert caught.value.errors == [
        ("/1/request_id", "was recorded with other content (chat_cost): claim the events as"
         " they were imported"),
        ("/2/request_id", "was recorded by 'bob': only events recorded without a token are"
         " claimed"),
        ("/3/request_id", "was never recorded: import the event with the token instead"),
        ("/4/request_id", "is needed to claim an event"),
    ]  # fmt: skip
    assert (tables(reg), reg.get(llm.name, metadata=True)) == before
    with pytest.raises(registry.AuthorizationError):
        reg.claim_usage(events[:1])
    with pytest.raises(registry.AuthenticationError):
        reg.claim_usage(events[:1], token="qllm_nope")
    with pytest.raises(registry.NotFoundError):
        reg.claim_usage([{"name": "0" * 22, "request_id": "r1"}], token=alice)
