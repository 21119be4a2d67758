"""The metadata query (spec 7): windows, their edges and offsets, ``me``, and brute-force sums."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from attrs import frozen

import registry
from registry import times
from tests.support.behaviour import Reg
from tests.support.data import AMOUNTS, COUNTERS, body

pytestmark = pytest.mark.surfaces  # each reg test runs on the library and over HTTP

BASE = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def rfc3339(moment: datetime) -> str:
    """``moment`` as RFC 3339 text with a Z, written here independently of the library."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def counters(got: dict[str, Any]) -> dict[str, Any]:
    """The usage counters of a ``get`` answer."""
    return {key: got[key] for key in COUNTERS}


def zeros() -> dict[str, Any]:
    """All counters zero."""
    return dict.fromkeys(COUNTERS, 0)


def window(reg: Reg, name: str, start: Any = None, end: Any = None, **query: Any) -> dict[str, Any]:
    """The counters of ``name`` over ``[start, end)``."""
    return counters(reg.get(name, metadata=True, start=start, end=end, **query))


@frozen
class Event:
    """One recorded event, as the test knows it."""

    at: datetime
    user: str | None
    amounts: dict[str, Any]


def brute_force(
    events: list[Event], start: datetime | None, end: datetime | None, user: str | None = None
) -> dict[str, Any]:
    """The counters over ``[start, end)`` summed event by event, costs as exact Decimals."""
    result: dict[str, Any] = zeros()
    for event in events:
        if start is not None and event.at < start:
            continue
        if end is not None and event.at >= end:
            continue
        if user is not None and event.user != user:
            continue
        result["requests"] += 1
        for key in AMOUNTS:
            result[key] += (
                Decimal(event.amounts[key]) if key.endswith("cost") else event.amounts[key]
            )
    return result


@frozen
class Scene:
    """A registry with events of three users over ten hours, and what was recorded."""

    reg: Reg
    name: str
    other: str
    events: list[Event]
    tokens: dict[str, str]


def random_amounts(rng: random.Random) -> dict[str, Any]:
    """Token counts and costs (strings with up to 9 places) for one event."""
    amounts: dict[str, Any] = {}
    for key in AMOUNTS:
        if key.endswith("cost"):
            places = rng.randrange(10)
            fraction = f".{rng.randrange(10**places):0{places}d}" if places else ""
            amounts[key] = f"{rng.randrange(10**6)}{fraction}"
        else:
            amounts[key] = rng.randrange(0, 5000)
    return amounts


@pytest.fixture
def scene(reg: Reg) -> Scene:
    """Four hundred events (of alice, bob and no one) spread over 2026-11-01 00:00 to 10:00 UTC."""
    rng = random.Random(20261101)
    name = reg.register(body()).name
    other = reg.register(body(id="other/model")).name
    tokens = {"alice": reg.create_token("alice"), "bob": reg.create_token("bob")}
    moments = [BASE + timedelta(microseconds=rng.randrange(10 * 3600 * 10**6)) for _ in range(380)]
    # Events exactly on hour boundaries and exactly at the edges the tests use.
    moments += [BASE + HOUR * h for h in range(11)]
    moments += [
        BASE + timedelta(hours=1, minutes=17, seconds=23, microseconds=456789),
        BASE + timedelta(hours=8, minutes=42, seconds=11, microseconds=1),
        BASE + timedelta(hours=3, minutes=10),
        BASE + timedelta(hours=3, minutes=50),
    ]
    events = [
        Event(moment, rng.choice(["alice", "bob", None]), random_amounts(rng)) for moment in moments
    ]
    for user in ("alice", "bob", None):
        batch = [{"name": name, "at": rfc3339(e.at), **e.amounts} for e in events if e.user == user]
        reg.record_usage_many(batch, token=tokens[user] if user else None)
    # Usage of another Query LLM in the same hours must never be counted.
    reg.record_usage_many(
        [{"name": other, "at": rfc3339(m), "chat_prompt_tokens": 10**6} for m in moments[:50]]
    )
    return Scene(reg, name, other, events, tokens)


