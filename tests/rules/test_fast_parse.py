"""The fast paths of the usage-event parse agree with the reference parsers, value for
value and error for error: costs (`nano_credits` against the Decimal reading), times
(`times.parse` against `times.parse_reference`) and whole JSON Lines events (the typed
reader against the one JSON reader, `registry.jsonin`, and `usage_values`)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from registry import series, times
from registry.credits import CreditError, _decimal_nano, nano_credits
from registry.errors import ValidationError
from registry.events import parse_line
from registry.events import read_body as usage_body
from registry.events import read_line as usage_line
from registry.events import row_of as usage_values
from registry.jsonin import JsonFloat, loads
from registry.model import MAX_CREDITS_PER_EVENT, NANO
from tests.support.data import AMOUNTS

# --- costs ----------------------------------------------------------------------------


def reference_nano(value: Any) -> int:
    """Spec 6 the slow, obvious way: every text, float (by its shortest repr), JSON number
    (by its text) and Decimal read by `decimal.Decimal`, rounded half-even to 9 places; no
    fast path."""
    cls = value.__class__
    if cls is JsonFloat:
        nano = _decimal_nano(value.text)
    elif cls is float:
        if not math.isfinite(value):
            raise CreditError(f"must be a number of credits, not {value}")
        nano = _decimal_nano(repr(value))
    elif cls is str or cls is Decimal:
        nano = _decimal_nano(value)
    elif cls is int:
        nano = value * NANO
    else:
        raise CreditError("must be a number of credits")
    if not 0 <= nano <= MAX_CREDITS_PER_EVENT * NANO:
        raise CreditError(f"must be between 0 and {MAX_CREDITS_PER_EVENT} credits")
    return nano


def outcome(parse: Any, value: Any) -> tuple[str, Any]:
    try:
        return ("value", parse(value))
    except CreditError as exc:
        return ("error", str(exc))
    except times.TimeError as exc:
        return ("error", str(exc))


digits = st.text("0123456789", max_size=12)


@st.composite
def decimal_texts(draw: st.DrawFn) -> str:
    """Every decimal form the spec allows, and near misses: signs, leading zeros, ``.5``,
    ``5.``, many places, exponents of either case and sign."""
    sign = draw(st.sampled_from(["", "", "+", "-"]))
    whole = draw(st.text("0123456789", max_size=9))
    dot = draw(st.sampled_from(["", ".", "."]))
    fraction = draw(st.text("0123456789", max_size=45)) if dot else ""
    exponent = ""
    if draw(st.booleans()):
        exponent = (
            draw(st.sampled_from("eE"))
            + draw(st.sampled_from(["", "+", "-"]))
            + draw(st.text("0123456789", max_size=3))
        )
    return sign + whole + dot + fraction + exponent


@st.composite
def rounding_edges(draw: st.DrawFn) -> str:
    """A nano-credit amount followed by a tie, or one unit either side, at the 10th place."""
    nano = draw(st.integers(0, MAX_CREDITS_PER_EVENT * NANO + 1))
    tail = draw(st.sampled_from(["5", "50", "500000", "49", "4999999", "51", "5000001", "0"]))
    text = f"{nano // NANO}.{nano % NANO:09d}{tail}"
    shift = draw(st.integers(-3, 3))
    if shift:  # the same number written with an exponent
        mantissa = Decimal(text).scaleb(-shift)
        text = f"{mantissa:f}e{shift}"
    return text


junk = st.text("0123456789.+-eE _\u0661x", max_size=14)


@settings(max_examples=800, deadline=None)
@given(st.one_of(decimal_texts(), rounding_edges(), junk))
@example("0.000123")
@example("1.123456789")
@example("999999.999999999")
@example("1000000.000000001")
@example("12345678.5")
@example("0.0000000005")
@example("0.0000000015")
@example("0.00000000250000000000000000000000000001")
@example("999999.9999999995")
@example("1000000.0000000004")
@example("1000000.0000000005")
@example("+.5")
@example("5.")
@example("00000000000000012.5")
@example("1.25e-7")
@example("125E-9")
@example("1e6")
@example("1e7")
@example("-0")
@example("-0.0000000001")
def test_text_costs_fast_equals_reference(text: str) -> None:
    assert outcome(nano_credits, text) == outcome(reference_nano, text)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=0, max_value=2e6),
        st.floats(),
        st.floats(min_value=0, max_value=1e-6),
    )
)
@example(1.3e-06)
@example(5e-10)
@example(1.5e-09)
@example(-0.0)
@example(1e16)
def test_float_costs_fast_equals_reference(value: float) -> None:
    assert outcome(nano_credits, value) == outcome(reference_nano, value)


json_numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,8})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(json_numbers, rounding_edges()))
@example("0.12345678949999999999")  # the float 0.1234567895 would round up to ...790
@example("0.0000000035")
@example("0.0000000025")
@example("1e400")
@example("1" + "0" * 5000)  # too long for int(): still a number, out of range
def test_json_number_costs_are_read_from_their_text(text: str) -> None:
    """A cost written as a JSON number is read from its text by every JSON reader: the
    reference reader (`jsonin.loads`) and the typed one (`read_line`) agree with the
    exact decimal reading of that text, never with its float's (issue 19, item 7)."""
    assert outcome(nano_credits, loads(text)) == outcome(reference_nano, text)
    line = '{"name": "%s", "chat_cost": %s}' % (NAME, text)  # noqa: UP031 - JSON braces
    assert line_outcome(line, typed=True) == line_outcome(line, typed=False)
    try:
        expected: tuple[str, Any] = ("row", usage_values({"name": NAME, "chat_cost": text}))
    except ValidationError as exc:
        expected = ("error", exc.errors)
    assert line_outcome(line, typed=True) == expected


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=0, max_value=2e6),
        st.floats(min_value=0, max_value=1e-6),
        st.integers(0, 10**15).map(lambda nano: nano / 1e9),
    ).filter(lambda value: value != int(value))
)
@example(1.3e-06)
@example(0.1234567895)
@example(1.5e-09)
def test_json_numbers_written_as_their_float_are_read_from_their_text(value: float) -> None:
    """What json.dumps writes (the float's shortest text) takes the float's fast path:
    the same nano-credits as the exact reading of that text."""
    text = json.dumps(value)
    assert outcome(nano_credits, loads(text)) == outcome(reference_nano, text)


