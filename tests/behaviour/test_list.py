"""List and count (spec 9): sorts, ties, paging, windows and ``me``, checked by brute force."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from attrs import frozen

import registry
from registry import times
from registry.registry import Registry
from tests.support.behaviour import Reg
from tests.support.data import body

pytestmark = pytest.mark.surfaces  # each reg test runs on the library and over HTTP

BASE = datetime(2026, 11, 1, tzinfo=UTC)
USAGE_SORTS = ("requests", "tokens", "prompt_tokens", "completion_tokens", "cost")
SORTS = ("created", *USAGE_SORTS)

Amounts = dict[str, Any]
METRICS: dict[str, Callable[[Amounts], Any]] = {
    "requests": lambda a: 1,
    "tokens": lambda a: (
        a["chat_prompt_tokens"]
        + a["chat_completion_tokens"]
        + a["embedding_prompt_tokens"]
        + a["embedding_completion_tokens"]
    ),
    "prompt_tokens": lambda a: a["chat_prompt_tokens"] + a["embedding_prompt_tokens"],
    "completion_tokens": lambda a: a["chat_completion_tokens"] + a["embedding_completion_tokens"],
    "cost": lambda a: Decimal(a["chat_cost"]) + Decimal(a["embedding_cost"]),
}


def rfc3339(moment: datetime) -> str:
    """``moment`` as RFC 3339 text with a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@frozen
class Event:
    """One recorded event, as the test knows it."""

    name: str
    at: datetime
    user: str | None
    amounts: Amounts


@frozen
class Scene:
    """Eight Query LLMs, their registration times and owners, and their usage events."""

    reg: Reg
    names: list[str]  # in registration order
    created: dict[str, int]
    owner: dict[str, str | None]
    events: list[Event]
    tokens: dict[str, str]

    def expected(
        self,
        sort: str,
        start: datetime | None = None,
        end: datetime | None = None,
        user: str | None = None,
    ) -> list[str]:
        """The full order ``list`` must give, computed event by event."""
        names = self.names
        if user is not None:
            used = {e.name for e in self.events if e.user == user}
            names = [n for n in names if self.owner[n] == user or n in used]
        if sort == "created":
            return sorted(names, key=lambda n: (-self.created[n], n))
        metric: dict[str, Any] = dict.fromkeys(names, 0)
        for e in self.events:
            if e.name not in metric or (user is not None and e.user != user):
                continue
            if (start is None or e.at >= start) and (end is None or e.at < end):
                metric[e.name] += METRICS[sort](e.amounts)
        return sorted(names, key=lambda n: (-metric[n], n))


def amounts(rng: random.Random) -> Amounts:
    """Random token counts and costs for one event; the four token kinds vary independently."""
    return {
        "chat_prompt_tokens": rng.randrange(0, 3000),
        "chat_completion_tokens": rng.randrange(0, 1000),
        "embedding_prompt_tokens": rng.choice([0, 0, rng.randrange(0, 9000)]),
        "embedding_completion_tokens": rng.choice([0, rng.randrange(0, 200)]),
        "chat_cost": f"0.{rng.randrange(10**9):09d}",
        "embedding_cost": rng.choice(["0", f"{rng.randrange(3)}.{rng.randrange(10**4):04d}"]),
    }


@pytest.fixture
def scene(reg: Reg, monkeypatch: pytest.MonkeyPatch) -> Scene:
    """Eight Query LLMs: two registered at the same microsecond, two never used, two used alike."""
    if not isinstance(reg, Registry):
        pytest.skip("the scene sets the library's clock, which a server process does not share")
    rng = random.Random(99)
    tokens = {"alice": reg.create_token("alice"), "bob": reg.create_token("bob")}
    owners: list[str | None] = ["alice", None, "bob", None, "bob", None, "alice", None]
    clock = [times.micros(BASE)]
    monkeypatch.setattr(times, "now", lambda: clock[0])
    names: list[str] = []
    created: dict[str, int] = {}
    for i, owner in enumerate(owners):
        if i != 3:  # number 3 is registered in the same microsecond as number 2
            clock[0] += 1_000_000
        name = reg.register(body(id=f"model/{i}"), token=tokens[owner] if owner else None).name
        names.append(name)
        created[name] = clock[0]
    monkeypatch.undo()
    owner_of = dict(zip(names, owners, strict=True))
    events: list[Event] = []
    for i, name in enumerate(names[:4]):  # numbers 0 to 3: random usage
        for _ in range(rng.randrange(5, 40)):
            at = BASE + timedelta(microseconds=rng.randrange(10 * 3600 * 10**6))
            user = rng.choice(["alice", "bob", None]) if i != 1 else rng.choice(["bob", None])
            events.append(Event(name, at, user, amounts(rng)))
    for _ in range(12):  # numbers 4 and 5: the same usage, a tie on every sort
        at = BASE + timedelta(microseconds=rng.randrange(10 * 3600 * 10**6))
        event_amounts = amounts(rng)
        events.append(Event(names[4], at, "bob", event_amounts))
        events.append(Event(names[5], at, "bob", event_amounts))
    for user in ("alice", "bob", None):
        reg.record_usage_many(
            [{"name": e.name, "at": rfc3339(e.at), **e.amounts} for e in events if e.user == user],
            token=tokens[user] if user else None,
        )
    return Scene(reg, names, created, owner_of, events, tokens)