WINDOWS: list[tuple[str, datetime | None, datetime | None]] = [
    ("everything", None, None),
    (
        "inside one hour",
        BASE + timedelta(hours=3, minutes=10),
        BASE + timedelta(hours=3, minutes=50),
    ),
    ("one whole hour", BASE + 3 * HOUR, BASE + 4 * HOUR),
    ("whole hours", BASE + 2 * HOUR, BASE + 7 * HOUR),
    (
        "partial hours at both edges",
        BASE + timedelta(hours=1, minutes=17, seconds=23, microseconds=456789),
        BASE + timedelta(hours=8, minutes=42, seconds=11, microseconds=1),
    ),
    (
        "across one boundary",
        BASE + timedelta(hours=3, minutes=30),
        BASE + timedelta(hours=4, minutes=30),
    ),
    ("whole start, partial end", BASE + 2 * HOUR, BASE + timedelta(hours=5, minutes=1)),
    ("partial start, whole end", BASE + timedelta(hours=2, microseconds=1), BASE + 5 * HOUR),
    ("one microsecond", BASE + 4 * HOUR, BASE + 4 * HOUR + timedelta(microseconds=1)),
    ("from only, partial", BASE + timedelta(hours=6, minutes=59), None),
    ("from only, whole", BASE + 6 * HOUR, None),
    ("to only, partial", None, BASE + timedelta(hours=6, minutes=59)),
    ("to only, whole", None, BASE + 6 * HOUR),
    ("before everything", BASE - 5 * HOUR, BASE),
    ("after everything", BASE + 10 * HOUR + timedelta(microseconds=1), None),
    ("wider than the data", BASE - 24 * HOUR, BASE + 48 * HOUR),
]


@pytest.mark.parametrize(("label", "start", "end"), WINDOWS, ids=[w[0] for w in WINDOWS])
def test_windows_match_brute_force(
    scene: Scene, label: str, start: datetime | None, end: datetime | None
) -> None:
    """Every window's counters equal the event-by-event sum, for everyone and for each user."""
    reg = scene.reg
    text = [None if moment is None else rfc3339(moment) for moment in (start, end)]
    expected = brute_force(scene.events, start, end)
    assert window(reg, scene.name, *text) == expected
    assert window(reg, scene.name, start, end) == expected  # aware datetimes work too
    for user, token in scene.tokens.items():
        mine = window(reg, scene.name, *text, me=True, token=token)
        assert mine == brute_force(scene.events, start, end, user)


def test_random_windows_match_brute_force(scene: Scene) -> None:
    """Two hundred random windows, some with edges on event times, equal the brute-force sums."""
    rng = random.Random(7)
    times_of_events = [e.at for e in scene.events]
    for _ in range(200):
        a, b = (
            rng.choice(times_of_events)
            if rng.random() < 0.3
            else BASE + timedelta(microseconds=rng.randrange(-3600 * 10**6, 11 * 3600 * 10**6))
            for _ in range(2)
        )
        start, end = min(a, b), max(a, b)
        user = rng.choice([None, "alice", "bob"])
        query = {} if user is None else {"me": True, "token": scene.tokens[user]}
        got = window(scene.reg, scene.name, rfc3339(start), rfc3339(end), **query)
        assert got == brute_force(scene.events, start, end, user), (start, end, user)


def test_answers_survive_rebuilding_the_rollups(scene: Scene) -> None:
    """After rebuild_rollups every window still equals the brute-force sum."""
    scene.reg.rebuild_rollups()
    for _, start, end in WINDOWS:
        text = [None if moment is None else rfc3339(moment) for moment in (start, end)]
        assert window(scene.reg, scene.name, *text) == brute_force(scene.events, start, end)


def test_totals_sum_every_event(scene: Scene) -> None:
    """Without a window the counters are the sums of every event of the Query LLM."""
    got = window(scene.reg, scene.name)
    assert got["requests"] == len(scene.events) == 395
    assert got["chat_cost"] == sum(
        (Decimal(e.amounts["chat_cost"]) for e in scene.events), Decimal(0)
    )
    assert window(scene.reg, scene.other)["chat_prompt_tokens"] == 50 * 10**6