def test_json_number_costs_are_exact() -> None:
    """Worked values: half-even at the tenth place, of the text as written."""
    for text, nano in [
        ("0.12345678949999999999", 123_456_789),
        ("0.0000000035", 4),
        ("0.0000000025", 2),
        ("0.0000000015", 2),
        ("999999.9999999995", 1_000_000 * NANO),
    ]:
        assert nano_credits(loads(text)) == nano, text
        line = f'{{"name": "{NAME}", "chat_cost": {text}, "embedding_cost": {text}}}'
        for read in (usage_line(line), parse_line(line), usage_line(line.encode())):
            assert read is not None
            assert usage_values(read)[6] == usage_values(read)[9] == nano, text


# --- times ------------------------------------------------------------------------------


def two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02}")


@st.composite
def rfc3339_texts(draw: st.DrawFn) -> str:
    """RFC 3339 date-times and their near misses, built part by part: every separator and
    offset form, fractions of 0 to 12 digits, fields just out of range."""
    year = draw(st.sampled_from(["1969", "1970", "2026", "2024", "9999", "0000", "0001"]))
    date = f"{year}-{draw(two(0, 13))}-{draw(two(0, 32))}"
    if draw(st.integers(0, 9)) == 0:
        date = draw(st.sampled_from(["2026-02-29", "2024-02-29", "2026-1-01", "2026-01-0\u0661"]))
    separator = draw(st.sampled_from(["T", "T", "t", " ", "x"]))
    clock = f"{draw(two(0, 25))}:{draw(two(0, 61))}:{draw(two(0, 61))}"
    if draw(st.booleans()):
        clock += "." + draw(st.text("0123456789", max_size=12))
    offset = draw(
        st.one_of(
            st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+05:30", "+0530", "+05", "UTC"]),
            st.builds(
                lambda sign, hh, mm: f"{sign}{hh}:{mm}",
                st.sampled_from("+-"),
                two(0, 25),
                two(0, 61),
            ),
        )
    )
    return date + separator + clock + offset


@st.composite
def real_moments(draw: st.DrawFn) -> str:
    """Valid times anywhere in 1970-9999, with any offset and a fraction of 1 to 9 digits."""
    low, high = datetime(1970, 1, 2), datetime(9999, 12, 30)  # noqa: DTZ001 - naive bounds
    moment = draw(st.datetimes(low, high, timezones=st.just(UTC)))
    minutes = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    text = local.isoformat(timespec="microseconds")[:26]
    places = draw(st.integers(0, 9))
    if places == 0:
        text = text[:19]
    else:
        text = (
            text[:20] + (text[20:] + draw(st.text("0123456789", min_size=3, max_size=3)))[:places]
        )
    zone = "Z" if minutes == 0 and draw(st.booleans()) else local.strftime("%z")
    if zone != "Z":
        zone = zone[:3] + ":" + zone[3:]
    return text + zone


