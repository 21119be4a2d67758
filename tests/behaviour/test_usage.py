"""Recording usage events (spec 6): validation, exact costs, idempotency and batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import registry
from registry import times
from registry.model import MAX_CREDITS_PER_EVENT, MAX_TOKENS_PER_EVENT
from registry.registry import Registry
from tests.support.behaviour import Reg
from tests.support.data import AMOUNTS, COUNTERS, body

pytestmark = pytest.mark.surfaces  # each reg test runs on the library and over HTTP

AT = "2026-11-01T10:20:30.123456Z"
AT_MICROS = times.micros(datetime(2026, 11, 1, 10, 20, 30, 123456, tzinfo=UTC))


def rows(reg: Reg) -> tuple[int, int, int]:
    """How many rows usage_events and the two rollups, usage_hourly and usage_totals, hold."""
    events, hourly, totals = (
        int(reg.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        for table in ("usage_events", "usage_hourly", "usage_totals")
    )
    return events, hourly, totals


def stored(reg: Reg) -> list[tuple[Any, ...]]:
    """Every usage_events row, without its id, in insertion order."""
    rows: list[tuple[Any, ...]] = reg.db.execute(
        "SELECT name, user_id, at, request_id, chat_completion_tokens, chat_prompt_tokens,"
        " chat_cost, embedding_completion_tokens, embedding_prompt_tokens, embedding_cost"
        " FROM usage_events ORDER BY id"
    ).fetchall()
    return rows


def totals(reg: Reg, name: str) -> dict[str, Any]:
    """The usage counters of ``name``, over all time."""
    got = reg.get(name, metadata=True)
    return {key: got[key] for key in COUNTERS}


def zeros() -> dict[str, Any]:
    """All counters zero."""
    return dict.fromkeys(COUNTERS, 0)


def fix_clock(monkeypatch: pytest.MonkeyPatch, micros: int) -> None:
    """Make the registry's clock read ``micros``."""
    monkeypatch.setattr(times, "now", lambda: micros)


@pytest.fixture
def other(reg: Reg) -> registry.QueryLlm:
    """A second registered Query LLM."""
    return reg.register(body(id="other/model"))


# --- one event ------------------------------------------------------------------------------


def test_record_usage_stores_one_row(reg: Reg, llm: registry.QueryLlm) -> None:
    """One event becomes one usage_events row: tokens as given, costs in nano-credits."""
    written = reg.record_usage(
        llm.name,
        at=AT,
        request_id="req-1",
        chat_prompt_tokens=1,
        chat_completion_tokens=2,
        chat_cost="0.000000003",
        embedding_prompt_tokens=4,
        embedding_completion_tokens=5,
        embedding_cost="6",
    )
    assert written == 1
    assert stored(reg) == [(llm.name, None, AT_MICROS, "req-1", 2, 1, 3, 5, 4, 6_000_000_000)]
    hour = AT_MICROS - AT_MICROS % 3_600_000_000
    assert reg.db.execute("SELECT * FROM usage_hourly").fetchall() == [
        (llm.name, hour, "", "", 1, 2, 1, 3, 5, 4, 6_000_000_000)
    ]
    assert reg.db.execute("SELECT * FROM usage_totals").fetchall() == [
        (llm.name, "", "", 1, 2, 1, 3, 5, 4, 6_000_000_000)
    ]


def test_record_usage_by_position(reg: Reg, llm: registry.QueryLlm) -> None:
    """record_usage takes its arguments by position in the order of spec section 10."""
    token = reg.create_token("alice")
    assert reg.record_usage(llm.name, token, AT, "r1", 1, 2, "0.3", 4, 5, "0.6") == 1
    assert stored(reg) == [
        (llm.name, "alice", AT_MICROS, "r1", 2, 1, 300_000_000, 5, 4, 600_000_000)
    ]


