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


def parse(value: Any) -> int:
    """RFC 3339 text (or an aware ``datetime``) as UTC microseconds since 1970."""
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
