"""Numbers as people read them, for the terminal and the browser alike.

Costs are exact `Decimal`s, often with eight or more decimals; a person reads four
significant digits, so `shown` rounds for display (never to zero, and never fewer than
two decimals), while `exact` keeps every digit for a title, a data attribute or a CSV
cell. `aligned` lines a column up on its decimal point.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

SIGNIFICANT = 4  # digits a person compares at a glance
MIN_DECIMALS = 2  # cents, as money is read; a whole number keeps none


def exact(value: Decimal | int) -> str:
    """Every digit, no grouping, no exponent: for titles, data attributes and CSV."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return str(value)


def shown(value: Decimal | int) -> str:
    """The value for reading: integers grouped by thousands; a decimal rounded to
    `SIGNIFICANT` digits but at least `MIN_DECIMALS` decimals, trailing zeros dropped."""
    if not isinstance(value, Decimal):
        return f"{value:,}"
    if not value:
        return "0"
    magnitude = value.adjusted()  # the power of ten of the leading digit
    decimals = max(MIN_DECIMALS, SIGNIFICANT - 1 - magnitude)
    rounded = value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    text = f"{rounded:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def percent(fraction: Decimal | int) -> str:
    """A fraction as a percentage with one decimal: ``0.4123`` is ``41.2%``."""
    return f"{Decimal(fraction) * 100:.1f}%"


def point(text: str) -> tuple[str, str]:
    """A number's text cut at its decimal point: ``("1,234", ".5")``, ``("12", "")``."""
    whole, dot, fraction = text.partition(".")
    return whole, dot + fraction


def aligned(texts: Sequence[str]) -> list[str]:
    """``texts`` padded so that their decimal points (or their ends, for whole numbers)
    line up in one column; every result has the same length."""
    parts = [point(text) for text in texts]
    left = max((len(whole) for whole, _ in parts), default=0)
    right = max((len(fraction) for _, fraction in parts), default=0)
    return [whole.rjust(left) + fraction.ljust(right) for whole, fraction in parts]
