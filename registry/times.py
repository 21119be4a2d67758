"""Times: RFC 3339 text in, integer UTC microseconds inside (spec sections 5 to 7).

Rules, all here: a date-time needs an offset (``Z`` or ``+01:00``) and is
converted to UTC; a bare date (``2026-11-01``) is that day's midnight UTC;
anything else, a naive date-time included, is an error. Hours are 00 to 23
(``24:00:00`` is refused, as RFC 3339 refuses it). A leap second,
``23:59:60`` in UTC (``15:59:60-08:00`` is the same second), is read as
``23:59:59.999999`` of that day: it stays in its day, its hour and its minute,
and after every other time of them; second 60 at any other time of day is
refused. Fractions finer than a microsecond are truncated. A time must fall
between 0001-01-01 and 9999-12-31 once converted to UTC (`FIRST`, `LAST`): the
times that can be written back. ``created`` and other times are written back as
``2026-11-25T08:48:53.120000Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dateutil.parser import isoparse

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The times that can be written back (`render`, four-digit years): from 0001-01-01 to
# 9999-12-31 in UTC. A time given with an offset can fall outside once converted
# (9999-12-31T23:59:59-01:00 is in year 10000 in UTC): refused, since every answer that
# names it (a series' last bucket, a window's end) could not be written.
FIRST = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // _MICROSECOND
LAST = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // _MICROSECOND
_DAY = 86_400_000_000
# The text of a time: a date, a clock (separated by T, t or a space) and an offset.
_DATE_TEXT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_CLOCK_TEXT = r"[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
_OFFSET_TEXT = r"[Zz]|[+-][0-9]{2}:[0-9]{2}"
# What `parse` reads, as one pattern that Python and JSON Schema (ECMA-262) read alike:
# a date-time with its offset, or a bare date. It is the rule's shape, made of the same
# pieces; the numbers in it (month 13, hour 25, 30 February) are checked on the value.
PATTERN = f"{_DATE_TEXT}(?:{_CLOCK_TEXT}(?:{_OFFSET_TEXT}))?"
_DATE = re.compile(_DATE_TEXT)
# `_CLOCK_TEXT` with its hour, second and fraction named, for the reference's checks.
_DATE_TIME = re.compile(
    f"{_DATE_TEXT}[Tt ](?P<hour>[0-9]{{2}}):[0-9]{{2}}:(?P<second>[0-9]{{2}})"
    f"(?P<fraction>\\.[0-9]+)?(?P<offset>{_OFFSET_TEXT})?"
)
_LAST_SECOND = _DAY - 1_000_000  # 23:59:59 of a day, in microseconds


class TimeError(ValueError):
    """A time that breaks the rules above; the message says which."""


# The fast path: one strict pattern for the usual shape, and the parse of each hour
# (``YYYY-MM-DDTHH`` + offset -> its first microsecond in UTC, as `parse_reference` computes
# it) kept for the next time in that hour. Usage logs hold a few distinct hours per thousand
# events, so most times cost one match and a few lookups. Hour 24, second 60 and odd
# offsets do not match it: they are the reference's to accept or refuse.
_USUAL = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ](?:[01][0-9]|2[0-3])):([0-5][0-9]):([0-5][0-9])"
    r"(?:\.([0-9]+))?([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_HOURS: dict[str, int] = {}
_HOURS_KEPT = 4096  # then forgotten at once: a bounded cache with no bookkeeping per hit
# Two digits to microseconds: a lookup is several times cheaper than int() here.
_MINUTES = {f"{n:02}": n * 60_000_000 for n in range(60)}
_SECONDS = {f"{n:02}": n * 1_000_000 for n in range(60)}
_SCALE = (0, 100_000, 10_000, 1000, 100, 10, 1)  # a fraction of n digits, in microseconds


def parse(value: Any) -> int:
    """RFC 3339 text (or an aware ``datetime``) as UTC microseconds since 1970.

    The usual shape, ``YYYY-MM-DDTHH:MM:SS[.fraction]`` with ``Z`` or ``+hh:mm``, is read
    from the cached parse of its hour; everything else, errors included, goes to
    `parse_reference`, which this always agrees with (a property test holds them together).
    """
    if value.__class__ is str:
        usual = _USUAL.fullmatch(value)
        if usual is not None:
            head, minute, second, fraction, offset = usual.groups()
            key = head + offset
            hour = _HOURS.get(key)
            if hour is None:
                try:
                    hour = parse_reference(head + ":00:00" + offset)
                except TimeError:  # such as 2026-02-30: the message quotes the whole value
                    return parse_reference(value)
                if len(_HOURS) >= _HOURS_KEPT:
                    _HOURS.clear()
                _HOURS[key] = hour
            hour += _MINUTES[minute] + _SECONDS[second]
            if fraction is None:
                moment = hour
            elif len(fraction) == 6:  # microseconds, as most logs write them: a third of the cost
                moment = hour + int(fraction)
            else:  # finer than a microsecond: cut, as the reference does
                moment = hour + int(fraction[:6]) * _SCALE[min(len(fraction), 6)]
            # An hour that starts in range can end past LAST (offsets of half hours); the
            # start of one is never before FIRST unless its hour is (refused above).
            if moment <= LAST:
                return moment
    return parse_reference(value)


def parse_reference(value: Any) -> int:
    """`parse` read by the book: the pattern, then the standard library (and dateutil for
    the forms ``fromisoformat`` does not read). Every error of `parse` comes from here."""
    if value.__class__ is not str:
        if not isinstance(value, datetime):
            raise TimeError("must be an RFC 3339 date-time string")
        if value.utcoffset() is None:
            raise TimeError("must be timezone-aware")
        return _in_range(micros(value), value.isoformat())
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        if _DATE.fullmatch(value):
            try:
                day = date.fromisoformat(value)
            except ValueError:
                raise TimeError(f"is not a valid date: {value!r}") from None
            return (day.toordinal() - 719_163) * _DAY  # 719163 = date(1970, 1, 1).toordinal()
        raise TimeError(f"must be an RFC 3339 date-time such as 2026-11-01T00:00:00Z: {value!r}")
    if match.group("offset") is None:
        raise TimeError(f"needs a UTC offset, such as Z or +01:00: {value!r}")
    if match.group("hour") > "23":
        raise TimeError(f"is not a valid date-time (hours are 00 to 23): {value!r}")
    if match.group("second") == "60":
        return _in_range(_leap_second(value, match), value)
    return _in_range(_read(value), value)


def _read(value: str) -> int:
    try:
        # fromisoformat is fast and reads the common forms; isoparse reads the
        # rest that the pattern allows (lower-case t and z).
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = isoparse(value)
        except (ValueError, OverflowError):
            raise TimeError(f"is not a valid date-time: {value!r}") from None
    return (parsed - EPOCH) // _MICROSECOND  # micros(), inline: this is the hot path


def _leap_second(value: str, match: re.Match[str]) -> int:
    """``23:59:60`` UTC (any fraction) as ``23:59:59.999999``; second 60 elsewhere: refused."""
    end = match.end("fraction") if match.group("fraction") else match.end("second")
    try:
        moment = _read(value[: match.start("second")] + "59" + value[end:])
    except TimeError:
        raise TimeError(f"is not a valid date-time: {value!r}") from None
    if moment % _DAY != _LAST_SECOND:
        raise TimeError(
            f"has second 60, a leap second, which can only be 23:59:60 in UTC: {value!r}"
        )
    return moment + 999_999


def _in_range(moment: int, value: str) -> int:
    if moment > LAST:
        raise TimeError(f"is past 9999-12-31T23:59:59.999999Z once in UTC: {value!r}")
    if moment < FIRST:
        raise TimeError(f"is before 0001-01-01T00:00:00Z once in UTC: {value!r}")
    return moment


def micros(moment: datetime) -> int:
    """An aware ``datetime`` as integer microseconds since 1970 UTC."""
    return (moment - EPOCH) // _MICROSECOND


def now() -> int:
    return micros(datetime.now(UTC))


def render(value: int) -> str:
    """UTC microseconds as RFC 3339 text with a ``Z`` and six fraction digits."""
    # Not strftime's %Y: the C library writes year 189 as "189", and RFC 3339 needs
    # four digits. A window may start in any year from 1, so every year is written.
    moment = EPOCH.replace(tzinfo=None) + timedelta(microseconds=value)
    return moment.isoformat(timespec="microseconds") + "Z"