@pytest.mark.library_only("sets the library's clock, which a server process does not share")
def test_at_defaults_to_now(
    reg: Reg, llm: registry.QueryLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event without ``at`` is stamped with the time it is recorded."""
    fix_clock(monkeypatch, AT_MICROS)
    reg.record_usage(llm.name)
    reg.record_usage_many([{"name": llm.name}, {"name": llm.name, "at": None}])
    assert [row[2] for row in stored(reg)] == [AT_MICROS] * 3


def test_at_with_offset_is_stored_in_utc(reg: Reg, llm: registry.QueryLlm) -> None:
    """``at`` with an offset, or as an aware datetime, is converted to UTC."""
    reg.record_usage(llm.name, at="2026-11-01T11:20:30.123456+01:00")
    reg.record_usage(
        llm.name, at=datetime(2026, 11, 1, 5, 20, 30, 123456, tzinfo=timezone(timedelta(hours=-5)))
    )
    reg.record_usage(llm.name, at="2026-11-01")
    midnight = times.micros(datetime(2026, 11, 1, tzinfo=UTC))
    assert [row[2] for row in stored(reg)] == [AT_MICROS, AT_MICROS, midnight]


def test_event_with_token_belongs_to_its_user(reg: Reg, llm: registry.QueryLlm) -> None:
    """With a token, the event's user is the token's user, in the events and the rollups."""
    token = reg.create_token("alice")
    reg.record_usage(llm.name, token=token, at=AT)
    reg.record_usage(llm.name, at=AT)
    assert [row[1] for row in stored(reg)] == ["alice", None]
    for table in ("usage_hourly", "usage_totals"):
        assert sorted(reg.db.execute(f"SELECT user_id, requests FROM {table}").fetchall()) == [
            ("", 1),
            ("alice", 1),
        ]


def test_amounts_default_to_zero(reg: Reg, llm: registry.QueryLlm) -> None:
    """An event with only a name counts one request and adds nothing else."""
    assert reg.record_usage_many([{"name": llm.name}]) == 1
    assert totals(reg, llm.name) == {**zeros(), "requests": 1}


def test_none_amounts_mean_zero(reg: Reg, llm: registry.QueryLlm) -> None:
    """``null`` for an amount means the same as leaving it out."""
    assert reg.record_usage_many([{"name": llm.name, **dict.fromkeys(AMOUNTS)}]) == 1
    assert totals(reg, llm.name) == {**zeros(), "requests": 1}


def test_integral_float_tokens_are_integers(reg: Reg, llm: registry.QueryLlm) -> None:
    """Token counts given as integral floats (``2.0``) are read as integers."""
    reg.record_usage(llm.name, chat_prompt_tokens=2.0)  # type: ignore[arg-type]
    assert stored(reg)[0][5] == 2
    assert type(totals(reg, llm.name)["chat_prompt_tokens"]) is int


def test_largest_amounts_are_accepted(reg: Reg, llm: registry.QueryLlm) -> None:
    """The largest token count and cost an event may carry are accepted exactly."""
    reg.record_usage(
        llm.name,
        chat_prompt_tokens=MAX_TOKENS_PER_EVENT,
        embedding_cost=MAX_CREDITS_PER_EVENT,
    )
    got = totals(reg, llm.name)
    assert got["chat_prompt_tokens"] == 10**12
    assert got["embedding_cost"] == Decimal(10**6)


# --- validation: nothing written ------------------------------------------------------------

BAD_TOKENS = [-1, True, False, 1.5, float("nan"), float("inf"), "3", [], {}, 10**12 + 1, 2**63]
BAD_COSTS = [
    -1,
    "-0.1",
    -0.1,
    True,
    float("nan"),
    float("inf"),
    "NaN",
    "Infinity",
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("-1"),
    "abc",
    "",
    "0x10",
    "1_000",
    " 1",
    "1e7",
    1e16,
    10**6 + 1,
    "1000000.000000001",
    [],
]


TOKEN_FIELDS = ("chat_prompt_tokens", "embedding_completion_tokens")
BAD_AMOUNTS = [
    *((field, value) for field in TOKEN_FIELDS for value in BAD_TOKENS),
    *((field, value) for field in ("chat_cost", "embedding_cost") for value in BAD_COSTS),
]


@pytest.mark.parametrize(("field", "value"), BAD_AMOUNTS, ids=repr)
def test_bad_amount_writes_nothing(
    reg: Reg, llm: registry.QueryLlm, field: str, value: Any
) -> None:
    """A negative, boolean, fractional, NaN, infinite, malformed or too large amount is refused."""
    reg.record_usage(llm.name, at=AT)
    before = rows(reg)
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage(llm.name, **{field: value})
    assert [path for path, _ in caught.value.errors] == [f"/{field}"]
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage_many([{"name": llm.name}, {"name": llm.name, field: value}])
    assert [path for path, _ in caught.value.errors] == [f"/1/{field}"]
    assert rows(reg) == before


def test_tiny_negative_cost_is_refused(reg: Reg, llm: registry.QueryLlm) -> None:
    """A negative cost is refused even when it rounds to zero nano-credits."""
    with pytest.raises(registry.ValidationError):
        reg.record_usage(llm.name, chat_cost="-0.0000000001")


def test_sums_past_64_bits_are_refused(reg: Reg, llm: registry.QueryLlm) -> None:
    """A batch that would take a total beyond 2**63 nano-credits is refused and writes nothing."""
    events = [{"name": llm.name, "at": AT, "chat_cost": MAX_CREDITS_PER_EVENT}] * 9300
    before = rows(reg)
    with pytest.raises(registry.ValidationError, match="2\\*\\*63"):
        reg.record_usage_many(events)
    assert rows(reg) == before
    reg.record_usage_many(events[:9000])  # just under the limit: exact
    assert totals(reg, llm.name)["chat_cost"] == Decimal(9000 * MAX_CREDITS_PER_EVENT)


@pytest.mark.parametrize(
    ("event", "errors"),
    [
        (
            {"name": "N", "chat_tokens": 1},
            [("/0/chat_tokens", "unknown key (did you mean 'chat_prompt_tokens'?)")],
        ),
        ({"name": "N", "user_id": "x"}, [("/0/user_id", "unknown key")]),
        ({}, [("/0/name", "is required")]),
        ({"name": "short"}, [("/0/name", "must be a Query LLM name: 22 base62 characters")]),
        ({"name": None}, [("/0/name", "is required")]),
        ("not an object", [("/0", "must be an object")]),
        (["N"], [("/0", "must be an object")]),
        ({"name": "N", "request_id": ""}, None),
        ({"name": "N", "request_id": "x" * 257}, None),
        ({"name": "N", "request_id": 5}, None),
        ({"name": "N", "at": "2026-11-01T10:00:00"}, None),
        ({"name": "N", "at": "1969-12-31T23:59:59Z"}, None),
        ({"name": "N", "at": "10000-01-01T00:00:00Z"}, None),
        ({"name": "N", "at": "yesterday"}, None),
        ({"name": "N", "at": 1700000000}, None),
        ({"name": "N", "at": datetime(2026, 11, 1)}, None),  # noqa: DTZ001 - naive on purpose
    ],
    ids=repr,
)
def test_bad_event_shapes_write_nothing(
    reg: Reg, llm: registry.QueryLlm, event: Any, errors: list[tuple[str, str]] | None
) -> None:
    """Unknown keys, a missing or malformed name, bad request ids and bad times are refused."""
    if isinstance(event, dict) and event.get("name") == "N":
        event = {**event, "name": llm.name}
    before = rows(reg)
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage_many([event])
    if errors is None:  # only the field is pinned: the message is free text
        (key,) = set(event) - {"name"}
        assert [path for path, _ in caught.value.errors] == [f"/0/{key}"]
    else:
        assert caught.value.errors == errors
    assert rows(reg) == before


def test_every_problem_of_an_event_is_reported(reg: Reg, llm: registry.QueryLlm) -> None:
    """An event with several bad fields reports each of them, with its path."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage_many(
            [{"name": llm.name, "chat_cost": -1, "chat_prompt_tokens": 1.5, "at": "no", "x": 1}]
        )
    assert sorted(path for path, _ in caught.value.errors) == [
        "/0/at",
        "/0/chat_cost",
        "/0/chat_prompt_tokens",
        "/0/x",
    ]
    assert rows(reg) == (0, 0, 0)


