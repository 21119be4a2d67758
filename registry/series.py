"""Usage over time (USAGE_SERIES.md section 1): the query, and the buckets it asks for.

Pure Python, no SQL: `Series.of` checks a query and fixes its buckets; the
sums are computed by the store (`registry.store`). Buckets are aligned in UTC:
whole hours, days, ISO weeks (Monday 00:00) or calendar months; the first
and last are clipped to ``[from, to)``. Every width is a whole number of
hours, so each hour of the rollups falls in exactly one bucket.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from attrs import frozen

from registry import times
from registry.errors import ValidationError
from registry.naming import is_name

HOUR = 3_600_000_000  # microseconds
DAY = 24 * HOUR
WEEK = 7 * DAY
MONDAY = 4 * DAY  # 1970-01-01 was a Thursday: weeks start 4 days after the epoch
MAX_BUCKETS = 1000
# The fixed widths: (length, offset of an aligned boundary from the epoch).
FIXED = {"hour": (HOUR, 0), "day": (DAY, 0), "week": (WEEK, MONDAY)}
BUCKETS = ("hour", "day", "week", "month")
# The keys a series can be grouped by, in the order results are sorted by.
GROUPS = ("name", "query_model", "model", "user_id")


@frozen
class Series:
    """A checked query: the window ``[start, end)`` in UTC microseconds and how to cut it."""

    start: int
    end: int
    bucket: str
    group_by: tuple[str, ...]
    names: tuple[str, ...] | None
    query_model: str | None

    @classmethod
    def of(
        cls,
        start: Any,
        end: Any = None,
        bucket: Any = "day",
        group_by: Any = (),
        names: Any = None,
        query_model: Any = None,
    ) -> Series:
        problems: list[tuple[str, str]] = []
        low = _time(start, "/from", problems)
        high = times.now() if end is None else _time(end, "/to", problems)
        if bucket not in BUCKETS:
            problems.append(("/bucket", "must be one of: " + ", ".join(BUCKETS)))
        keys = _strings(group_by, "/group_by", problems)
        for key in keys or ():
            if key not in GROUPS:
                problems.append(("/group_by", f"{key!r} is not one of: " + ", ".join(GROUPS)))
        chosen = None if names is None else _strings(names, "/name", problems)
        for name in chosen or ():
            if not is_name(name):
                problems.append(("/name", f"{name!r} is not a Query LLM name (22 base62)"))
        if query_model is not None and not is_name(query_model):
            problems.append(
                ("/query_model", f"{query_model!r} is not a Query Model name (22 base62)")
            )
        if low is not None and high is not None and low >= high:
            problems.append(("/from", "must be earlier than to"))
        if problems:
            raise ValidationError(problems)
        assert low is not None
        assert high is not None
        count = bucket_count(low, high, bucket)
        if count > MAX_BUCKETS:
            fits = [w for w in BUCKETS if bucket_count(low, high, w) <= MAX_BUCKETS]
            advice = f"use bucket={fits[0]} or a shorter window" if fits else "use a shorter window"
            raise ValidationError.one(
                "/bucket", f"{count} {bucket} buckets is more than {MAX_BUCKETS}: {advice}"
            )
        ordered = tuple(k for k in GROUPS if k in set(keys or ()))
        chosen_names = None if chosen is None else tuple(chosen)
        return cls(low, high, str(bucket), ordered, chosen_names, query_model)

    def buckets(self) -> list[tuple[int, int]]:
        """The buckets' ``[start, end)``, in order, the first and last clipped to the window."""
        result = []
        at = self.start
        while at < self.end:
            following = min(following_boundary(at, self.bucket), self.end)
            result.append((at, following))
            at = following
        return result


def _time(value: Any, path: str, problems: list[tuple[str, str]]) -> int | None:
    if value is None:
        problems.append((path, "is required"))
        return None
    try:
        return times.parse(value)
    except times.TimeError as exc:
        problems.append((path, str(exc)))
        return None


def _strings(value: Any, path: str, problems: list[tuple[str, str]]) -> list[str] | None:
    """A string or an iterable of strings as a list (one string is a list of one)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, bytes | dict):
        items = list(value)
        if all(isinstance(item, str) for item in items):
            return list(dict.fromkeys(items))
    problems.append((path, "must be a string or a list of strings"))
    return None


def floor(at: int, bucket: str) -> int:
    """The start of the bucket of width ``bucket`` that holds ``at``."""
    if bucket == "month":
        moment = times.EPOCH + timedelta(microseconds=at)
        return times.micros(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    width, offset = FIXED[bucket]
    return at - (at - offset) % width  # Python's % is a floor: right before 1970 too


def following_boundary(at: int, bucket: str) -> int:
    """The first bucket boundary after ``at``."""
    if bucket == "month":
        first = times.EPOCH + timedelta(microseconds=floor(at, bucket))
        try:
            if first.month == 12:
                return times.micros(first.replace(year=first.year + 1, month=1))
            return times.micros(first.replace(month=first.month + 1))
        except ValueError:  # past year 9999: no later boundary can be written
            return 2**63 - 1
    return floor(at, bucket) + FIXED[bucket][0]


def is_partial(start: int, end: int, bucket: str) -> bool:
    """Whether the bucket ``[start, end)`` of a series was clipped by its window: a week
    from a Sunday, a day cut at noon. Charts mark such a bucket, whose total covers less
    time than its neighbours'."""
    return start != floor(start, bucket) or end != following_boundary(start, bucket)


def month_index(at: int) -> int:
    """Months since year 0 of the month holding ``at`` (the key SQL groups months by)."""
    moment = times.EPOCH + timedelta(microseconds=at)
    return moment.year * 12 + moment.month - 1


def bucket_count(start: int, end: int, bucket: str) -> int:
    """How many buckets ``[start, end)`` spans, without listing them."""
    if bucket == "month":
        return month_index(end - 1) - month_index(start) + 1
    width, _ = FIXED[bucket]
    return (floor(end - 1, bucket) - floor(start, bucket)) // width + 1


def render(at: int) -> str:
    """A bucket boundary as RFC 3339 text: seconds, with a fraction only when there is one."""
    # isoformat, not strftime's %Y, which writes year 189 as "189" (see times.render).
    return (times.EPOCH.replace(tzinfo=None) + timedelta(microseconds=at)).isoformat() + "Z"


def parse_rendered(text: str) -> datetime:
    """The inverse of `render`, for surfaces that draw dates."""
    return times.EPOCH + timedelta(microseconds=times.parse(text))
