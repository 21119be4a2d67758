"""Hostile input, generated: every call either works or raises a `RegistryError`, and a call
that raises writes nothing."""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import registry
from registry.registry import Registry
from tests.support.data import body

SQL = [
    "'; DROP TABLE usage_events; --",
    "name) OR 1=1 --",
    '" OR ""="',
    "x' UNION SELECT hash, user_id, 1 FROM tokens --",
    "1; DELETE FROM query_llms",
    "created DESC; DROP TABLE users",
    "requests, (SELECT 1)",
    "?",
    ":name",
    "%s",
    "qllm_' OR '1'='1",
]
EXAMPLES = 100  # per test that fuzzes everything at once
PER_ARGUMENT = 30  # for the tests that fuzz one argument (or two) at a time, per argument


def fuzz(examples: int) -> settings:
    """Hypothesis settings: ``examples`` calls, no deadline (the machine may be busy)."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


FUZZ, EACH = fuzz(EXAMPLES), fuzz(PER_ARGUMENT)

# --- strategies ---------------------------------------------------------------------------

any_char = st.characters(exclude_categories=())  # lone surrogates and control characters too
texts = st.one_of(
    st.text(any_char, max_size=30),
    st.sampled_from(SQL),
    st.text(
        st.characters(max_codepoint=0x1F) | st.sampled_from("\x7f\x85\u2028\ufeff"), min_size=1
    ),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "a\x00b", "", " ", "qllm_", "qllm_\ud800"]),
    st.integers(257, 200_000).map(lambda n: "x" * n),  # very long
    st.tuples(st.sampled_from(SQL), st.text(any_char, max_size=5)).map("".join),
)
huge_ints = st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**100, -1])
numbers = st.one_of(
    st.integers(),
    huge_ints,
    st.floats(),  # NaN, infinities, -0.0, subnormals
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, 5e-324]),
    st.decimals(places=12, allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("-Infinity"), Decimal("1e-999999")]),
)
times = st.one_of(
    texts,
    st.sampled_from(
        [
            "2026-11-01",
            "2026-11-01T00:00:00Z",
            "2026-11-01T00:00:00",  # no offset
            "2026-13-01T00:00:00Z",
            "2026-02-30",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "9999-12-31T23:59:59.9999999999Z",
            "1969-12-31T23:59:59Z",
            "2026-11-01T00:00:00+24:00",
            "2026-11-01T00:00:00.Z",
            "2026-11-01t00:00:00z",
            "\uff12\uff10\uff12\uff16-11-01",  # full-width digits
        ]
    ),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-23, minutes=-59))])),
    st.datetimes(),  # naive
    st.dates(),
    numbers,
)


def nest(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` levels of alternating lists and objects."""
    for level in range(depth):
        leaf = [leaf] if level % 2 else {"a": leaf}
    return leaf


scalars = st.one_of(st.none(), st.booleans(), numbers, texts, times, st.binary(max_size=10))
values = st.one_of(
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
        max_leaves=15,
    ),
    st.integers(50, 3000).map(nest),  # deep nesting
    st.tuples(st.just(1), st.just(2)),
    st.frozensets(st.integers(), max_size=3),
)
EVENT_ARGS = [
    "name", "token", "at", "request_id", "chat_prompt_tokens", "chat_cost",
    "embedding_completion_tokens", "embedding_cost",
]  # fmt: skip
BODY_KEYS = [
    "id", "mode", "select_top_logprobs", "frequency_penalty", "logit_bias",
    "max_completion_tokens", "presence_penalty", "reasoning_effort", "stop", "temperature",
    "top_p", "max_tokens", "min_p", "provider", "reasoning", "repetition_penalty", "top_a",
    "top_k", "verbosity", "models", "weight",
]  # fmt: skip
EVENT_KEYS = [
    "name", "at", "request_id", "chat_prompt_tokens", "chat_completion_tokens", "chat_cost",
    "embedding_prompt_tokens", "embedding_completion_tokens", "embedding_cost",
]  # fmt: skip
# Nested places where a body keeps objects: each gets hostile keys and values too.
NESTED = {
    "provider": ["order", "allow_fallbacks", "require_parameters", "data_collection", "only",
                 "ignore", "quantizations", "sort"],
    "reasoning": ["max_tokens", "effort", "enabled"],
    "weight": ["type", "weight", "base_weight", "min_weight", "max_weight"],
}  # fmt: skip