# --- costs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cost", [0.1, "0.1", Decimal("0.1")], ids=repr)
def test_ten_tenths_are_exactly_one(reg: Reg, llm: registry.QueryLlm, cost: Any) -> None:
    """Ten events of cost 0.1 (float, str or Decimal) total exactly Decimal('1')."""
    for _ in range(10):
        reg.record_usage(llm.name, chat_cost=cost, embedding_cost=cost)
    got = totals(reg, llm.name)
    assert got["chat_cost"] == Decimal("1")
    assert got["embedding_cost"] == Decimal("1")
    assert str(got["chat_cost"]) == "1"
    assert got["requests"] == 10


def test_ten_tenths_in_one_batch_are_exactly_one(reg: Reg, llm: registry.QueryLlm) -> None:
    """Ten events of cost 0.1 recorded as one batch also total exactly 1."""
    assert reg.record_usage_many([{"name": llm.name, "chat_cost": 0.1}] * 10) == 10
    assert totals(reg, llm.name)["chat_cost"] == Decimal("1")


@pytest.mark.parametrize(
    ("cost", "nano"),
    [
        ("0.0000000025", 2),
        ("0.0000000035", 4),
        ("0.0000000015", 2),
        ("0.00000000250000001", 3),
        ("0.0000000004999", 0),
        ("0.0000000005", 0),
        ("1.0000000005", 1_000_000_000),
        ("1.0000000015", 1_000_000_002),
        (Decimal("0.0000000025"), 2),
        (Decimal("0.0000000035"), 4),
        ("1e-9", 1),
        ("2.5E-9", 2),
        ("0.000000001", 1),
        ("123.456789012", 123_456_789_012),
        ("7", 7_000_000_000),
        ("7.", 7_000_000_000),
        (".5", 500_000_000),
        ("+0.5", 500_000_000),
        ("0", 0),
        (0, 0),
        (3, 3_000_000_000),
        (0.1, 100_000_000),
        (0.30000000000000004, 300_000_000),
        (1e-9, 1),
        (2.5e-9, 2),
        (1e-10, 0),
        (1e6, 10**15),
    ],
    ids=repr,
)
def test_costs_are_nano_credits_rounded_half_even(
    reg: Reg, llm: registry.QueryLlm, cost: Any, nano: int
) -> None:
    """A cost is kept as integer nano-credits, rounded half-even past 9 places."""
    reg.record_usage(llm.name, chat_cost=cost)
    assert stored(reg)[0][6] == nano
    assert totals(reg, llm.name)["chat_cost"] == Decimal(nano) / 10**9