WINDOWS = [
    (None, None),
    (BASE + timedelta(hours=2, minutes=13), BASE + timedelta(hours=7, minutes=48, seconds=1)),
    (BASE + timedelta(hours=4, minutes=5), BASE + timedelta(hours=4, minutes=55)),
    (BASE + 3 * timedelta(hours=1), BASE + 6 * timedelta(hours=1)),
    (BASE + timedelta(hours=5, minutes=30), None),
    (None, BASE + timedelta(hours=2, minutes=30)),
]


def text(moment: datetime | None) -> str | None:
    """RFC 3339 text, or None."""
    return None if moment is None else rfc3339(moment)


def all_pages(reg: Reg, page: int, **query: Any) -> list[str]:
    """Every name ``list`` gives, read ``page`` at a time."""
    names: list[str] = []
    while True:
        got = reg.list(count=page, offset=len(names), **query)
        assert len(got) <= page
        names += got
        if len(got) < page:
            return names


# --- sorts ---------------------------------------------------------------------------------


def test_scene_has_distinct_orders(scene: Scene) -> None:
    """The data is rich enough that the sorts disagree with each other and with name order."""
    orders = {tuple(scene.expected(sort)) for sort in SORTS}
    assert len(orders) >= 4
    assert tuple(sorted(scene.names)) not in orders


def test_created_is_newest_first_ties_by_name(scene: Scene) -> None:
    """``created`` lists newest first; two registered in the same microsecond by name."""
    got = scene.reg.list()
    assert got == scene.reg.list(sort="created")
    n = scene.names
    tied = sorted([n[2], n[3]])
    assert got == [n[7], n[6], n[5], n[4], *tied, n[1], n[0]]
    assert got == scene.expected("created")


@pytest.mark.parametrize("sort", USAGE_SORTS)
def test_usage_sorts_match_brute_force(scene: Scene, sort: str) -> None:
    """Usage sorts are largest first over each window, ties by name, as a brute-force sum says."""
    for start, end in WINDOWS:
        got = scene.reg.list(sort=sort, start=text(start), end=text(end))
        assert got == scene.expected(sort, start, end), (start, end)
        assert got == scene.reg.list(sort=sort, start=start, end=end)


@pytest.mark.parametrize("sort", USAGE_SORTS)
def test_usage_sort_ties_are_by_name(scene: Scene, sort: str) -> None:
    """Two Query LLMs with equal usage, and the unused ones, are ordered by name ascending."""
    got = scene.reg.list(sort=sort)
    n = scene.names
    tied = sorted([n[4], n[5]])
    assert got.index(tied[0]) + 1 == got.index(tied[1])
    assert got[-2:] == sorted([n[6], n[7]])  # no usage at all: last, by name


def test_token_sorts_add_chat_and_embedding(reg: Reg) -> None:
    """Token and cost sorts add chat and embedding amounts together."""
    chat = reg.register(body(id="chat/only")).name
    embed = reg.register(body(id="embed/only")).name
    reg.record_usage(chat, chat_prompt_tokens=10, chat_completion_tokens=1, chat_cost="0.5")
    reg.record_usage(chat, chat_prompt_tokens=10, chat_completion_tokens=1, chat_cost="0.5")
    reg.record_usage(
        embed, embedding_prompt_tokens=15, embedding_completion_tokens=3, embedding_cost="0.6"
    )
    reg.record_usage(embed, chat_prompt_tokens=6, chat_cost="0.5")
    assert reg.list(sort="requests") == sorted([chat, embed])  # a tie
    assert reg.list(sort="prompt_tokens") == [embed, chat]  # 21 > 20
    assert reg.list(sort="completion_tokens") == [embed, chat]  # 3 > 2
    assert reg.list(sort="tokens") == [embed, chat]  # 24 > 22
    assert reg.list(sort="cost") == [embed, chat]  # 1.1 > 1.0


