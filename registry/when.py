"""Times as people type them on a command line, resolved to RFC 3339 in UTC.

The library and the HTTP API take RFC 3339 only (`registry.times`); the command line also
takes a few relative and calendar forms, and turns each into RFC 3339 text before it
calls the library. This module is that grammar, all of it (every form in UTC):

=====================  ===================================================================
``2026-11-01T09:00Z``  RFC 3339 with its offset (``Z``, ``+01:00``): given on unchanged
``2026-11-01``         that day at 00:00 UTC: given on unchanged (RFC 3339's bare date)
``now``                the moment the command started
``today``              00:00 UTC of the current day; ``yesterday``: the day before
``-7d``                seven days before now; units ``h`` (hours), ``d`` (days), ``w`` (weeks)
``2026-W47``           Monday 00:00 UTC of that ISO week
``2026-11``            the first of that month, 00:00 UTC
=====================  ===================================================================

and, for a window, ``--last 7d``: from seven days before now until now (`last`).
Everything else is refused with a message that lists these forms (`FORMS`).
"""

from __future__ import annotations

import re
from datetime import date

from registry import times

# The forms, as a help text and an error message say them.
FORMS = (
    "2026-11-01 (midnight UTC), 2026-11-01T09:00:00Z (an offset is required), "
    "2026-W47 (an ISO week, from Monday), 2026-11 (a month), today, yesterday, now, "
    "or a duration back from now: -7d, -24h, -2w"
)
UNITS = {"h": 3_600_000_000, "d": 86_400_000_000, "w": 7 * 86_400_000_000}
_DAY = UNITS["d"]
_AGO = re.compile(r"-([0-9]{1,7})([hdw])")
_SPAN = re.compile(r"([0-9]{1,7})([hdw])")
_WEEK = re.compile(r"([0-9]{4})-[Ww]([0-9]{2})")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
# RFC 3339 text starts with a date: its own rules (`registry.times`) say what is wrong.
_RFC3339_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class WhenError(ValueError):
    """Text that is none of the forms above; the message says which forms there are."""


def resolve(text: str, now: int) -> str:
    """``text`` as RFC 3339 text in UTC, ``now`` (UTC microseconds) being the present.

    RFC 3339 text is returned as it was given (the library reads it); the other forms
    become the instant they name, written by `registry.times.render`."""
    given = text.strip()
    lowered = given.lower()
    if lowered == "now":
        return times.render(now)
    if lowered in ("today", "yesterday"):
        midnight = now - now % _DAY
        return times.render(midnight - (_DAY if lowered == "yesterday" else 0))
    ago = _AGO.fullmatch(given)
    if ago is not None:
        return _checked(now - span(given[1:]), text)
    week = _WEEK.fullmatch(given)
    if week is not None:
        try:
            monday = date.fromisocalendar(int(week.group(1)), int(week.group(2)), 1)
        except ValueError:
            raise WhenError(f"{text!r} is not an ISO week of its year") from None
        return _day(monday)
    month = _MONTH.fullmatch(given)
    if month is not None:
        try:
            first = date(int(month.group(1)), int(month.group(2)), 1)
        except ValueError:
            raise WhenError(f"{text!r} is not a month") from None
        return _day(first)
    if _RFC3339_START.match(given):
        try:
            times.parse(given)
        except times.TimeError as exc:
            raise WhenError(str(exc)) from None
        return given
    raise WhenError(f"{text!r} is not a time: use {FORMS}")


def span(text: str) -> int:
    """A duration such as ``7d`` (``h``, ``d`` or ``w``) in microseconds."""
    matched = _SPAN.fullmatch(text.strip())
    if matched is None:
        raise WhenError(f"{text!r} is not a duration: use a number and h, d or w, such as 7d")
    count, unit = matched.groups()
    if int(count) == 0:
        raise WhenError(f"{text!r} is an empty duration: use 1 or more")
    return int(count) * UNITS[unit]


def last(text: str, now: int) -> tuple[str, str]:
    """The window ``--last 7d`` names: (from, to) as RFC 3339, to being now."""
    return _checked(now - span(text), text), times.render(now)


def _day(day: date) -> str:
    return day.isoformat() + "T00:00:00Z"


def _checked(moment: int, text: str) -> str:
    if moment < times.FIRST:
        raise WhenError(f"{text!r} reaches back before 0001-01-01")
    return times.render(moment)