@pytest.mark.parametrize(
    "split",
    [
        BASE + 4 * HOUR,
        BASE + timedelta(hours=4, minutes=10),
        BASE + timedelta(hours=1, minutes=17, seconds=23, microseconds=456789),  # an event's time
    ],
)
def test_adjacent_windows_sum_to_the_whole(scene: Scene, split: datetime) -> None:
    """[a, b) plus [b, c) equals [a, c): no event is counted twice or lost at b."""
    a, c = rfc3339(BASE + timedelta(minutes=30)), rfc3339(BASE + timedelta(hours=9, minutes=5))
    b = rfc3339(split)
    left = window(scene.reg, scene.name, a, b)
    right = window(scene.reg, scene.name, b, c)
    whole = window(scene.reg, scene.name, a, c)
    assert {key: left[key] + right[key] for key in COUNTERS} == whole
    before, after = window(scene.reg, scene.name, None, b), window(scene.reg, scene.name, b, None)
    assert {key: before[key] + after[key] for key in COUNTERS} == window(scene.reg, scene.name)


# --- edges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    ["2026-11-01T03:10:00.500000Z", "2026-11-01T03:00:00Z"],
    ids=["mid-hour", "on the hour"],
)
def test_event_at_from_is_counted_and_at_to_is_not(
    reg: Reg, llm: registry.QueryLlm, at: str
) -> None:
    """An event exactly at ``from`` is in the window; one exactly at ``to`` is not."""
    reg.record_usage(llm.name, at=at, chat_prompt_tokens=7)
    one = {**zeros(), "requests": 1, "chat_prompt_tokens": 7}
    assert window(reg, llm.name, at, None) == one
    assert window(reg, llm.name, None, at) == zeros()
    assert window(reg, llm.name, at, "2026-11-01T03:59:59.999999Z") == one
    assert window(reg, llm.name, at, "2026-11-02T00:00:00Z") == one
    assert window(reg, llm.name, "2026-11-01T00:00:00Z", at) == zeros()
    assert window(reg, llm.name, "2026-11-01T03:00:00Z", at) == zeros()


def test_from_equal_to_to_is_empty(reg: Reg, llm: registry.QueryLlm) -> None:
    """``from`` equal to ``to`` is an empty window, even with an event exactly there."""
    for at in ("2026-11-01T03:10:00Z", "2026-11-01T03:00:00Z"):
        reg.record_usage(llm.name, at=at, chat_cost="1")
        assert window(reg, llm.name, at, at) == zeros()


def test_offsets_are_converted_to_utc(reg: Reg, llm: registry.QueryLlm) -> None:
    """``from``/``to`` with an offset mean the same instant in UTC."""
    reg.record_usage(llm.name, at="2026-11-01T10:00:00Z", chat_prompt_tokens=1)
    reg.record_usage(llm.name, at="2026-11-01T10:30:00Z", chat_prompt_tokens=2)
    reg.record_usage(llm.name, at="2026-11-01T11:00:00Z", chat_prompt_tokens=4)
    got = window(reg, llm.name, "2026-11-01T11:00:00+01:00", "2026-11-01T06:30:00-04:30")
    assert got["chat_prompt_tokens"] == 3
    assert window(reg, llm.name, "2026-11-01T11:30:00+01:00", None)["chat_prompt_tokens"] == 6
    plus_one = timezone(timedelta(hours=1))
    aware = (
        datetime(2026, 11, 1, 11, 30, tzinfo=plus_one),
        datetime(2026, 11, 1, 12, tzinfo=plus_one),
    )
    assert window(reg, llm.name, *aware)["chat_prompt_tokens"] == 2


def test_bare_date_is_midnight_utc(reg: Reg, llm: registry.QueryLlm) -> None:
    """A bare date (2026-11-01) means that day's midnight UTC, for ``from`` and for ``to``."""
    reg.record_usage(llm.name, at="2026-10-31T23:59:59.999999Z", chat_prompt_tokens=1)
    reg.record_usage(llm.name, at="2026-11-01T00:00:00Z", chat_prompt_tokens=2)
    reg.record_usage(llm.name, at="2026-11-01T23:59:59.999999Z", chat_prompt_tokens=4)
    reg.record_usage(llm.name, at="2026-11-02T00:00:00Z", chat_prompt_tokens=8)
    assert window(reg, llm.name, "2026-11-01", "2026-11-02")["chat_prompt_tokens"] == 6
    assert window(reg, llm.name, "2026-11-01", None)["chat_prompt_tokens"] == 14
    assert window(reg, llm.name, None, "2026-11-01")["chat_prompt_tokens"] == 1
    assert window(reg, llm.name, "2026-11-01", "2026-11-01T00:00:00.000001Z")["requests"] == 1