def test_cost_sums_are_exact_decimals(reg: Reg, llm: registry.QueryLlm) -> None:
    """Sums of many small costs are exact: no float error creeps in."""
    costs = ["0.000000001", "0.1", "0.2", "0.3", "1234.567890123", "0.000000009"]
    reg.record_usage_many([{"name": llm.name, "embedding_cost": c} for c in costs * 7])
    expected = sum((Decimal(c) for c in costs), Decimal(0)) * 7
    got = totals(reg, llm.name)["embedding_cost"]
    assert got == expected == Decimal("8646.175230931")


# --- unknown Query LLM ------------------------------------------------------------------------


def test_unknown_query_llm_writes_nothing(reg: Reg, llm: registry.QueryLlm) -> None:
    """An event for a name that is not registered is a NotFoundError and nothing is written."""
    reg.record_usage(llm.name, at=AT)
    before = rows(reg)
    missing = registry.validate(body(id="never/registered")).name
    with pytest.raises(registry.NotFoundError) as caught:
        reg.record_usage(missing)
    assert caught.value.name == missing
    assert caught.value.index is None
    with pytest.raises(registry.NotFoundError) as caught:
        reg.record_usage_many([{"name": llm.name}, {"name": llm.name}, {"name": missing}])
    assert caught.value.name == missing
    assert caught.value.index == 2
    assert str(caught.value) == f"event 2: no Query LLM named {missing}"
    assert rows(reg) == before


def test_name_registered_through_another_registry_is_found(location: str, reg: Reg) -> None:
    """A name registered by another connection after this one looked it up is then accepted."""
    missing = registry.validate(body(id="later/model")).name
    with pytest.raises(registry.NotFoundError):
        reg.record_usage(missing)
    with Registry(location) as second:
        second.register(body(id="later/model"))
    assert reg.record_usage(missing) == 1


# --- idempotency ------------------------------------------------------------------------------


