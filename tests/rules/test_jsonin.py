"""The one reader of JSON input (`registry.jsonin`, issue 19): UTF-8 whatever the locale
and a BOM ignored (item 5), integers too long for ``int()`` out of range at their field
(item 6), numbers kept as their text (item 7), repeated keys refused at their path (item
8), keys that are not Unicode refused printably (item 14). Properties over generated JSON,
and the library's JSON paths (`registry.events`) held to the same answers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import registry
from registry.errors import ValidationError
from registry.events import EventLines, parse_line, read_body, read_line, row_of, validated
from registry.jsonin import JsonFloat, loads, pointer
from tests.support.data import body

NAME = "0123456789abcdefABCDEF"
KEYS = st.text(st.characters(codec="utf-8"), max_size=6)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8"), max_size=6),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


def problems(text: str | bytes) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        loads(text)
    return caught.value.errors


# --- what it reads as the standard library does ---------------------------------------------


@settings(max_examples=300)
@given(DOCUMENTS, st.booleans(), st.booleans())
def test_reads_what_json_reads(document: Any, ascii_only: bool, as_bytes: bool) -> None:
    """Every JSON document without repeated keys reads as `json.loads` reads it; numbers
    with a fraction are floats that keep their text."""
    text = json.dumps(document, ensure_ascii=ascii_only)
    read = loads(text.encode() if as_bytes else text)
    assert read == json.loads(text)

    def floats(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [f for v in value.values() for f in floats(v)]
        if isinstance(value, list):
            return [f for v in value for f in floats(v)]
        return [value] if isinstance(value, float) else []

    for number in floats(read):
        assert number.__class__ is JsonFloat
        assert float(number.text) == number


def test_utf8_whatever_the_text_and_a_bom_ignored() -> None:
    """Bytes are UTF-8; a leading byte order mark is not part of the JSON (item 5)."""
    assert loads('{"id": "modèle"}'.encode()) == {"id": "modèle"}
    assert loads(b'\xef\xbb\xbf{"id": "mod\xc3\xa8le"}') == {"id": "modèle"}
    assert loads('\ufeff{"a": 1}') == {"a": 1}
    ((path, message),) = problems(b'{"id": "mod\xe8le"}')  # Latin-1 bytes
    assert path == ""
    assert message.startswith("is not UTF-8 text: invalid continuation byte at byte 11")


# --- numbers -----------------------------------------------------------------------------------


@given(st.integers(641, 6000), st.sampled_from(["", "-"]))
def test_integers_too_long_for_int_are_numbers_out_of_range(digits: int, sign: str) -> None:
    """Python's int() refuses more than 4300 digits (a ValueError about int_max_str_digits);
    the reader keeps such an integer as a number, which each field refuses as out of range
    at its own path (item 6)."""
    text = sign + "9" * digits
    number = loads(text)
    assert number.__class__ is JsonFloat
    assert number.text == text
    weight = f'{{"type": "static", "weight": {text}}}'
    read = loads(f'{{"id": "m", "mode": "generate", "top_k": {text}, "weight": {weight}}}')
    with pytest.raises(ValidationError) as caught:
        registry.validate(read)
    assert caught.value.errors == [
        ("/top_k", "must be between 0 and 2147483647"),
        ("/weight/weight", "must be greater than 0 and at most 1000000"),
    ]
    line = f'{{"name": "{NAME}", "chat_prompt_tokens": {text}, "chat_cost": {text}}}'
    assert read_line(line) is None  # the typed reader leaves it to the reference
    with pytest.raises(ValidationError) as caught:
        row_of(parse_line(line))
    assert caught.value.errors == [
        ("/chat_cost", "must be between 0 and 1000000 credits"),
        ("/chat_prompt_tokens", "must be between 0 and 1000000000000"),
    ]


def test_floats_too_large_for_a_float_are_out_of_range_not_infinite() -> None:
    """``1e400`` is a finite number the field refuses by its range (a float would say inf)."""
    with pytest.raises(ValidationError) as caught:
        registry.validate(loads(json.dumps(body()).replace('"weight": 1', '"weight": 1e400')))
    assert caught.value.errors == [("/weight/weight", "must be greater than 0 and at most 1000000")]
    nan = json.dumps(body(temperature=float("nan")))
    with pytest.raises(ValidationError) as caught:
        registry.validate(loads(nan))  # NaN is read, and refused at its own path
    assert caught.value.errors == [("/temperature", "must be a number, not nan")]


def test_numbers_in_bodies_read_as_their_floats() -> None:
    """Outside costs, a JSON number means its float, as before: same normal form, same name."""
    value = body(temperature=0.7, top_p=0.12345678901234567890, max_tokens=2.0)
    assert registry.validate(loads(json.dumps(value))) == registry.validate(value)
    assert registry.validate(loads(json.dumps(value))).name == registry.validate(value).name


# --- repeated keys -------------------------------------------------------------------------------


@st.composite
def documents_with_a_repeat(draw: st.DrawFn) -> tuple[str, str]:
    """A JSON text holding one object with a key written twice, and that key's path."""
    document = draw(st.dictionaries(KEYS, DOCUMENTS, min_size=1, max_size=4))
    path: list[str | int] = []
    here: Any = document
    while True:  # walk down to some object
        children = [(k, v) for k, v in here.items() if isinstance(v, dict) and v]
        if not children or draw(st.booleans()):
            break
        key, here = draw(st.sampled_from(children))
        path.append(key)
    key = draw(st.sampled_from(sorted(here)))
    marker = "\x00repeat\x00"
    here[marker] = None
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    repeat = json.dumps(key) + ": " + json.dumps(draw(DOCUMENTS))
    return text.replace(json.dumps(marker) + ": null", repeat), pointer((*path, key))