def test_window_changes_the_usage_order(reg: Reg) -> None:
    """The window decides the usage sorts: heavy old usage does not count in a later window."""
    old = reg.register(body(id="old/model")).name
    new = reg.register(body(id="new/model")).name
    reg.record_usage_many([{"name": old, "at": "2026-11-01T01:00:00Z"}] * 5)
    reg.record_usage_many([{"name": new, "at": "2026-11-02T01:30:00Z"}] * 2)
    assert reg.list(sort="requests") == [old, new]
    assert reg.list(sort="requests", start="2026-11-02") == [new, old]
    assert reg.list(sort="requests", end="2026-11-02") == [old, new]
    assert reg.list(sort="requests", start="2026-11-02T01:30:00Z", end="2026-11-02T01:30:00Z") == (
        sorted([old, new])
    )


def test_created_sort_ignores_the_window(scene: Scene) -> None:
    """The window does not change the ``created`` order."""
    got = scene.reg.list(sort="created", start="2026-11-01T04:00:00Z", end="2026-11-01T05:00:00Z")
    assert got == scene.expected("created")


# --- paging ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", SORTS)
def test_pages_concatenate_to_the_full_order(scene: Scene, sort: str) -> None:
    """Pages read with count/offset are stable and together give the full order exactly once."""
    start, end = WINDOWS[1]
    query: dict[str, Any] = {"sort": sort, "start": text(start), "end": text(end)}
    full = scene.expected(sort, start, end)
    assert len(full) == 8
    for page in (1, 3, 8, 1000):
        assert all_pages(scene.reg, page, **query) == full, page
    assert scene.reg.list(count=1000, **query) == full


def test_default_page_is_100(reg: Reg) -> None:
    """Without ``count`` a page holds 100 names; the rest follow at offset 100."""
    names = [reg.register(body(id=f"model/{i}")).name for i in range(105)]
    first = reg.list()
    assert len(first) == 100
    rest = reg.list(offset=100)
    assert len(rest) == 5
    assert sorted(first + rest) == sorted(names)


def test_offset_past_the_end_is_empty(scene: Scene) -> None:
    """An offset at or past the number of Query LLMs gives an empty page."""
    assert scene.reg.list(offset=8) == []
    assert scene.reg.list(offset=10**9) == []
    assert scene.reg.list(offset=7) == [scene.expected("created")[-1]]


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, -1, 1001, True, 1.0, "5", None], ids=repr)
def test_count_out_of_range(reg: Reg, count: Any) -> None:
    """``count`` must be an integer from 1 to 1000, on every surface: the Client checks it
    as the library does, before a query string (which has no types) could lose it."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.list(count=count)
    assert caught.value.errors == [("/count", "must be an integer between 1 and 1000")]


def test_count_bounds_are_inclusive(scene: Scene) -> None:
    """``count`` 1 and 1000 are both allowed."""
    assert scene.reg.list(count=1) == scene.expected("created")[:1]
    assert scene.reg.list(count=1000) == scene.expected("created")


@pytest.mark.parametrize("offset", [-1, 1.5, True, "0", None], ids=repr)
def test_offset_must_be_non_negative(reg: Reg, offset: Any) -> None:
    """``offset`` must be an integer, 0 or more."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.list(offset=offset)
    assert caught.value.errors == [("/offset", "must be an integer, 0 or more")]


@pytest.mark.parametrize("sort", ["name", "Cost", "", "-created", "chat_cost", None], ids=repr)
def test_bad_sort(reg: Reg, sort: Any) -> None:
    """A sort other than the six is a ValidationError at /sort."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.list(sort=sort)
    assert caught.value.errors == [
        (
            "/sort",
            "must be one of: created, requests, tokens, prompt_tokens, completion_tokens, cost",
        )
    ]


def test_every_list_problem_is_reported(reg: Reg) -> None:
    """Bad count, offset, sort and window are reported together."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.list(count=0, offset=-1, sort="x", start="2026-11-01T00:00:00", end="never")
    assert sorted(path for path, _ in caught.value.errors) == [
        "/count",
        "/from",
        "/offset",
        "/sort",
        "/to",
    ]