@pytest.mark.parametrize(
    ("start", "end", "paths"),
    [
        ("2026-11-01T10:00:00", None, ["/from"]),
        (None, "2026-11-01T10:00:00", ["/to"]),
        ("2026-11-01T10:00:00", "2026-11-01 11:00:00", ["/from", "/to"]),
        ("2026-11-01T10:00", None, ["/from"]),
        ("2026-02-30", None, ["/from"]),
        ("2026-11-01T25:00:00Z", None, ["/from"]),
        ("yesterday", None, ["/from"]),
        ("", None, ["/from"]),
        (1762000000, None, ["/from"]),
        (datetime(2026, 11, 1), None, ["/from"]),  # noqa: DTZ001 - naive on purpose
        (None, datetime(2026, 11, 1), ["/to"]),  # noqa: DTZ001 - naive on purpose
    ],
    ids=repr,
)
def test_bad_times_are_validation_errors(
    reg: Reg, llm: registry.QueryLlm, start: Any, end: Any, paths: list[str]
) -> None:
    """A time without an offset, an impossible date or a non-time is a ValidationError."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.get(llm.name, metadata=True, start=start, end=end)
    assert [path for path, _ in caught.value.errors] == paths


def test_naive_time_message(reg: Reg, llm: registry.QueryLlm) -> None:
    """A date-time without an offset says it needs one."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.get(llm.name, metadata=True, start="2026-11-01T10:00:00")
    assert caught.value.errors == [
        ("/from", "needs a UTC offset, such as Z or +01:00: '2026-11-01T10:00:00'")
    ]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-11-01T10:00:00.000001Z", "2026-11-01T10:00:00Z"),
        ("2026-11-02", "2026-11-01"),
        ("2026-11-01T10:00:00+01:00", "2026-11-01T08:59:59Z"),
    ],
)
def test_from_later_than_to_is_a_validation_error(
    reg: Reg, llm: registry.QueryLlm, start: str, end: str
) -> None:
    """``from`` later than ``to`` (compared in UTC) is a ValidationError at /from."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.get(llm.name, metadata=True, start=start, end=end)
    assert caught.value.errors == [("/from", "must not be later than to")]


def test_offsets_decide_the_order_of_from_and_to(reg: Reg, llm: registry.QueryLlm) -> None:
    """``from`` that reads later than ``to`` but is earlier in UTC is accepted."""
    got = window(reg, llm.name, "2026-11-01T10:00:00+02:00", "2026-11-01T09:00:00Z")
    assert got == zeros()


# --- what metadata=False ignores --------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"me": True},
        {"start": "not a time"},
        {"end": "2026-11-01T10:00:00"},
        {"start": "2026-11-02", "end": "2026-11-01"},
        # An id of its own: repr would show the object's address, which differs per process.
        pytest.param(
            {"me": "not a bool", "start": 5, "end": object()},
            id="{'me': 'not a bool', 'start': 5, 'end': <object object>}",
        ),
    ],
    ids=repr,
)
def test_without_metadata_the_query_is_ignored(
    reg: Reg, llm: registry.QueryLlm, query: dict[str, Any]
) -> None:
    """With metadata false, me/from/to are ignored entirely: no error, no metadata keys."""
    assert reg.get(llm.name, **query) == registry.dump(llm)
    assert reg.get(llm.name, metadata=False, **query) == registry.dump(llm)


def test_without_metadata_a_bad_token_is_still_refused(reg: Reg, llm: registry.QueryLlm) -> None:
    """Ignoring the query does not mean ignoring the token: an unknown one is refused."""
    with pytest.raises(registry.AuthenticationError):
        reg.get(llm.name, me=True, token="qllm_unknown")


# --- me -----------------------------------------------------------------------------------------


def test_me_without_a_token_is_an_authorization_error(reg: Reg, llm: registry.QueryLlm) -> None:
    """me=True with metadata and no token is an AuthorizationError, not an authentication one."""
    with pytest.raises(registry.AuthorizationError, match=r"^me=true needs a token$"):
        reg.get(llm.name, metadata=True, me=True)
    with pytest.raises(registry.AuthorizationError):
        reg.get(llm.name, metadata=True, me=True, start="2026-11-01", end="2026-11-02")


def test_me_counts_only_the_callers_events(reg: Reg, llm: registry.QueryLlm) -> None:
    """With me, only the caller's events count; anonymous and other users' do not."""
    alice, bob = reg.create_token("alice"), reg.create_token("bob")
    at = "2026-11-01T10:00:00Z"
    reg.record_usage(llm.name, at=at, token=alice, chat_prompt_tokens=1, chat_cost="0.1")
    reg.record_usage(llm.name, at=at, token=alice, chat_prompt_tokens=2, chat_cost="0.2")
    reg.record_usage(llm.name, at=at, token=bob, chat_prompt_tokens=4, chat_cost="0.4")
    reg.record_usage(llm.name, at=at, chat_prompt_tokens=8, chat_cost="0.8")
    mine = window(reg, llm.name, me=True, token=alice)
    assert mine == {**zeros(), "requests": 2, "chat_prompt_tokens": 3, "chat_cost": Decimal("0.3")}
    assert window(reg, llm.name, me=True, token=bob)["chat_prompt_tokens"] == 4
    assert window(reg, llm.name, token=alice)["chat_prompt_tokens"] == 15  # me=False: everyone
    carol = reg.create_token("carol")
    assert window(reg, llm.name, me=True, token=carol) == zeros()


@pytest.mark.library_only("sets the library's clock, which a server process does not share")
def test_created_and_user_id_are_not_filtered(reg: Reg, monkeypatch: pytest.MonkeyPatch) -> None:
    """``created`` and ``user_id`` stay the registration's, whatever the window and ``me``."""
    alice, bob = reg.create_token("alice"), reg.create_token("bob")
    created = times.micros(datetime(2026, 11, 5, 12, tzinfo=UTC))
    monkeypatch.setattr(times, "now", lambda: created)
    name = reg.register(body(), token=alice).name
    monkeypatch.undo()
    for query in (
        {"start": "2020-01-01", "end": "2020-01-02"},
        {"start": "2030-01-01"},
        {"me": True, "token": bob},
        {"me": True, "token": bob, "start": "2026-11-05T12:00:00.000001Z"},
    ):
        got = reg.get(name, metadata=True, **query)
        assert got["created"] == "2026-11-05T12:00:00.000000Z"
        assert got["user_id"] == "alice"
        assert counters(got) == zeros()


