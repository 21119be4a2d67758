"""Usage over time (USAGE_SERIES.md): buckets, groups, filters, limits, on real files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import AuthenticationError, AuthorizationError, Registry, ValidationError, times
from registry import series as buckets
from tests.support.behaviour import Reg
from tests.support.data import AMOUNTS, COUNTERS, body

# each reg test runs on the library (SQLite), over HTTP and on PostgreSQL
pytestmark = pytest.mark.surfaces


@pytest.fixture
def three(reg: Reg) -> tuple[Reg, list[str], str]:
    """A registry with three Query LLMs (two share an upstream model) and alice's token."""
    names = [
        reg.register(body()).name,
        reg.register(body(mode="select_thinking")).name,
        reg.register(body(id="meta/llama")).name,
    ]
    return reg, names, reg.create_token("alice")


def totals(data: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    for bucket in data:
        for row in bucket["results"]:
            for key in COUNTERS:
                result[key] += row[key]
    return result


def spans(data: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(b["start"], b["end"]) for b in data]


# --- buckets -------------------------------------------------------------------------------


def test_days_clipped_at_both_ends(three: tuple[Reg, list[str], str]) -> None:
    reg, _, _ = three
    data = reg.usage_series("2026-11-01T10:30:00Z", "2026-11-03T05:00:00+02:00")
    assert spans(data) == [
        ("2026-11-01T10:30:00Z", "2026-11-02T00:00:00Z"),
        ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"),
        ("2026-11-03T00:00:00Z", "2026-11-03T03:00:00Z"),
    ]
    assert all(b["results"] == [] for b in data)  # empty buckets are present


def test_weeks_start_on_monday(reg: Reg) -> None:
    # 2026-11-01 is a Sunday: its week began Monday 2026-10-26.
    data = reg.usage_series("2026-11-01", "2026-11-17", bucket="week")
    assert spans(data) == [
        ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
        ("2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z"),
        ("2026-11-09T00:00:00Z", "2026-11-16T00:00:00Z"),
        ("2026-11-16T00:00:00Z", "2026-11-17T00:00:00Z"),
    ]
    for start, _ in spans(data)[1:]:
        assert datetime.fromisoformat(start).weekday() == 0


def test_months_of_28_to_31_days_and_the_year_end(three: tuple[Reg, list[str], str]) -> None:
    reg, names, _ = three
    ends = ["2025-12-31T23:59:59.999999Z", "2026-01-31T23:59:59.999999Z", "2026-02-28T23:00:00Z"]
    ends += ["2026-04-30T12:00:00Z", "2028-02-29T23:59:59Z"]
    reg.record_usage_many({"name": names[0], "at": at, "chat_cost": "0.1"} for at in ends)
    data = reg.usage_series("2025-12-01", "2028-03-01", bucket="month")
    assert len(data) == 27
    assert data[0]["start"] == "2025-12-01T00:00:00Z"
    assert data[1]["start"] == "2026-01-01T00:00:00Z"  # the year end
    assert data[2]["end"] == "2026-03-01T00:00:00Z"  # February: 28 days
    per_month = {b["start"][:7]: b["results"][0]["requests"] for b in data if b["results"]}
    assert per_month == {"2025-12": 1, "2026-01": 1, "2026-02": 1, "2026-04": 1, "2028-02": 1}
    lengths = {
        (datetime.fromisoformat(b["end"]) - datetime.fromisoformat(b["start"])).days for b in data
    }
    assert lengths == {28, 29, 30, 31}


def test_events_on_boundaries_count_once_in_the_later_bucket(
    three: tuple[Reg, list[str], str],
) -> None:
    reg, names, _ = three
    for at in ("2026-11-02T00:00:00Z", "2026-11-01T23:59:59.999999Z", "2026-11-03T00:00:00Z"):
        reg.record_usage(names[0], at=at, chat_prompt_tokens=1)
    data = reg.usage_series("2026-11-01", "2026-11-03")
    assert [[r["requests"] for r in b["results"]] for b in data] == [[1], [1]]
    # `to` is exclusive, `from` inclusive: the event at 11-03 00:00 is outside.
    hours = reg.usage_series("2026-11-01T23:00:00Z", "2026-11-02T01:00:00Z", bucket="hour")
    assert [[r["requests"] for r in b["results"]] for b in hours] == [[1], [1]]


def test_from_and_to_inside_one_bucket(three: tuple[Reg, list[str], str]) -> None:
    reg, names, _ = three
    for minute in (5, 20, 40, 55):
        reg.record_usage(names[0], at=f"2026-11-01T10:{minute:02d}:00Z", chat_cost="0.25")
    data = reg.usage_series("2026-11-01T10:10:00Z", "2026-11-01T10:50:00Z", bucket="month")
    assert spans(data) == [("2026-11-01T10:10:00Z", "2026-11-01T10:50:00Z")]
    assert data[0]["results"][0]["requests"] == 2
    assert data[0]["results"][0]["chat_cost"] == Decimal("0.5")


def test_offsets_are_converted_to_utc(three: tuple[Reg, list[str], str]) -> None:
    reg, names, _ = three
    reg.record_usage(names[0], at="2026-11-01T23:30:00Z")
    data = reg.usage_series("2026-11-02T00:00:00+01:00", "2026-11-02T02:00:00+01:00")
    assert spans(data) == [
        ("2026-11-01T23:00:00Z", "2026-11-02T00:00:00Z"),
        ("2026-11-02T00:00:00Z", "2026-11-02T01:00:00Z"),
    ]
    assert data[0]["results"][0]["requests"] == 1


def test_windows_across_1970(three: tuple[Reg, list[str], str]) -> None:
    reg, names, _ = three
    reg.record_usage(names[0], at="1970-01-01T00:00:00Z")  # the earliest time an event has
    for bucket in ("hour", "day", "week", "month"):
        data = reg.usage_series("1969-12-20T12:00:00Z", "1970-01-02", bucket=bucket)
        (holding,) = [b for b in data if b["results"]]
        assert holding["start"] <= "1970-01-01T00:00:00Z" < holding["end"], bucket
        assert holding["start"] == buckets.render(buckets.floor(0, bucket)) or bucket == "week"
    weeks = reg.usage_series("1969-12-20", "1970-01-20", bucket="week")
    assert [b["start"] for b in weeks][1:] == [
        "1969-12-22T00:00:00Z",
        "1969-12-29T00:00:00Z",
        "1970-01-05T00:00:00Z",
        "1970-01-12T00:00:00Z",
        "1970-01-19T00:00:00Z",
    ]


# --- groups and filters ----------------------------------------------------------------------


def test_groups_sorted_with_anonymous_as_null(three: tuple[Reg, list[str], str]) -> None:
    reg, names, token = three
    reg.record_usage(names[2], token=token, at="2026-11-01T01:00:00Z", chat_cost="1")
    reg.record_usage(names[0], at="2026-11-01T02:00:00Z", chat_cost="2")
    reg.record_usage(names[1], token=token, at="2026-11-01T03:30:00Z", chat_cost="3")
    data = reg.usage_series("2026-11-01", "2026-11-02", group_by=["user_id", "model"])
    rows = data[0]["results"]
    assert [(r["model"], r["user_id"]) for r in rows] == [
        ("meta/llama", "alice"),
        ("openai/gpt-4o", None),
        ("openai/gpt-4o", "alice"),
    ]
    assert list(rows[0]) == ["model", "user_id", *COUNTERS]
    by_name = reg.usage_series("2026-11-01", "2026-11-02", group_by="name")[0]["results"]
    assert [r["name"] for r in by_name] == sorted(names)


def test_name_filter_and_me(three: tuple[Reg, list[str], str]) -> None:
    reg, names, token = three
    reg.record_usage(names[0], token=token, at="2026-11-01T01:00:00Z")
    reg.record_usage(names[0], at="2026-11-01T01:00:00Z")
    reg.record_usage(names[1], token=token, at="2026-11-01T01:00:00Z")
    window = ("2026-11-01", "2026-11-02")
    assert totals(reg.usage_series(*window, names=[names[0]]))["requests"] == 2
    assert totals(reg.usage_series(*window, names=names[:2], me=True, token=token))["requests"] == 2
    assert totals(reg.usage_series(*window, names=[names[2]]))["requests"] == 0


@pytest.mark.library_only("an empty list has no form in a URL query: over HTTP it is absent")
def test_an_empty_name_list_selects_nothing(three: tuple[Reg, list[str], str]) -> None:
    reg, names, _ = three
    reg.record_usage(names[0], at="2026-11-01T01:00:00Z")
    assert totals(reg.usage_series("2026-11-01", "2026-11-02", names=[]))["requests"] == 0


def test_me_without_a_token_is_an_authorization_error(reg: Reg) -> None:
    with pytest.raises(AuthorizationError):
        reg.usage_series("2026-11-01", me=True)
    with pytest.raises(AuthenticationError):
        reg.usage_series("2026-11-01", token="not-a-token")


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"start": None}, "/from"),
        ({"start": "2026-11-01T00:00:00"}, "/from"),
        ({"end": "yesterday"}, "/to"),
        ({"end": "2026-11-01"}, "/from"),  # from == to: an empty window
        ({"end": "2026-10-01"}, "/from"),
        ({"bucket": "minute"}, "/bucket"),
        ({"bucket": "hour", "end": "2026-12-15"}, "/bucket"),
        ({"group_by": ["name", "colour"]}, "/group_by"),
        ({"group_by": [1]}, "/group_by"),
        ({"query_model": "x"}, "/query_model"),
        ({"names": ["not a name"]}, "/name"),
        ({"names": 7}, "/name"),
    ],
)
def test_bad_queries_name_the_field(reg: Reg, kwargs: dict[str, Any], path: str) -> None:
    query: dict[str, Any] = {"start": "2026-11-01", "end": "2026-11-03"} | kwargs
    with pytest.raises(ValidationError) as caught:
        reg.usage_series(**query)
    assert path in [p for p, _ in caught.value.errors]


