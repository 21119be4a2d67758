"""Rules of issue 19 that live in the rules layer, as properties: identifiers and request
ids refuse Unicode format characters (item 10) and control characters (item 13), times
refuse hour 24 and read a leap second (item 9), and a response body given back as a
request keeps its names only when they are its own (item 12)."""

from __future__ import annotations

import json
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import registry
from registry import auth, ids, times
from registry._convert import dump, dump_model
from registry.errors import AuthenticationError, ValidationError
from registry.events import row_of
from tests.support.data import body

NAME = "0123456789abcdefABCDEF"
# Every format character (Cf) of this Python's Unicode database.
FORMAT = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
ISSUE = ["\u2066", "\u200d", "\u061c", "\u202e", "\u200b", "\ufeff", "\u00ad"]
TRAINING = {"type": "training_table", "base_weight": 2, "min_weight": 1, "max_weight": 3}
PLAIN = st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp"))


def refused(value: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        registry.validate(value)
    return caught.value.errors


# --- identifiers and request ids (items 10 and 13) ---------------------------------------------


def test_the_issues_characters_are_format_characters() -> None:
    assert set(ISSUE) <= set(FORMAT)


@given(
    st.text(PLAIN, max_size=20),
    st.sampled_from(FORMAT),
    st.text(PLAIN, max_size=20),
)
@example("openai/", "\u202e", "gpt-4o-evil")  # shows as openai/live-o4-tpg
@example("", "\u200b", "")  # shows blank
def test_format_characters_are_refused_in_every_identifier(
    before: str, hidden: str, after: str
) -> None:
    """Anywhere in an id, fallback model, embeddings model, user id or request id, a format
    character (invisible, or turning the text around it) is refused at that field."""
    value = before + hidden + after
    message = ids.identifier_problem(value)
    assert message is not None
    assert f"U+{ord(hidden):04X}" in message
    assert ids.bounded_text_problem(value) == message
    assert refused(body(id=value)) == [("/id", message)]
    assert refused(body(models=["m", value])) == [("/models/1", message)]
    model = {
        "models": [body(weight=TRAINING)],
        "weight": {"type": "training_table", "embeddings_model": value, "top": 5},
    }
    with pytest.raises(ValidationError) as caught:
        registry.validate_model(model)
    assert caught.value.errors == [("/weight/embeddings_model", message)]
    with pytest.raises(ValidationError) as caught:
        auth.check_user_id(value)
    assert caught.value.errors == [("/user_id", message)]
    with pytest.raises(ValidationError) as caught:
        row_of({"name": NAME, "request_id": value})
    assert caught.value.errors == [("/request_id", message)]


@given(st.text(PLAIN, min_size=1, max_size=256))
def test_identifiers_without_them_are_kept_as_given(value: str) -> None:
    """No normalization: an id is stored and named code point for code point as given."""
    assert ids.identifier_problem(value) is None
    assert ids.bounded_text_problem(value) is None
    assert registry.dump(registry.validate(body(id=value)))["id"] == value


def test_identifiers_are_not_normalized() -> None:
    """``é`` as one code point and as ``e`` + U+0301 are two ids, with two names."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert unicodedata.normalize("NFC", decomposed) == composed
    first, second = registry.validate(body(id=composed)), registry.validate(body(id=decomposed))
    assert first.name != second.name
    assert registry.dump(second)["id"] == decomposed


@given(st.text(PLAIN, max_size=10), st.characters(codec="utf-8", categories=["Cc"]))
@example("req", "\x00")
def test_request_ids_refuse_control_characters_but_allow_spaces(text: str, control: str) -> None:
    """A request id may hold spaces; not a control character (a NUL: SQLite keeps it, tools
    show it cut short, and PostgreSQL cannot store it at all)."""
    assert ids.bounded_text_problem(f"{text} {text}x") is None
    problem = ids.bounded_text_problem(text + control)
    assert problem == "must not contain control characters"
    with pytest.raises(ValidationError) as caught:
        row_of({"name": NAME, "request_id": text + control})
    assert caught.value.errors == [("/request_id", problem)]


@pytest.mark.parametrize("token", ["qllm_é", " ", "qllm_a b", "qllm_a\n", "qllm_", "Bearer x"])
def test_tokens_that_no_token_can_be_are_unknown(token: str) -> None:
    """A token is ``qllm_`` and URL-safe base64: anything else is an unknown token, before it
    is hashed or put into a header (`registry.Client` checks it so too)."""
    with pytest.raises(AuthenticationError, match="unknown token"):
        auth.checked(token)
    with pytest.raises(AuthenticationError, match="unknown token"):
        auth.token_hash(token)
    assert auth.checked(auth.new_token())


# --- times (item 9) ----------------------------------------------------------------------------


@given(
    st.dates(datetime(1970, 1, 2).date(), datetime(9999, 12, 30).date()),  # noqa: DTZ001
    st.sampled_from(["Z", "z", "+00:00", "+05:30", "-08:00"]),
    st.sampled_from(["", ".0", ".999999", ".5"]),
)
def test_hour_24_is_refused(day: Any, offset: str, fraction: str) -> None:
    """RFC 3339 hours are 00 to 23: ``24:00:00`` is not the next midnight."""
    text = f"{day.isoformat()}T24:00:00{fraction}{offset}"
    for parse in (times.parse, times.parse_reference):
        with pytest.raises(times.TimeError, match="hours are 00 to 23"):
            parse(text)


@given(
    st.dates(datetime(1970, 1, 2).date(), datetime(9999, 12, 30).date()),  # noqa: DTZ001
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
    st.sampled_from(["", ".0", ".5", ".999999999"]),
)
def test_a_leap_second_is_the_last_microsecond_of_its_utc_day(
    day: Any, minutes: int, fraction: str
) -> None:
    """``23:59:60`` UTC, written in any offset, reads as ``23:59:59.999999`` UTC of that day;
    second 60 at any other UTC time is refused."""
    last = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
    zone = timedelta(minutes=minutes)
    local = (last + zone).replace(tzinfo=None)
    sign = "-" if minutes < 0 else "+"
    offset = f"{sign}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"
    leap = local.isoformat()[:17] + "60" + fraction + offset
    assert times.parse(leap) == times.micros(last) + 999_999
    assert times.parse_reference(leap) == times.parse(leap)
    early = (local - timedelta(minutes=1)).isoformat()[:17] + "60" + offset
    with pytest.raises(times.TimeError, match="leap second"):
        times.parse(early)


def test_leap_second_and_hour_24_in_events() -> None:
    """The rule reaches every time a caller gives: an event's ``at`` here."""
    with pytest.raises(ValidationError) as caught:
        row_of({"name": NAME, "at": "2026-06-30T24:00:00Z"})
    assert [path for path, _ in caught.value.errors] == ["/at"]
    row = row_of({"name": NAME, "at": "2016-12-31T23:59:60Z"})
    assert times.render(row[2]) == "2016-12-31T23:59:59.999999Z"


# --- a response body given back as a request (item 12) ------------------------------------------

BODIES = st.sampled_from(
    [
        body(),
        body(temperature=0.5, stop=["b", "a"]),
        body(weight=TRAINING),
        body(id="x/y", weight=TRAINING, provider={"sort": "price"}),
    ]
)


@given(BODIES)
def test_a_response_body_is_a_request_body(value: dict[str, Any]) -> None:
    """What `validate` prints validates again to the same Query LLM: its names are its own."""
    llm = registry.validate(value)
    printed = json.loads(json.dumps(dump(llm)))
    assert registry.validate(printed) == llm


@given(BODIES, st.sampled_from(["name", "training_table_name"]), st.text(max_size=22))
def test_names_that_are_not_the_bodys_are_refused(
    value: dict[str, Any], key: str, other: str
) -> None:
    """A name that is not the body's (an edited body, another body's name) is refused at its
    path: a body is never registered under a name that does not say what it is."""
    llm = registry.validate(value)
    printed = {**dump(llm), key: other}
    if printed.get(key) == getattr(llm, key):
        return
    errors = refused(printed)
    assert [path for path, _ in errors] == [f"/{key}"]
    if getattr(llm, key) is None:
        assert errors[0][1].startswith("must be left out")
    else:
        assert errors[0][1] == f"must be {getattr(llm, key)!r}, this body's {key}, or left out"


def test_an_edited_response_body_is_refused() -> None:
    printed = dump(registry.validate(body()))
    edited = registry.validate(body(temperature=0.5)).name
    assert refused({**printed, "temperature": 0.5}) == [
        ("/name", f"must be {edited!r}, this body's name, or left out")
    ]


MODELS = st.lists(BODIES.map(lambda b: {**b, "weight": TRAINING}), min_size=1, max_size=5)


@given(MODELS, st.booleans())
def test_a_query_model_response_body_is_a_request_body(members: list[Any], shuffle: bool) -> None:
    """A Query Model's response body (names, members' names and positions) validates
    again to the same Query Model; duplicates may swap positions."""
    weight = {"type": "training_table", "embeddings_model": "e", "top": 3}
    model = registry.validate_model({"models": members, "weight": weight})
    printed = json.loads(json.dumps(dump_model(model)))
    if shuffle:
        printed["models"].reverse()
        duplicates = [m for m in printed["models"] if m["name"] == printed["models"][0]["name"]]
        if len(duplicates) != len(printed["models"]):
            for member in printed["models"]:
                member.pop("index")
    assert registry.validate_model(printed) == model


def test_a_query_model_with_wrong_positions_or_names_is_refused() -> None:
    members = [body(id="a"), body(id="b")]
    model = registry.validate_model({"models": members, "weight": {"type": "static"}})
    printed = dump_model(model)
    printed["models"][0]["index"] = 1
    printed["models"][1]["name"] = printed["models"][0]["name"]
    printed["models"][1]["training_table_index"] = 0
    printed["name"] = "0" * 22
    with pytest.raises(ValidationError) as caught:
        registry.validate_model(printed)
    assert [path for path, _ in caught.value.errors] == [
        "/models/0/index",
        "/models/1/name",
        "/models/1/training_table_index",
        "/name",
    ]
