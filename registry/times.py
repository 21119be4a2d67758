"""Times: RFC 3339 text in, integer UTC microseconds inside (spec sections 5 to 7).

Rules, all here: a date-time needs an offset (``Z`` or ``+01:00``) and is
converted to UTC; a bare date (``2026-11-01``) is that day's midnight UTC;
anything else, a naive date-time included, is an error. Fractions finer than
a microsecond are truncated. ``created`` and other times are written back as
``2026-11-25T08:48:53.120000Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dateutil.parser import isoparse

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DAY = 86_400_000_000
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


class TimeError(ValueError):
    """A time that breaks the rules above; the message says which."""


# The fast path's memory: ``YYYY-MM-DDTHH`` + offset -> that hour's first microsecond in
# UTC, as `parse_reference` computes it. Usage logs hold a few distinct hours per thousand
# events, so most times cost a few lookups. (Tables, not int(): a dict lookup both checks
# and converts two digits, several times faster than int() on this hot path.)
_HOURS: dict[str, int] = {}
_HOURS_KEPT = 4096  # then forgotten at once: a bounded cache with no bookkeeping per hit
_MINUTES = {f"{n:02}": n * 60_000_000 for n in range(60)}
_SECONDS = {f"{n:02}": n * 1_000_000 for n in range(60)}
_MILLIS = {f"{n:03}": n * 1000 for n in range(1000)}
_HOUR_DIGITS = frozenset(f"{n:02}" for n in range(24))
_SCALE = (0, 100_000, 10_000, 1000, 100, 10, 1)  # a fraction of n digits, in microseconds


def parse(value: Any) -> int:  # noqa: PLR0911, PLR0912 - one straight path, many bail-outs
    """RFC 3339 text (or an aware ``datetime``) as UTC microseconds since 1970.

    A fast path reads the usual shape, ``YYYY-MM-DDTHH:MM:SS[.fraction]`` with ``Z`` or
    ``+hh:mm``, from the cached parse of its hour; everything else, errors included,
    goes to `parse_reference`, which the fast path always agrees with (property-tested
    in tests/test_fast_parse.py).
    """
    if value.__class__ is str and value.isascii():
        last = value[-1:]
        if last == "Z" or last == "z":  # noqa: PLR1714 - two compares beat a tuple here
            offset, end = last, len(value) - 1
        elif value[-3:-2] == ":" and value[-6:-5] in ("+", "-"):
            offset, end = value[-6:], len(value) - 6
            if offset[1:3] not in _HOUR_DIGITS or offset[4:] not in _MINUTES:
                return parse_reference(value)
        else:
            return parse_reference(value)
        minute = _MINUTES.get(value[14:16])
        second = _SECONDS.get(value[17:19])
        if (
            minute is not None
            and second is not None
            and value[13:14] == ":"
            and value[16:17] == ":"
            and value[11:13] in _HOUR_DIGITS
        ):
            if end == 19:
                micro = 0
            elif end > 20 and value[19] == ".":
                fraction = value[20:end]
                if end == 23:
                    micro = _MILLIS.get(fraction, -1)
                elif fraction.isdigit():  # ASCII: checked above
                    micro = int(fraction[:6]) * _SCALE[min(end - 20, 6)]  # finer: cut
                else:
                    micro = -1
                if micro < 0:
                    return parse_reference(value)
            else:
                return parse_reference(value)
            key = value[:13] + offset
            hour = _HOURS.get(key)
            if hour is None:
                try:
                    hour = parse_reference(key[:13] + ":00:00" + offset)
                except TimeError:  # the message must quote the whole value
                    return parse_reference(value)
                if len(_HOURS) >= _HOURS_KEPT:
                    _HOURS.clear()
                _HOURS[key] = hour
            return hour + minute + second + micro
    return parse_reference(value)


def parse_reference(value: Any) -> int:
    """`parse` read by the book: the pattern, then the standard library (and dateutil for
    the forms ``fromisoformat`` does not read). Every error of `parse` comes from here."""
    if value.__class__ is not str:
        if not isinstance(value, datetime):
            raise TimeError("must be an RFC 3339 date-time string")
        if value.utcoffset() is None:
            raise TimeError("must be timezone-aware")
        return micros(value)
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        if _DATE.fullmatch(value):
            try:
                day = date.fromisoformat(value)
            except ValueError:
                raise TimeError(f"is not a valid date: {value!r}") from None
            return (day.toordinal() - 719_163) * _DAY  # 719163 = date(1970, 1, 1).toordinal()
        raise TimeError(f"must be an RFC 3339 date-time such as 2026-11-01T00:00:00Z: {value!r}")
    if match.lastindex is None:  # the offset group did not take part
        raise TimeError(f"needs a UTC offset, such as Z or +01:00: {value!r}")
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


def micros(moment: datetime) -> int:
    """An aware ``datetime`` as integer microseconds since 1970 UTC."""
    return (moment - EPOCH) // _MICROSECOND


def now() -> int:
    return micros(datetime.now(UTC))


def render(value: int) -> str:
    """UTC microseconds as RFC 3339 text with a ``Z`` and six fraction digits."""
    return f"{EPOCH + timedelta(microseconds=value):%Y-%m-%dT%H:%M:%S.%fZ}"
