"""Credits, exactly: decimal text, ints, floats and `Decimal`s in, integer nano-credits inside.

A cost is credits from 0 to 10**6, kept as integer nano-credits (10**-9):
exact, rounded half-even to 9 places. A float is read by its shortest repr
(``0.1`` means one tenth); a JSON number (`registry.jsonin.JsonFloat`) by the
text it was written as, so that nothing is rounded twice: ``0.0000000035`` is
4 nano-credits, and ``0.12345678949999999999`` is 123456789, not the
123456790 of its float. `nano_credits` has fast paths
for the usual forms and a reference, `_decimal_nano`, that they always agree
with; `credits` turns nano-credits back into an exact `Decimal`.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

from registry.jsonin import JsonFloat
from registry.model import MAX_CREDITS_PER_EVENT, NANO


class CreditError(ValueError):
    """A value that is not a number of credits in range; the message says why."""


def credits(nano: int) -> Decimal:
    """Nano-credits as an exact Decimal of credits: 1000000000 is Decimal('1')."""
    return Decimal(nano) / NANO


_NINE_PLACES = Decimal("1e-9")
_MAX_NANO = MAX_CREDITS_PER_EVENT * NANO


def nano_credits(value: Any) -> int:
    """Credits as integer nano-credits: exact, rounded half-even to 9 places (spec 6).

    Decimal text (JSON numbers' text too) and floats usually take a fast path
    (`_text_nano`, `_near_nano`); what it does not read goes to `_decimal_nano`, the
    reference, which the fast paths always agree with (tests: the fast-vs-reference
    properties).
    """
    cls = value.__class__
    if (
        cls is JsonFloat
        and 0 <= value <= MAX_CREDITS_PER_EVENT
        and _near_nano(value)
        and float.__repr__(value) == value.text
    ):
        # The usual JSON number is the shortest text of its float (what json.dumps and
        # JavaScript write): reading that text exactly is reading the float's repr, which
        # the float's fast path does (below), without parsing the text again.
        nano = round(value * 1e9)
    elif cls is str or cls is JsonFloat:
        text = value if cls is str else value.text
        nano = _text_nano(text)
        if nano is None:
            nano = _decimal_nano(text)
    elif cls is int:
        nano = value * NANO
    elif cls is float:
        if 0 <= value <= MAX_CREDITS_PER_EVENT and _near_nano(value):
            nano = round(value * 1e9)
        elif not math.isfinite(value):
            raise CreditError(f"must be a number of credits, not {value}")
        else:
            text = repr(value)  # the shortest repr: 0.1 means one tenth
            nano = _text_nano(text)
            if nano is None:
                nano = _decimal_nano(text)
    elif cls is Decimal:
        nano = _decimal_nano(value)
    else:
        raise CreditError("must be a number of credits")
    if not 0 <= nano <= _MAX_NANO:
        raise CreditError(f"must be between 0 and {MAX_CREDITS_PER_EVENT} credits")
    return int(nano)


def _near_nano(value: float) -> bool:
    """Whether ``round(value * 1e9)`` is exactly what reading ``repr(value)`` would give.

    For 0 <= value <= 1e6, the shortest repr is within half an ulp (1.2e-10) of
    the float, and the product within 0.125 of its exact value; so when the
    product lies within 0.001 of an integer, the repr scaled by 1e9 lies within
    0.25 of that integer, and rounding it half-even to 9 places gives that
    integer. (Tested against the repr path.)
    """
    scaled = value * 1e9
    return abs(scaled - round(scaled)) < 1e-3


# 10**k for the shifts of `_text_nano`; its bounds keep k below 60.
_POWERS: tuple[int, ...] = tuple(10**k for k in range(60))
_MAX_DIGITS = 40  # longer text goes to the reference (and int() of it stays cheap)


def _text_nano(text: str) -> int | None:  # noqa: PLR0911 - a chain of bail-outs
    """Decimal text in nano-credits by splitting digits, exactly as `_decimal_nano` reads
    it: ``12``, ``+0.5``, ``.5``, ``5.``, ``1.25e-7``, any number of places (rounded
    half-even to 9). None for anything else (signs other than ``+``, non-ASCII digits,
    very long text, big exponents): the caller then asks the reference."""
    whole, dot, fraction = text.partition(".")
    if (  # the usual form, such as 0.000123: no sign, no exponent, at most nine places
        dot
        and 0 < len(fraction) <= 9
        and len(whole) <= 7
        and text.isascii()
        and whole.isdigit()
        and fraction.isdigit()
    ):
        return int(whole) * NANO + int(fraction) * _POWERS[9 - len(fraction)]
    if not text.isascii() or len(text) > _MAX_DIGITS:
        return None
    if text[:1] == "+":
        text = text[1:]
    mantissa, e, exponent = text.partition("e")
    if not e:
        mantissa, e, exponent = text.partition("E")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    if not digits.isdigit():  # also refuses "", "-1", "1.2.3", " 1", "1_0"
        return None
    places = len(fraction)
    if e:
        sign = exponent[:1]
        magnitude = exponent[1:] if sign in ("+", "-") else exponent
        if not magnitude.isdigit() or len(magnitude) > 2:
            return None
        places = places - int(magnitude) if sign != "-" else places + int(magnitude)
    if places <= 9:
        if len(digits) - places > 7:  # 10**7 credits or more: the reference says why
            return None
        return int(digits) * _POWERS[9 - places]
    if places >= 50:
        return None
    # More than 9 places: divide away the extra ones, ties to the even nano-credit.
    unit = _POWERS[places - 9]
    nano, rest = divmod(int(digits), unit)
    if nano > _MAX_NANO:
        return None
    half = unit >> 1
    if rest > half or (rest == half and nano & 1):
        nano += 1
    return nano


_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# The text of a cost as one pattern that Python and JSON Schema (ECMA-262) read alike:
# decimal text as `_decimal_nano` reads it, and a minus sign only before a zero (a
# negative cost is refused however small, `_decimal_nano`'s sign rule). Its size (at
# most MAX_CREDITS_PER_EVENT) is checked on the value: no pattern can for every exponent.
COST_PATTERN = r"(?!-[0-9.]*[1-9])" + _DECIMAL_TEXT.pattern


def _decimal_nano(value: str | Decimal) -> int:
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise CreditError("must be a number of credits, such as 0.0125")
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        raise CreditError("must be a number of credits") from None
    if not number.is_finite():
        raise CreditError(f"must be a number of credits, not {value}")
    # Negative before rounding: -0.0000000001 is refused, not rounded to 0.
    # The size bound also keeps the arithmetic below small.
    if number < 0 or number > 2 * MAX_CREDITS_PER_EVENT:
        raise CreditError(f"must be between 0 and {MAX_CREDITS_PER_EVENT} credits")
    with localcontext(prec=40):
        return int(number.quantize(_NINE_PLACES, ROUND_HALF_EVEN).scaleb(9))