def test_no_events_in_range_gives_zeros(reg: Reg, llm: registry.QueryLlm) -> None:
    """A window with no events answers 0 for every counter, costs as Decimal zero."""
    reg.record_usage(llm.name, at="2026-11-01T10:00:00Z", chat_cost="1.5", embedding_cost="2")
    got = window(reg, llm.name, "2026-11-02", "2026-11-03")
    assert got == zeros()
    assert got["chat_cost"] == Decimal(0)
    assert isinstance(got["chat_cost"], Decimal)
    assert isinstance(got["embedding_cost"], Decimal)


def test_metadata_of_one_event_is_exact(reg: Reg, llm: registry.QueryLlm) -> None:
    """One event's six amounts come back unchanged, costs as exact Decimals."""
    reg.record_usage(
        llm.name,
        at="2026-11-01T10:00:00Z",
        chat_prompt_tokens=11,
        chat_completion_tokens=12,
        chat_cost="0.000000013",
        embedding_prompt_tokens=14,
        embedding_completion_tokens=15,
        embedding_cost="16.5",
    )
    assert window(reg, llm.name, "2026-11-01T09:59:59Z", "2026-11-01T10:00:01Z") == {
        "requests": 1,
        "chat_completion_tokens": 12,
        "chat_prompt_tokens": 11,
        "chat_cost": Decimal("0.000000013"),
        "embedding_completion_tokens": 15,
        "embedding_prompt_tokens": 14,
        "embedding_cost": Decimal("16.5"),
    }