@settings(max_examples=800, deadline=None)
@given(st.one_of(rfc3339_texts(), real_moments()))
@example("2026-01-01T24:00:00Z")
@example("2026-01-01T23:59:60Z")
@example("2026-01-01T23:59:59.9999999z")
@example("2026-01-01t00:00:00.5+05:30")
@example("2026-01-01 00:00:00-00:60")
@example("2026-01-01T00:00:00.Z")
@example("0000-01-01T00:05:06.5Z")
@example("2026-01-01T00:00:00")
@example("2026-01-01")
@example("1969-12-31T23:59:59.999999Z")
def test_times_fast_equals_reference(text: str) -> None:
    # twice: once filling the hour cache, once reading it
    assert outcome(times.parse, text) == outcome(times.parse_reference, text)
    assert outcome(times.parse, text) == outcome(times.parse_reference, text)


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2026-01-01T05:30:00+05:30", 1_767_225_600_000_000),
        ("2026-01-01T00:00:00.123Z", 1_767_225_600_123_000),
        ("2026-01-01T00:00:00.1234567Z", 1_767_225_600_123_456),
        ("2025-12-31T18:29:59.5-05:30", 1_767_225_599_500_000),
    ],
)
def test_fast_path_values(text: str, micros: int) -> None:
    """A few worked values, so that fast and reference cannot agree on a wrong answer."""
    assert times.parse(text) == micros


# --- times written back: RFC 3339 for every year a window can name ---------------------

_MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 1),  # noqa: DTZ001 (hypothesis bounds are naive; UTC is added below)
    max_value=datetime(9999, 12, 31, 23, 59, 59),  # noqa: DTZ001
)


@given(_MOMENTS)
@example(datetime(189, 10, 15, 12, 28, 14, 100000, tzinfo=UTC))  # strftime wrote "189-10-15T…"
@example(datetime(1, 1, 1, tzinfo=UTC))
def test_render_writes_four_digit_years_and_reads_back(moment: datetime) -> None:
    moment = moment.replace(tzinfo=None)
    value = times.micros(moment.replace(tzinfo=UTC))
    text = times.render(value)
    assert text == moment.isoformat(timespec="microseconds") + "Z"  # "0189-10-15T12:28:14.100000Z"
    assert times.parse(text) == value
    # a series boundary: the same, its fraction only when there is one
    assert series.render(value) == moment.isoformat() + "Z"


# --- usage events from JSON Lines ----------------------------------------------------------
#
# An import reads each line with the typed reader (`usage_line`) and, when that cannot
# read it, with `json.loads`; `usage_values` then turns either into a row. Whatever the
# line, the row or the error must be exactly what `json.loads` + `usage_values` give.

NAME = "0123456789abcdefABCDEF"
EVENT_KEYS = ["name", "at", "request_id", *AMOUNTS, "query_model"]
odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
amounts = st.one_of(
    st.integers(0, 10**12 + 1),
    st.sampled_from([0, 10**12, 10**12 + 1, 2**63, 2**64, 2.0, 1e12, -1, -0, 1.5]),
)
costs = st.one_of(
    decimal_texts(),
    rounding_edges(),
    st.floats(min_value=0, max_value=2e6),
    st.integers(0, 10**6 + 1),
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": st.one_of(st.just(NAME), st.sampled_from([NAME[:21], NAME + "x", "é" * 22])),
    "at": st.one_of(real_moments(), rfc3339_texts()),
    "request_id": st.one_of(st.text(max_size=8), st.just("r" * 257), st.just("\ud800")),
    "query_model": st.one_of(st.just(NAME), st.none()),
    "chat_cost": costs,
    "embedding_cost": costs,
}


@st.composite
def event_lines(draw: st.DrawFn) -> str:
    """One line of usage JSON: mostly events with some fields wrong, sometimes an unknown
    key, a repeated key, another JSON value or text that is not JSON at all."""
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return draw(st.text(max_size=30))
    if shape == 1:
        return json.dumps(draw(odd_values))
    keys = draw(st.lists(st.sampled_from(EVENT_KEYS), unique=True))
    if shape > 4:  # most lines have a name
        keys = ["name", *(k for k in keys if k != "name")]
    # Each field of its own JSON type nine times in ten (in range or not), else anything.
    event = {
        key: draw(odd_values if draw(st.integers(0, 9)) == 0 else FIELD_VALUES.get(key, amounts))
        for key in keys
    }
    if shape == 2:
        event[draw(st.sampled_from(["nam", "user", "chat_costs", ""]))] = 1
    text = json.dumps(event, ensure_ascii=draw(st.booleans()))
    if shape == 3 and event:  # a key given twice: refused, by both readers
        key = next(iter(event))
        text = "{" + json.dumps(key) + ": " + json.dumps(draw(odd_values)) + ", " + text[1:]
    return text