def changes(keys: list[str]) -> st.SearchStrategy[dict[Any, Any]]:
    """Some of ``keys`` (or hostile keys) set to hostile values."""
    return st.dictionaries(st.sampled_from(keys) | texts, values, max_size=4)


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    """A valid body with hostile changes, at the top or inside its objects; or any value."""
    if draw(st.integers(0, 4)) == 0:
        return draw(values)
    result: dict[Any, Any] = body(provider={"sort": "price"}, reasoning={"effort": "low"})
    result.update(draw(changes(BODY_KEYS)))
    for key, keys in NESTED.items():
        if isinstance(result.get(key), dict) and draw(st.booleans()):
            result[key] = {**result[key], **draw(changes(keys))}
    return result


@st.composite
def events(draw: st.DrawFn, name: str) -> Any:
    """A valid event for ``name`` with hostile changes; or any value."""
    if draw(st.integers(0, 5)) == 0:
        return draw(values)
    result: dict[Any, Any] = {"name": name, "chat_prompt_tokens": 1, "chat_cost": "0.5"}
    result.update(draw(changes(EVENT_KEYS)))
    return result


# --- the registry under attack ----------------------------------------------------------------


class Target:
    """A registry with one Query LLM, a user with a token, and a revoked token."""

    def __init__(self, path: Path) -> None:
        self.reg = Registry(path)
        self.name = self.reg.register(body()).name
        self.token = self.reg.create_token("alice")
        self.revoked = self.reg.create_token("bob")
        self.reg.revoke_token(self.revoked)
        self.reg.record_usage(self.name, token=self.token, request_id="first", chat_cost="1")

    def snapshot(self) -> str:
        """A digest of every row of every table."""
        return hashlib.sha256("\n".join(self.reg.db.conn.iterdump()).encode()).hexdigest()

    def attempt(self, call: Callable[[], Any]) -> bool:
        """Run ``call``: it works, or it raises a RegistryError and changes nothing (then True)."""
        before = self.snapshot()
        try:
            call()
        except registry.RegistryError:
            assert self.snapshot() == before, "a call that failed wrote something"
            assert not self.reg.db.conn.in_transaction
            return True
        return False


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One registry for all generated calls of this module (state only grows with successes)."""
    made = Target(tmp_path_factory.mktemp("hostile") / "registry.db")
    yield made
    made.reg.close()


def tokens(target: Target) -> st.SearchStrategy[Any]:
    """No token, a good one, a revoked one, or something hostile."""
    return st.one_of(st.none(), st.just(target.token), st.just(target.revoked), texts, values)


def names(target: Target) -> st.SearchStrategy[Any]:
    """The registered name, a well-formed unknown one, or something hostile."""
    unknown = st.text(string.ascii_letters + string.digits, min_size=22, max_size=22)
    return st.one_of(st.just(target.name), unknown, texts, values)


# --- the tests ---------------------------------------------------------------------------

SORTS = ["created", "requests", "tokens", "prompt_tokens", "completion_tokens", "cost"]


def mixed(
    data: st.DataObject, valid: dict[str, Any], hostile: dict[str, Any], bad: str
) -> dict[str, Any]:
    """Arguments: ``bad`` and maybe one other hostile, the others valid (so those get looked at)."""
    worse = (
        {bad, data.draw(st.sampled_from(sorted(hostile)))} if data.draw(st.booleans()) else {bad}
    )
    return {key: data.draw(hostile[key] if key in worse else valid[key]) for key in valid}


def windows(target: Target) -> dict[str, Any]:
    """Valid from/to values: the earlier ones for from, the later ones for to."""
    return {
        "start": st.sampled_from([None, "2026-11-01", "2026-11-01T05:30:00.25+01:00"]),
        "end": st.sampled_from([None, "2026-11-02T00:00:00Z", "2030-01-01T23:59:59.999999Z"]),
    }


@FUZZ
@given(data=st.data())
def test_hostile_bodies(target: Target, data: st.DataObject) -> None:
    """validate and register of generated bodies: a QueryLlm or a ValidationError, nothing else."""
    raw = data.draw(bodies())
    problems: list[tuple[str, str]] | None = None
    try:
        registry.validate(raw)
    except registry.ValidationError as exc:
        problems = exc.errors
    if problems is not None:
        assert problems
        assert all(isinstance(p, str) and isinstance(m, str) for p, m in problems)
    token = data.draw(st.sampled_from([None, target.token]) | tokens(target))
    target.attempt(lambda: target.reg.register(raw, token=token))


@pytest.mark.parametrize("bad", EVENT_ARGS)
@EACH
@given(data=st.data())
def test_hostile_single_events(target: Target, bad: str, data: st.DataObject) -> None:
    """record_usage with generated fields: recorded, or a RegistryError and nothing written."""
    valid = {
        "name": st.just(target.name),
        "token": st.sampled_from([None, target.token]),
        "at": st.sampled_from([None, "2026-11-01T10:00:00Z"]),
        "request_id": st.none() | st.uuids().map(str),
        "chat_prompt_tokens": st.integers(0, 10),
        "chat_cost": st.sampled_from([0, "0.000000001", 0.1, Decimal("2.5")]),
        "embedding_completion_tokens": st.integers(0, 10),
        "embedding_cost": st.just(0),
    }
    hostile = dict.fromkeys(valid, values) | {
        "name": names(target),
        "token": tokens(target),
        "at": times,
        "request_id": texts,
        "chat_cost": numbers | texts,
        "embedding_cost": numbers,
    }
    args = mixed(data, valid, hostile, bad)
    target.attempt(lambda: target.reg.record_usage(**args))


@FUZZ
@given(data=st.data())
def test_hostile_batches(target: Target, data: st.DataObject) -> None:
    """record_usage_many of generated batches (lists or generators): all, or nothing at all."""
    size = data.draw(st.integers(0, 3000))  # past the first chunk of 2,000 events, sometimes
    # The same good events every time (a repeat writes nothing), so the file stays small.
    good = {"name": target.name, "at": "2026-11-01T00:00:00Z", "chat_cost": "0.25"}
    batch = [good | {"request_id": f"good-{i}"} for i in range(size)]
    batch.insert(data.draw(st.integers(0, size)), data.draw(events(target.name)))
    as_generator = data.draw(st.booleans())
    token = data.draw(st.sampled_from([None, target.token]) | tokens(target))
    target.attempt(
        lambda: target.reg.record_usage_many(iter(batch) if as_generator else batch, token=token)
    )
    anything = data.draw(values)
    target.attempt(lambda: target.reg.record_usage_many(anything, token=token))


@pytest.mark.parametrize("bad", ["name", "metadata", "me", "token", "start", "end"])
@EACH
@given(data=st.data())
def test_hostile_metadata_queries(target: Target, bad: str, data: st.DataObject) -> None:
    """get with generated name, metadata, me, from, to and token: a body or a RegistryError."""
    valid = {
        "name": st.just(target.name),
        "metadata": st.just(True),
        "me": st.booleans(),
        "token": st.just(target.token),
        **windows(target),
    }
    hostile = {
        "name": names(target),
        "metadata": values,
        "me": values,
        "token": tokens(target),
        "start": times,
        "end": times,
    }
    args = mixed(data, valid, hostile, bad)
    target.attempt(lambda: target.reg.get(**args))


@pytest.mark.parametrize("bad", ["count", "offset", "sort", "me", "token", "start", "end"])
@EACH
@given(data=st.data())
def test_hostile_list_and_count(target: Target, bad: str, data: st.DataObject) -> None:
    """list and count with generated count, offset, sort, me, from, to: names or a RegistryError."""
    valid = {
        "count": st.integers(1, 1000),
        "offset": st.integers(0, 3),
        "sort": st.sampled_from(SORTS),
        "me": st.booleans(),
        "token": st.just(target.token),
        **windows(target),
    }
    hostile = {
        "count": huge_ints | st.integers(-5, 1005) | st.integers() | values,
        "offset": huge_ints | st.integers(-5, 10) | st.integers() | values,
        "sort": texts | values,
        "me": values,
        "token": tokens(target),
        "start": times,
        "end": times,
    }
    args = mixed(data, valid, hostile, bad)
    target.attempt(lambda: target.reg.list(**args))
    target.attempt(lambda: target.reg.count(me=args["me"], token=args["token"]))


@FUZZ
@given(sort=texts | values)
def test_hostile_sort_names(target: Target, sort: Any) -> None:
    """Any sort other than the six is a ValidationError naming /sort, SQL text included."""
    if isinstance(sort, str) and sort in SORTS:
        return
    with pytest.raises(registry.ValidationError) as caught:
        target.reg.list(sort=sort)
    assert [path for path, _ in caught.value.errors] == ["/sort"]


@FUZZ
@given(user=texts | values, token=texts | values)
def test_hostile_users_and_tokens(target: Target, user: Any, token: Any) -> None:
    """create_token and revoke_token with generated user ids and tokens: work or RegistryError."""
    if not target.attempt(lambda: target.reg.create_token(user)):
        # A user id that was accepted is stored as given.
        found = target.reg.db.conn.execute("SELECT 1 FROM users WHERE id = ?", [user]).fetchone()
        assert found == (1,)
    assert target.attempt(lambda: target.reg.revoke_token(token))


def test_tables_survive_the_sql_fragments(target: Target) -> None:
    """After everything above, every table is still there and the first event still counts."""
    for fragment in SQL:
        for call in (
            lambda f=fragment: target.reg.get(f),
            lambda f=fragment: target.reg.list(sort=f),
            lambda f=fragment: target.reg.record_usage(f),
            lambda f=fragment: target.reg.record_usage(target.name, token=f),
            lambda f=fragment: target.reg.get(target.name, metadata=True, start=f),
        ):
            assert target.attempt(call)
    tables = {row[0] for row in target.reg.db.conn.execute("SELECT name FROM sqlite_master")}
    assert {"users", "tokens", "query_llms", "usage_events", "usage_hourly"} <= tables
    first = target.reg.db.conn.execute("SELECT * FROM usage_events WHERE request_id = 'first'")
    assert first.fetchone() is not None


@pytest.mark.parametrize("cost", ["1e999999999", Decimal("1e999999999"), "-1E+1000000"])
def test_cost_with_a_huge_exponent_is_a_validation_error(target: Target, cost: Any) -> None:
    """A cost too large for the decimal context is a ValidationError, not decimal.Overflow."""
    assert target.attempt(lambda: target.reg.record_usage(target.name, chat_cost=cost))


def test_clock_values_far_from_now(target: Target) -> None:
    """Times at the edges of what datetime can hold are refused or accepted, never a crash."""
    edges: list[Any] = [datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)]
    edges += [datetime.max.replace(tzinfo=timezone(timedelta(hours=-23)))]
    for moment in edges:
        for call in (
            lambda m=moment: target.reg.record_usage(target.name, at=m),
            lambda m=moment: target.reg.get(target.name, metadata=True, start=m),
            lambda m=moment: target.reg.list(sort="cost", end=m),
        ):
            target.attempt(call)


@pytest.mark.parametrize("offset", [2**63 - 1, 2**63, 10**100])
def test_offsets_past_the_last_row_give_an_empty_page(target: Target, offset: int) -> None:
    """An offset beyond SQLite's largest integer is a valid offset past the end: an empty page."""
    assert target.reg.list(count=1) != []
    for sort in ("created", "requests"):
        assert target.reg.list(offset=offset, sort=sort) == []