def test_same_request_again_is_a_no_op(reg: Reg, llm: registry.QueryLlm) -> None:
    """The same request_id with the same content again returns 0 and changes no sum."""
    event: dict[str, Any] = {
        "at": AT,
        "request_id": "r1",
        "chat_prompt_tokens": 5,
        "chat_cost": "0.5",
    }
    assert reg.record_usage(llm.name, **event) == 1
    before_rows, before_totals = rows(reg), totals(reg, llm.name)
    assert reg.record_usage(llm.name, **event) == 0
    assert reg.record_usage(llm.name, **{**event, "chat_cost": 0.5}) == 0  # same amount
    assert reg.record_usage_many([{"name": llm.name, **event}]) == 0
    assert rows(reg) == before_rows
    assert (
        totals(reg, llm.name)
        == before_totals
        == {
            **zeros(),
            "requests": 1,
            "chat_prompt_tokens": 5,
            "chat_cost": Decimal("0.5"),
        }
    )


@pytest.mark.parametrize(
    "change",
    [
        {"chat_cost": "0.6"},
        {"chat_prompt_tokens": 6},
        {"embedding_completion_tokens": 1},
        {"at": "2026-11-01T10:20:30.123457Z"},
    ],
    ids=repr,
)
def test_same_request_with_other_content_is_a_conflict(
    reg: Reg, llm: registry.QueryLlm, change: dict[str, Any]
) -> None:
    """The same request_id with different content is a ConflictError and writes nothing."""
    event: dict[str, Any] = {
        "at": AT,
        "request_id": "r1",
        "chat_prompt_tokens": 5,
        "chat_cost": "0.5",
    }
    reg.record_usage(llm.name, **event)
    before = rows(reg)
    with pytest.raises(registry.ConflictError) as caught:
        reg.record_usage(llm.name, **{**event, **change})
    ((path, message),) = caught.value.errors
    assert path == "/request_id"
    (key,) = change  # the message says what differs, as it was and as it is now
    assert message.startswith(f"was recorded before with other content: {key} was ")
    assert "to retry it, send what was sent the first time" in message
    assert isinstance(caught.value, registry.ValidationError)
    assert rows(reg) == before
    assert totals(reg, llm.name)["chat_cost"] == Decimal("0.5")


def test_request_id_is_unique_across_query_llms(
    reg: Reg, llm: registry.QueryLlm, other: registry.QueryLlm
) -> None:
    """A request_id used for one Query LLM is a conflict for another."""
    reg.record_usage(llm.name, at=AT, request_id="r1")
    with pytest.raises(registry.ConflictError):
        reg.record_usage(other.name, at=AT, request_id="r1")
    assert totals(reg, other.name) == zeros()


def test_same_request_from_another_user_is_a_conflict(reg: Reg, llm: registry.QueryLlm) -> None:
    """The user is part of the content: a request_id repeated with another token conflicts."""
    reg.record_usage(llm.name, at=AT, request_id="r1", token=reg.create_token("alice"))
    with pytest.raises(registry.ConflictError):
        reg.record_usage(llm.name, at=AT, request_id="r1", token=reg.create_token("bob"))
    with pytest.raises(registry.ConflictError):
        reg.record_usage(llm.name, at=AT, request_id="r1")
    assert rows(reg) == (1, 1, 1)