def test_window_is_validated_for_every_sort(reg: Reg) -> None:
    """A naive or reversed window is an error even for the ``created`` sort."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.list(start="2026-11-02", end="2026-11-01")
    assert caught.value.errors == [("/from", "must not be later than to")]
    with pytest.raises(registry.ValidationError):
        reg.list(sort="created", start="2026-11-01T00:00:00")


# --- me and count ---------------------------------------------------------------------------


def test_me_needs_a_token(reg: Reg) -> None:
    """``me`` without a token is an AuthorizationError for list and count."""
    with pytest.raises(registry.AuthorizationError):
        reg.list(me=True)
    with pytest.raises(registry.AuthorizationError):
        reg.count(me=True)


def test_me_flag_must_be_boolean(reg: Reg) -> None:
    """``me`` given as a string is a ValidationError, not silently true or false."""
    with pytest.raises(registry.ValidationError) as caught:
        reg.list(me="yes")  # type: ignore[arg-type]
    assert caught.value.errors == [("/me", "must be true or false")]


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_me_lists_registered_or_used_by_the_caller(scene: Scene, user: str) -> None:
    """With me: Query LLMs the caller registered or used, sorted by the caller's own usage."""
    token = scene.tokens[user]
    start, end = WINDOWS[1]
    for sort in SORTS:
        got = scene.reg.list(sort=sort, me=True, token=token, start=text(start), end=text(end))
        assert got == scene.expected(sort, start, end, user), sort
        assert all_pages(scene.reg, 2, sort=sort, me=True, token=token) == scene.expected(
            sort, user=user
        )


def test_me_membership(scene: Scene) -> None:
    """alice's list holds what she registered (used or not) and what she used, nothing else."""
    n = scene.names
    alice = scene.tokens["alice"]
    used_by_alice = {e.name for e in scene.events if e.user == "alice"}
    assert n[6] not in used_by_alice  # registered by alice, never used
    assert n[1] not in used_by_alice  # never used by alice
    got = set(scene.reg.list(me=True, token=alice))
    assert got == {n[0], n[6]} | used_by_alice
    assert n[6] in got
    assert n[1] not in got
    assert n[7] not in got


def test_me_includes_usage_outside_the_window(reg: Reg) -> None:
    """A Query LLM the caller used only outside the window is still listed, with zero usage."""
    alice = reg.create_token("alice")
    name = reg.register(body()).name
    reg.record_usage(name, at="2026-10-01T00:00:00Z", token=alice)
    got = reg.list(sort="requests", me=True, token=alice, start="2026-11-01")
    assert got == [name]


def test_me_is_not_someone_elses_anonymous_usage(reg: Reg) -> None:
    """Usage recorded without a token belongs to no user's ``me``."""
    alice = reg.create_token("alice")
    name = reg.register(body()).name
    reg.record_usage(name)
    assert reg.list(me=True, token=alice) == []
    assert reg.count(me=True, token=alice) == 0


@pytest.mark.parametrize("user", ["alice", "bob", "carol"])
def test_count_me_equals_the_length_of_list_me(scene: Scene, user: str) -> None:
    """count(me=True) is how many names list(me=True) gives over all its pages."""
    token = scene.tokens.get(user) or scene.reg.create_token(user)
    expected = len(scene.expected("created", user=user))
    assert scene.reg.count(me=True, token=token) == expected
    assert len(all_pages(scene.reg, 3, me=True, token=token)) == expected
    assert {"alice": 4, "bob": 6, "carol": 0}[user] == expected


def test_count_is_the_number_registered(scene: Scene) -> None:
    """count() is how many Query LLMs are registered, whatever the token."""
    assert scene.reg.count() == 8
    assert scene.reg.count(token=scene.tokens["alice"]) == 8
    scene.reg.register(body(id="model/0"))  # already registered: no change
    assert scene.reg.count() == 8
    scene.reg.register(body(id="model/new"))
    assert scene.reg.count() == 9


def test_empty_registry(reg: Reg) -> None:
    """An empty registry lists nothing for every sort and counts 0."""
    for sort in SORTS:
        assert reg.list(sort=sort) == []
    assert reg.count() == 0