def test_too_many_buckets_names_a_width_that_fits(reg: Reg) -> None:
    with pytest.raises(ValidationError) as caught:
        reg.usage_series("2026-01-01", "2026-03-01", bucket="hour")
    (path, message), *_ = caught.value.errors
    assert path == "/bucket"
    assert "1416 hour buckets" in message
    assert "bucket=day" in message
    assert len(reg.usage_series("2026-01-01", "2026-02-11T16:00:00Z", bucket="hour")) == 1000
    with pytest.raises(ValidationError, match="bucket=month"):
        reg.usage_series("2000-01-01", "2026-01-01", bucket="day")
    with pytest.raises(ValidationError, match="shorter window"):
        reg.usage_series("1900-01-01", "2026-01-01", bucket="month")


def test_to_defaults_to_now(three: tuple[Reg, list[str], str]) -> None:
    reg, names, _ = three
    reg.record_usage(names[0])
    start = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    data = reg.usage_series(start, bucket="hour")
    assert totals(data)["requests"] == 1
    assert 2 <= len(data) <= 4


# --- properties: against the metadata totals and a brute-force sum over the raw events --------

HOUR = 3_600_000_000
BASE = buckets.floor(1_793_491_200_000_000, "month")  # 2026-11-01 00:00 UTC
SPAN = 70 * 24 * HOUR