@pytest.mark.library_only("sets the library's clock, which a server process does not share")
def test_retry_without_at_is_the_same_request(
    reg: Reg, llm: registry.QueryLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry that leaves out ``at`` is the same request: no-op, the stored time stands."""
    reg.record_usage(llm.name, at=AT, request_id="r1", chat_cost="0.1")
    fix_clock(monkeypatch, AT_MICROS + 3_600_000_000 * 5)
    assert reg.record_usage(llm.name, request_id="r1", chat_cost="0.1") == 0
    assert reg.record_usage_many([{"name": llm.name, "request_id": "r1", "chat_cost": 0.1}]) == 0
    assert [row[2] for row in stored(reg)] == [AT_MICROS]


@pytest.mark.library_only("sets the library's clock, which a server process does not share")
def test_retry_without_at_twice_is_the_same_request(
    reg: Reg, llm: registry.QueryLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two recordings without ``at`` at different moments are one request."""
    fix_clock(monkeypatch, AT_MICROS)
    reg.record_usage(llm.name, request_id="r1")
    fix_clock(monkeypatch, AT_MICROS + 1)
    assert reg.record_usage(llm.name, request_id="r1") == 0
    assert stored(reg) == [(llm.name, None, AT_MICROS, "r1", 0, 0, 0, 0, 0, 0)]


@pytest.mark.library_only("sets the library's clock, which a server process does not share")
def test_retry_with_an_explicit_other_at_conflicts(
    reg: Reg, llm: registry.QueryLlm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request first recorded at "now" conflicts with a retry that names another ``at``."""
    fix_clock(monkeypatch, AT_MICROS)
    reg.record_usage(llm.name, request_id="r1")
    assert reg.record_usage(llm.name, request_id="r1", at=AT) == 0  # the same moment
    with pytest.raises(registry.ConflictError):
        reg.record_usage(llm.name, request_id="r1", at="2026-11-01T10:20:31Z")


def test_repeated_request_inside_one_batch(reg: Reg, llm: registry.QueryLlm) -> None:
    """A request_id repeated inside one batch with the same content is written once."""
    event = {"name": llm.name, "at": AT, "request_id": "r1", "chat_cost": "0.5"}
    plain = {"name": llm.name, "at": AT, "chat_cost": "0.5"}
    assert reg.record_usage_many([event, plain, event, {**event, "at": None}, plain]) == 3
    assert totals(reg, llm.name)["requests"] == 3
    assert totals(reg, llm.name)["chat_cost"] == Decimal("1.5")
    assert rows(reg) == (3, 1, 1)


def test_a_forgotten_token_is_said_to_be_what_differs(reg: Reg, llm: registry.QueryLlm) -> None:
    """Issue 21 item 6: events recorded without a token, sent again with one, are refused
    with a message that says the user is what differs, on every surface and backend."""
    alice = reg.create_token("alice")
    event = {"name": llm.name, "at": AT, "request_id": "r1", "chat_cost": "0.5"}
    assert reg.record_usage_many([event]) == 1
    with pytest.raises(registry.ConflictError) as caught:
        reg.record_usage_many([{"name": llm.name, "request_id": "r0"}, event], token=alice)
    ((path, message),) = caught.value.errors
    assert path == "/1/request_id"
    assert message.startswith(
        "was recorded before with other content: it was recorded by no user (without a"
        " token), and this time by 'alice'."
    )
    with pytest.raises(registry.ConflictError) as again:
        reg.record_usage(llm.name, token=alice, at=AT, request_id="r1", chat_cost="0.75")
    said = again.value.errors[0][1]
    assert "chat_cost was 0.5, and is 0.75 this time" in said
    assert rows(reg) == (1, 1, 1)


def test_conflict_inside_one_batch_writes_nothing(reg: Reg, llm: registry.QueryLlm) -> None:
    """A request_id repeated inside one batch with other content rejects the whole batch."""
    event = {"name": llm.name, "at": AT, "request_id": "r1", "chat_cost": "0.5"}
    with pytest.raises(registry.ConflictError) as caught:
        reg.record_usage_many([event, {"name": llm.name}, {**event, "chat_cost": "0.4"}])
    assert [path for path, _ in caught.value.errors] == ["/2/request_id"]
    assert "chat_cost was 0.5, and is 0.4 this time" in caught.value.errors[0][1]
    assert rows(reg) == (0, 0, 0)


def test_batch_counts_only_new_events(reg: Reg, llm: registry.QueryLlm) -> None:
    """The return value is the number of events written: repeats are not counted."""
    reg.record_usage_many([{"name": llm.name, "at": AT, "request_id": f"r{i}"} for i in range(3)])
    batch = [{"name": llm.name, "at": AT, "request_id": f"r{i}"} for i in range(6)]
    assert reg.record_usage_many(batch) == 3
    assert totals(reg, llm.name)["requests"] == 6
    assert reg.record_usage_many(batch) == 0
    assert rows(reg) == (6, 1, 1)


# --- batches ----------------------------------------------------------------------------------


def events_for(name: str, n: int) -> list[dict[str, Any]]:
    """``n`` valid events spread over ten hours, each with its own request_id."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {
            "name": name,
            "at": (start + timedelta(seconds=7 * i)).isoformat(),
            "request_id": f"batch-{i}",
            "chat_prompt_tokens": i % 17,
            "chat_cost": "0.001",
        }
        for i in range(n)
    ]


def test_empty_batch_writes_nothing(reg: Reg) -> None:
    """An empty batch returns 0."""
    assert reg.record_usage_many([]) == 0
    assert reg.record_usage_many(iter(())) == 0
    assert rows(reg) == (0, 0, 0)