@settings(max_examples=300)
@given(documents_with_a_repeat())
def test_a_repeated_key_is_an_error_at_its_path(case: tuple[str, str]) -> None:
    """Wherever a key is written twice, the reader says so at that key (item 8), instead of
    keeping the last value as `json.loads` does."""
    text, path = case
    assert problems(text) == [(path, "duplicate key")]
    assert problems(text.encode()) == [(path, "duplicate key")]


def test_repeated_keys_in_a_body_and_in_events() -> None:
    """The issue's example, and every repeat of a document reported, ordered by path."""
    text = '{"id": "m", "provider": {"sort": "price", "sort": "latency"}, "id": "n"}'
    assert problems(text) == [("/id", "duplicate key"), ("/provider/sort", "duplicate key")]
    at = '"at": "2026-01-01T00:00:00Z", "at": "2027-01-01T00:00:00Z"'
    line = f'{{"name": "{NAME}", {at}}}'
    for reader in (read_line, read_body):
        assert reader(line) is None  # the typed reader cannot tell: the reference reads it
    with pytest.raises(ValidationError) as caught:
        row_of(parse_line(line))
    assert caught.value.errors == [("/at", "duplicate key")]
    array = f"[{line}, {line}]"
    assert read_body(array) is None
    assert problems(array) == [("/0/at", "duplicate key"), ("/1/at", "duplicate key")]


@pytest.mark.parametrize(
    "line",
    [
        '{"name": "%s", "chat_cost": 1, "chat_cost": 2}',
        '{"name": "%s", "chat_cost": 1, "chat_cost" : 2}',
        '{"name": "%s", "chat_cost": 1, "chat_cost"\t: 2}',
        '{"name": "%s", "request_id": "a\\"b", "chat_cost": 1, "chat_cost": 2}',
        '{"name": "%s", "chat_c\\u006fst": 1, "chat_cost": 2}',
        '{"name": "%s", "chat_cost": [{"a": 1, "a": 2}], "chat_cost": 2}',
        '{"name": "%s", "at": null, "at": null}',
        '{"name": "%s", "name": "%s"}',
    ],
)
def test_the_typed_reader_never_keeps_the_last_of_repeated_keys(line: str) -> None:
    """msgspec keeps the last value of a repeated key; the typed reader counts keys on the
    text and leaves every such line to the reference, however the repeat is written."""
    text = line.replace("%s", NAME)
    for data in (text, text.encode()):
        assert read_line(data) is None
        assert read_body(data) is None
        assert read_body(f"[{text}]") is None
        (event,) = EventLines([data])
        with pytest.raises(ValidationError) as caught:
            row_of(event)
        assert any(message == "duplicate key" for _, message in caught.value.errors)


# --- keys that are not Unicode --------------------------------------------------------------


@settings(max_examples=200)
@given(
    st.text(max_size=3),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.text(max_size=3),
    st.sampled_from(["{%s}", '{"models": [{%s}]}', '{"provider": {"x": 1, %s}}', "[{%s}]"]),
)
def test_a_key_with_a_lone_surrogate_is_an_error_written_printably(
    before: str, surrogate: str, after: str, frame: str
) -> None:
    """``{"\\ud800": 1}`` is not Unicode text: refused where it is (item 14), the path
    escaped so that it can be printed, logged and sent as UTF-8."""
    key = before + surrogate + after
    text = frame.replace("%s", json.dumps(key) + ": 1")
    ((path, message),) = problems(text)
    assert message == "key is not Unicode text (it holds a lone surrogate)"
    assert path.isprintable()
    path.encode()  # never raises
    assert path.endswith(pointer((key,)))
    assert "\\ud" in path


def test_printable_paths() -> None:
    """Characters that do not print are escaped in paths, as Python writes them."""
    assert pointer(("logit_bias", "1\n")) == "/logit_bias/1\\n"
    assert pointer(("a/b", "~", "\u202egpt")) == "/a~1b/~0/\\u202egpt"
    assert pointer(("modèle", 3, "日本")) == "/modèle/3/日本"


# --- the library's JSON paths ------------------------------------------------------------


def test_events_from_json_lines_report_every_problem_in_order() -> None:
    """The validation loop collects the problems of every line, of every kind (item 22)."""
    lines = [
        json.dumps({"name": NAME}),
        json.dumps({"nam": NAME}),
        "not json",
        f'{{"name": "{NAME}", "at": null, "at": null}}',
        json.dumps({"name": NAME, "request_id": "a\x00b"}),
    ]
    with pytest.raises(ValidationError) as caught:
        list(validated(EventLines(lines), None, 0))
    assert caught.value.events is not None
    assert [(i, path) for i, path, _ in caught.value.events] == [
        (1, "/nam"),
        (1, "/name"),
        (2, ""),
        (3, "/at"),
        (4, "/request_id"),
    ]


def test_json_floats_keep_exact_decimal_meaning() -> None:
    """A JSON number's text is its exact decimal (what `Decimal` reads)."""
    number = loads("0.12345678949999999999")
    assert Decimal(number.text) == Decimal("0.12345678949999999999")
    assert float(number) == 0.1234567895