_events = st.lists(
    st.tuples(
        st.integers(0, 2),  # which Query LLM
        st.sampled_from([None, "alice", "bob"]),
        st.one_of(
            st.integers(0, SPAN),
            st.integers(0, SPAN // HOUR).map(lambda h: h * HOUR),  # on hour boundaries
            st.integers(-2 * HOUR, 2 * HOUR),  # near an edge of the window (see below)
        ),
        st.booleans(),  # near which edge
        st.integers(0, 1000),
        st.decimals(min_value=0, max_value=10, places=9),
        st.booleans(),  # recorded for the Query Model (when its Query LLM is a member)
    ),
    max_size=40,
)
_window = st.tuples(st.integers(-HOUR, SPAN + HOUR), st.integers(1, SPAN)).map(
    lambda w: (w[0], w[0] + w[1])
)
_groups = st.lists(
    st.sampled_from(["name", "query_model", "model", "user_id"]), unique=True, max_size=4
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("series")


_counter = iter(range(10**9))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=_events,
    window=_window,
    bucket=st.sampled_from(["hour", "day", "week", "month"]),
    group_by=_groups,
    only=st.one_of(st.none(), st.lists(st.integers(0, 2), unique=True)),
    me=st.booleans(),
    by_model=st.booleans(),
)
def test_buckets_sum_to_the_metadata_and_to_raw_sql(
    scratch: Path,
    events: list[tuple[int, str | None, int, bool, int, Decimal, bool]],
    window: tuple[int, int],
    bucket: str,
    group_by: list[str],
    only: list[int] | None,
    me: bool,
    by_model: bool,
) -> None:
    low, high = BASE + window[0], BASE + window[1]
    if buckets.bucket_count(low, high, bucket) > buckets.MAX_BUCKETS:
        bucket = "month"
    path = scratch / f"{next(_counter)}.db"
    with Registry(path) as reg:
        names = [
            reg.register(body()).name,
            reg.register(body(mode="select_thinking")).name,
            reg.register(body(id="meta/llama")).name,
        ]
        # An ensemble of the first two: its events are a subset of theirs.
        model = reg.register_model(
            {"models": [body(), body(mode="select_thinking")], "weight": {"type": "static"}}
        ).name
        tokens = {user: reg.create_token(user) for user in ("alice", "bob")}
        for which, user, offset, later, tokens_used, cost, for_model in events:
            # Small offsets are taken from an edge of the window, where the raw events count.
            at = offset if offset >= 2 * HOUR else (high if later else low) - BASE + offset
            event = {
                "name": names[which],
                "at": _render(BASE + max(0, at)),
                "chat_prompt_tokens": tokens_used,
                "chat_cost": cost,
            }
            if for_model and which < 2:
                event["query_model"] = model
            reg.record_usage_many([event], token=None if user is None else tokens[user])
        chosen = None if only is None else [names[i] for i in only]
        token = tokens["alice"] if me else None
        start, end = _render(low), _render(high)
        only_model = model if by_model else None
        data = reg.usage_series(start, end, bucket, group_by, chosen, only_model, me, token)

        query: dict[str, Any] = {"metadata": True, "me": me, "start": start, "end": end}
        expected: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
        if by_model:
            got = reg.get_model(model, **query, token=token)
            expected = {key: got[key] for key in COUNTERS}
        else:
            for name in names if chosen is None else chosen:
                got = reg.get(name, **query, token=token)
                for key in COUNTERS:
                    expected[key] += got[key]
        if not (by_model and chosen is not None):  # no total has both filters
            assert totals(data) == expected

    assert data[0]["start"] == _render(low, short=True)
    assert data[-1]["end"] == _render(high, short=True)
    conn = sqlite3.connect(path)
    try:
        for b in data:
            brute = _brute(conn, b, group_by, chosen, only_model, "alice" if me else None)
            assert b["results"] == brute
    finally:
        conn.close()


def _render(at: int, *, short: bool = False) -> str:
    return buckets.render(at) if short else buckets.render(at).replace("Z", "+00:00")


_KEYS = {
    "name": "q.name",
    "query_model": "e.query_model",
    "model": "q.model",
    "user_id": "e.user_id",
}


def _brute(
    conn: sqlite3.Connection,
    bucket: dict[str, Any],
    group_by: list[str],
    names: list[str] | None,
    query_model: str | None,
    user: str | None,
) -> list[dict[str, Any]]:
    """The bucket's results as one plain GROUP BY over the raw events in it."""
    keys = [k for k in _KEYS if k in group_by]
    select = ", ".join([*(_KEYS[k] for k in keys), "COUNT(*)", *(f"SUM(e.{a})" for a in AMOUNTS)])
    sql = (
        f"SELECT {select} FROM usage_events e JOIN query_llms q ON q.name = e.name"
        " WHERE e.at >= ? AND e.at < ?"
    )
    params: list[Any] = [_micros(bucket["start"]), _micros(bucket["end"])]
    if names is not None:
        sql += f" AND e.name IN ({', '.join('?' * len(names))})"
        params += names
    if query_model is not None:
        sql += " AND e.query_model = ?"
        params.append(query_model)
    if user is not None:
        sql += " AND e.user_id = ?"
        params.append(user)
    if keys:
        sql += " GROUP BY " + ", ".join(_KEYS[k] for k in keys)
    rows = []
    for row in conn.execute(sql, params):
        if row[len(keys)] == 0:
            continue  # no events: no group
        counters = dict(zip(COUNTERS, row[len(keys) :], strict=True))
        for cost in ("chat_cost", "embedding_cost"):
            counters[cost] = Decimal(counters[cost]) / 10**9
        rows.append(dict(zip(keys, row, strict=False)) | counters)
    return sorted(rows, key=lambda r: [(r[k] is not None, r[k] or "") for k in keys])


def _micros(text: str) -> int:
    return times.parse(text)


def test_times_at_the_edges_of_what_can_be_written(reg: Registry) -> None:
    """A ``to`` that is past 9999-12-31 once in UTC (a negative offset) is refused at /to
    (it was an OverflowError: a 500 over HTTP); ``from`` before year 1 likewise; the last
    microsecond of 9999 in UTC is a window's end like any other."""
    for start, end, path in (
        ("9999-12-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "/to"),
        ("0001-01-01T00:00:00+01:00", "0001-02-01T00:00:00Z", "/from"),
    ):
        with pytest.raises(ValidationError) as caught:
            reg.usage_series(start, end, "month")
        assert [p for p, _ in caught.value.errors] == [path]
        assert "once in UTC" in caught.value.errors[0][1]
    data = reg.usage_series("9999-12-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "month")
    assert [(d["start"], d["end"]) for d in data] == [
        ("9999-12-01T00:00:00Z", "9999-12-31T23:59:59.999999Z")
    ]


def test_the_last_microsecond_of_a_month_in_2300(reg: Registry) -> None:
    """An event at 2300-01-31T23:59:59.999999Z is January's, in a series to 2300-02-01
    (PostgreSQL keyed it as February, then failed with a KeyError: a 500 over HTTP)."""
    name = reg.register(body()).name
    reg.record_usage(name, at="2300-01-31T23:59:59.999999Z", chat_prompt_tokens=3)
    # From the middle of an hour: that hour's events are read raw, by their own `at`.
    for start in ("2300-01-31T23:30:00Z", "2299-12-31T23:00:00Z"):
        data = reg.usage_series(start, "2300-02-01T00:00:00Z", "month")
        assert [sum(r["requests"] for r in d["results"]) for d in data][-1] == 1
        assert data[-1]["start"] in (start, "2300-01-01T00:00:00Z")
