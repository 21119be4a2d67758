"""Usage event values: exact costs and the event row, property-tested."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from registry import ValidationError
from registry.credits import CreditError, nano_credits
from registry.events import row_of as usage_values

NAME = "2z1WguyRTWosC3bkQiq3PW"


def reference(value: object) -> int:
    """Spec 6 read literally: the decimal (floats by their shortest repr), half-even, 9 places."""
    text = repr(value) if isinstance(value, float) else str(value)
    return int(Decimal(text).quantize(Decimal("1e-9"), ROUND_HALF_EVEN).scaleb(9))


@settings(max_examples=3000, deadline=None)
@given(st.floats(min_value=0, max_value=1_000_000, allow_nan=False))
@example(0.1)
@example(1.0000000005)
@example(0.0000000015)
@example(999_999.999999999)
@example(123_456.123456789)
def test_float_costs_read_by_shortest_repr(value: float) -> None:
    """A float cost equals its shortest repr rounded half-even to 9 places, on every path."""
    assert nano_credits(value) == reference(value)


@settings(max_examples=1000, deadline=None)
@given(
    st.decimals(min_value=0, max_value=1_000_000, allow_nan=False, allow_infinity=False, places=12)
)
def test_decimal_and_text_costs_are_exact(value: Decimal) -> None:
    """Decimal and str costs round half-even to 9 places, with no float in between."""
    assert nano_credits(value) == reference(value)
    assert nano_credits(format(value, "f")) == reference(value)


@pytest.mark.parametrize(
    ("text", "nano"),
    [("0.0000000025", 2), ("0.0000000035", 4), ("0.0000000015", 2), ("1e-3", 1_000_000)],
)
def test_half_even_rounding(text: str, nano: int) -> None:
    """Ties at the tenth place go to the even nano-credit."""
    assert nano_credits(text) == nano


@pytest.mark.parametrize(
    "bad", [-0.5, "-1", "1_000", " 1", "Infinity", "nan", True, None, [], "\u0661", 1_000_000.5]
)
def test_bad_costs_are_refused(bad: object) -> None:
    """Negative, non-numeric, non-ASCII, boolean and oversized costs are refused."""
    with pytest.raises(CreditError):
        nano_credits(bad)


def test_event_row_layout() -> None:
    """An event becomes [name, user slot, at, request_id, six amounts] with costs in nano."""
    row = usage_values(
        {
            "name": NAME,
            "at": "2026-11-01T01:00:00+01:00",
            "request_id": "r",
            "chat_prompt_tokens": 3.0,
            "chat_cost": "0.5",
            "embedding_cost": 2,
        }
    )
    assert row == [NAME, None, 1_793_491_200_000_000, "r", 0, 3, 500_000_000, 0, 0, 2 * 10**9, None]


def test_event_problems_are_all_reported() -> None:
    """Every bad field and unknown key of an event is reported, ordered by path."""
    with pytest.raises(ValidationError) as caught:
        usage_values({"nam": NAME, "chat_cost": -1, "chat_prompt_tokens": 1.5, "at": "2026"})
    assert [path for path, _ in caught.value.errors] == [
        "/at",
        "/chat_cost",
        "/chat_prompt_tokens",
        "/nam",
        "/name",
    ]