@pytest.mark.parametrize(
    ("events", "errors"),
    [
        (None, [("", "must be an iterable of usage events")]),
        (5, [("", "must be an iterable of usage events")]),
        ({"name": 1}.items(), [("/0", "must be an object")]),
    ],
    ids=["None", "int", "pairs"],
)
def test_batch_that_is_not_a_list_of_events(
    reg: Reg, events: Any, errors: list[tuple[str, str]]
) -> None:
    """Something that is not an iterable of event objects is a ValidationError."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage_many(events)
    assert caught.value.errors == errors
    assert rows(reg) == (0, 0, 0)


def test_batch_from_a_generator(reg: Reg, llm: registry.QueryLlm) -> None:
    """A generator of 5,000 events is recorded whole, and sums come out exact."""

    def generate() -> Iterator[dict[str, Any]]:
        yield from events_for(llm.name, 5000)

    assert reg.record_usage_many(generate()) == 5000
    got = totals(reg, llm.name)
    assert got["requests"] == 5000
    assert got["chat_cost"] == Decimal("5")
    assert got["chat_prompt_tokens"] == sum(i % 17 for i in range(5000))
    assert rows(reg)[0] == 5000


def test_batch_with_a_token(reg: Reg, llm: registry.QueryLlm) -> None:
    """Every event of a batch recorded with a token belongs to the token's user."""
    token = reg.create_token("alice")
    reg.record_usage_many(events_for(llm.name, 10), token=token)
    users = reg.db.execute("SELECT DISTINCT user_id FROM usage_events").fetchall()
    assert users == [("alice",)]
    assert reg.get(llm.name, metadata=True, me=True, token=token)["requests"] == 10


@pytest.mark.parametrize("k", [0, 1999, 2000, 2500, 4999])
def test_bad_event_rejects_the_whole_batch(reg: Reg, llm: registry.QueryLlm, k: int) -> None:
    """A bad event at index k of 5,000 rejects them all; its path starts with /k/."""
    reg.record_usage(llm.name, at=AT)
    before = rows(reg)
    batch = events_for(llm.name, 5000)
    batch[k] = {**batch[k], "chat_cost": "-1"}
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage_many(batch)
    assert [path for path, _ in caught.value.errors] == [f"/{k}/chat_cost"]
    assert all(path.startswith(f"/{k}/") for path, _ in caught.value.errors)
    assert rows(reg) == before
    assert totals(reg, llm.name)["requests"] == 1


@pytest.mark.parametrize("k", [3, 4321])
def test_unknown_name_rejects_the_whole_batch(reg: Reg, llm: registry.QueryLlm, k: int) -> None:
    """An unregistered name at index k of 5,000 is a NotFoundError naming k; nothing is written."""
    batch = events_for(llm.name, 5000)
    missing = registry.validate(body(id="never/registered")).name
    batch[k] = {**batch[k], "name": missing}
    with pytest.raises(registry.NotFoundError) as caught:
        reg.record_usage_many(batch)
    assert caught.value.index == k
    assert rows(reg) == (0, 0, 0)


@pytest.mark.parametrize("k", [10, 4000])
def test_conflict_rejects_the_whole_batch(reg: Reg, llm: registry.QueryLlm, k: int) -> None:
    """A conflicting request_id at index k of 5,000 rejects the batch, path /k/request_id."""
    reg.record_usage(llm.name, at=AT, request_id="seen")
    batch = events_for(llm.name, 5000)
    batch[k] = {**batch[k], "request_id": "seen"}
    with pytest.raises(registry.ConflictError) as caught:
        reg.record_usage_many(batch)
    assert [path for path, _ in caught.value.errors] == [f"/{k}/request_id"]
    assert "was recorded before with other content" in caught.value.errors[0][1]
    assert rows(reg) == (1, 1, 1)


def test_generator_failure_rejects_the_batch(reg: Reg, llm: registry.QueryLlm) -> None:
    """An exception raised by the events iterable part-way rolls back what was read before."""

    def generate() -> Iterator[dict[str, Any]]:
        yield from events_for(llm.name, 4500)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        reg.record_usage_many(generate())
    assert rows(reg) == (0, 0, 0)
    assert reg.record_usage(llm.name) == 1  # the registry is usable afterwards