def line_outcome(line: str | bytes, *, typed: bool) -> tuple[str, Any]:
    event = usage_line(line) if typed else None
    try:
        if event is None:
            event = parse_line(line)
        return ("row", usage_values(event))
    except ValidationError as exc:
        return ("error", exc.errors)


@settings(max_examples=1500, deadline=None)
@given(event_lines(), st.booleans())
@example('{"name": "0123456789abcdefABCDEF", "chat_prompt_tokens": 2.0}', False)
@example('{"name": "0123456789abcdefABCDEF", "chat_cost": null}', True)
@example('{"name": "0123456789abcdefABCDEF", "chat_cost": 1e400}', False)
@example('{"name": "0123456789abcdefABCDEF", "chat_cost": 123456789012345678901234567890}', True)
@example('{"name": "0123456789abcdefABCDEF", "request_id": "\\ud800"}', False)
@example('{"name": "0123456789abcdefABCDEF", "at": "2026-01-01T00:00:00.1234567Z"}', True)
@example('{"name": "a\tb"}', False)
@example('\ufeff{"name": "0123456789abcdefABCDEF"}', True)
@example('{"name": "0123456789abcdefABCDEF"} x', False)
@example('{"name": "0123456789abcdefABCDEF", "at": null, "at": null}', True)
@example('{"name": "0123456789abcdefABCDEF", "chat_cost": 1, "chat_cost" : 2}', True)
@example('{"name": "0123456789abcdefABCDEF", "chat_cost": [1, {"a": 1, "a": 2}]}', True)
@example('{"name": "0123456789abcdefABCDEF", "request_id": "\\"", "at": null, "at": null}', True)
@example('{"name": "0123456789abcdefABCDEF", "chat_cost": 0.12345678949999999999}', True)
@example('{"name": "0123456789abcdefABCDEF", "chat_prompt_tokens": 1' + "0" * 5000 + "}", True)
def test_typed_lines_equal_json_and_usage_values(line: str, as_bytes: bool) -> None:
    data: str | bytes = line.encode("utf-8", "surrogatepass") if as_bytes else line
    event(f"typed reader: {'read' if usage_line(data) is not None else 'left it'}")
    assert line_outcome(data, typed=True) == line_outcome(data, typed=False)


def test_well_formed_events_take_the_typed_path() -> None:
    """The agreement above is not by falling back every time: events as exporters write
    them are read by the typed reader, and give the reference's row."""
    line = json.dumps(
        {
            "name": NAME,
            "at": "2026-11-01T10:00:00.5+05:30",
            "request_id": "chatcmpl-1",
            "chat_prompt_tokens": 1200,
            "chat_completion_tokens": 80,
            "chat_cost": "0.0006174",
            "embedding_cost": 1.3e-06,
            "query_model": NAME,
        }
    )
    event = usage_line(line)
    assert event is not None
    assert not isinstance(event, dict)
    assert usage_values(event) == usage_values(json.loads(line))
    assert usage_line(line.replace("1200", "1200.0")) is None  # the reference's to read


def body_outcome(body: str, *, typed: bool) -> tuple[str, Any]:
    """A ``POST /usage`` JSON body (an event or an array) as rows, or the first error."""
    read = usage_body(body) if typed else None
    try:
        if read is None:
            read = loads(body)
        events = read if isinstance(read, list) else [read]
        return ("rows", [usage_values(event) for event in events])
    except ValidationError as exc:
        return ("error", exc.errors)


@settings(max_examples=300, deadline=None)
@given(st.lists(event_lines(), max_size=4), st.booleans())
@example(['{"name": "0123456789abcdefABCDEF"}', '{"name": "0123456789abcdefABCDEF", "x": 1}'], True)
@example(['{"name": "0123456789abcdefABCDEF", "chat_cost": "0.5"}'], False)
@example(["[]"], False)
def test_typed_bodies_equal_json_and_usage_values(lines: list[str], array: bool) -> None:
    body = "[" + ", ".join(lines) + "]" if array or not lines else lines[0]
    assert body_outcome(body, typed=True) == body_outcome(body, typed=False)
