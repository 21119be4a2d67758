"""The command line's time grammar (`registry.when`), checked with hypothesis against the
calendar of the standard library."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import times, when
from registry.when import WhenError, last, resolve

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Present moments from 1900 to 9000, in UTC microseconds.
NOWS = st.integers(
    min_value=times.micros(datetime(1900, 1, 1, tzinfo=UTC)),
    max_value=times.micros(datetime(9000, 1, 1, tzinfo=UTC)),
)
DAY = 86_400_000_000


def moment(text: str) -> datetime:
    return times.EPOCH + timedelta(microseconds=times.parse(text))


@SETTINGS
@given(now=NOWS, count=st.integers(1, 9999), unit=st.sampled_from("hdw"))
def test_a_duration_back_is_now_minus_that_many_units(now: int, count: int, unit: str) -> None:
    hours = {"h": 1, "d": 24, "w": 168}[unit]
    got = resolve(f"-{count}{unit}", now)
    assert times.parse(got) == now - count * hours * 3_600_000_000
    start, end = last(f"{count}{unit}", now)
    assert (start, times.parse(end)) == (got, now)


@SETTINGS
@given(now=NOWS)
def test_now_today_and_yesterday(now: int) -> None:
    assert times.parse(resolve("now", now)) == now
    today = moment(resolve("today", now))
    present = times.EPOCH + timedelta(microseconds=now)
    assert today == datetime.combine(present.date(), datetime.min.time(), UTC)
    assert moment(resolve("Yesterday", now)) == today - timedelta(days=1)


@SETTINGS
@given(day=st.dates(min_value=date(1, 1, 8), max_value=date(9999, 12, 20)))
def test_an_iso_week_is_its_monday(day: date) -> None:
    year, week, _ = day.isocalendar()
    monday = moment(resolve(f"{year:04}-W{week:02}", 0))
    assert monday.date() == date.fromisocalendar(year, week, 1)
    assert monday.weekday() == 0
    assert monday.time() == datetime.min.time()
    assert monday.date() <= day < monday.date() + timedelta(days=7)


@SETTINGS
@given(day=st.dates())
def test_a_month_is_its_first_day(day: date) -> None:
    first = moment(resolve(f"{day.year:04}-{day.month:02}", 0))
    assert first.date() == day.replace(day=1)
    assert first.time() == datetime.min.time()


@SETTINGS
@given(at=st.datetimes(timezones=st.just(UTC)), now=NOWS)
def test_rfc3339_text_is_given_on_as_it_was(at: datetime, now: int) -> None:
    for text in (at.isoformat(), at.date().isoformat(), at.isoformat().replace("+00:00", "Z")):
        assert resolve(text, now) == text


@SETTINGS
@given(text=st.text(max_size=30), now=NOWS)
def test_anything_else_is_a_when_error_or_a_time(text: str, now: int) -> None:
    """Every text is either refused with `WhenError` or resolved to a time the library
    reads; resolving the result again gives it back (it is RFC 3339)."""
    try:
        got = resolve(text, now)
    except WhenError:
        return
    times.parse(got)
    assert resolve(got, now) == got


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-W54", "not an ISO week"),
        ("2025-W53", "not an ISO week"),  # 2025 has 52 weeks
        ("2026-13", "not a month"),
        ("-0d", "empty duration"),
        ("-7y", "not a time"),
        ("last week", "2026-W47"),  # the message lists the forms
        ("2026-11-01T00:00:00", "needs a UTC offset"),  # RFC 3339's own rule
        ("-9999999w", "before 0001-01-01"),
    ],
)
def test_what_is_refused_says_why(text: str, says: str) -> None:
    with pytest.raises(WhenError, match=says):
        resolve(text, times.now())


def test_the_help_lists_every_form() -> None:
    for form in ("-7d", "today", "yesterday", "now", "2026-W47", "2026-11 ", "offset"):
        assert form in when.FORMS + " "
    assert resolve("2026-W53", 0) == "2026-12-28T00:00:00Z"  # 2026 has 53 ISO weeks
