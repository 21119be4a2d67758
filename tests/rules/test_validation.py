"""Spec section 2 (the request body and its rules) and section 3 (normalization), rule by rule."""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

import registry
from registry.jsonin import printable
from registry.model import INT32_MAX
from tests.support.data import body

Body = dict[str, Any]
LOGPROBS = "select_thinking_logprobs"
MODES = [
    "generate",
    "select_thinking",
    "select_non_thinking",
    "select_thinking_logprobs",
    "select_non_thinking_logprobs",
]
EFFORTS = ["none", "minimal", "low", "medium", "high", "xhigh"]
QUANTIZATIONS = ["int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown"]
BASE_NAME = registry.validate(body()).name


def errors_of(value: Any) -> list[tuple[str, str]]:
    """The problems `validate` reports for ``value``, which must be invalid."""
    with pytest.raises(registry.ValidationError) as info:
        registry.validate(value)
    return info.value.errors


def paths_of(value: Any) -> set[str]:
    return {path for path, _ in errors_of(value)}


def normalized(value: Any) -> Body:
    """The normalized form of a valid body: the response body without its names."""
    dumped = registry.dump(registry.validate(value))
    dumped.pop("name")
    dumped.pop("training_table_name", None)
    return dumped


def assert_dropped(value: Body) -> None:
    """``value`` normalizes to the minimal body: every extra key was a default or empty."""
    assert normalized(value) == normalized(body())
    assert registry.validate(value).name == BASE_NAME


# --- numbers: ranges, integers, booleans, NaN --------------------------------------------


class Field:
    """Where a numeric field lives in a body, with its rule from the spec's table."""

    def __init__(
        self,
        path: str,
        lo: float,
        hi: float,
        drop: tuple[float, ...],
        integer: bool,
        place: Callable[[Any], Body],
        read: Callable[[Body], Any],
        lowest_valid: float | None = None,
    ) -> None:
        self.path, self.lo, self.hi, self.drop, self.integer = path, lo, hi, drop, integer
        self.place, self.read = place, read
        # The smallest value accepted, when a rule spanning fields excludes ``lo`` itself.
        self.lowest_valid = lo if lowest_valid is None else lowest_valid

    def __repr__(self) -> str:
        return self.path


def _top(key: str, lo: float, hi: float, drop: tuple[float, ...], integer: bool = False) -> Field:
    def place(value: Any) -> Body:
        return body(**{key: value})

    def read(norm: Body) -> Any:
        return norm.get(key)

    return Field("/" + key, lo, hi, drop, integer, place, read)


def _logprobs_place(value: Any) -> Body:
    return body(mode=LOGPROBS, select_top_logprobs=value)


def _reasoning_place(value: Any) -> Body:
    return body(reasoning={"max_tokens": value, "effort": "low"})


def _bias_place(value: Any) -> Body:
    return body(logit_bias={"42": value})


def _static_place(value: Any) -> Body:
    return body(weight={"type": "static", "weight": value})


def _tt_place(key: str) -> Callable[[Any], Body]:
    def place(value: Any) -> Body:
        weight: Body = {"type": "training_table"}
        # The other two bounds are put where any in-range value of this one is in order.
        weight.update({"min_weight": 0, "base_weight": value, "max_weight": 1e6})
        if key == "min_weight":
            weight.update({"min_weight": value, "base_weight": 1e6})
        elif key == "max_weight":
            weight.update({"base_weight": 0, "max_weight": value})
        return body(weight=weight)

    return place


def _tt_read(key: str) -> Callable[[Body], Any]:
    return lambda norm: norm["weight"][key]


NUMBER_FIELDS = [
    _top("frequency_penalty", -2, 2, (0,)),
    _top("presence_penalty", -2, 2, (0,)),
    _top("temperature", 0, 2, (1,)),
    _top("top_p", 0, 1, (1,)),
    _top("min_p", 0, 1, (0,)),
    _top("repetition_penalty", 0, 2, (1,)),
    _top("top_a", 0, 1, (0,)),
    _top("max_completion_tokens", 0, INT32_MAX, (0,), integer=True),
    _top("max_tokens", 0, INT32_MAX, (0,), integer=True),
    _top("top_k", 0, INT32_MAX, (0,), integer=True),
    Field(
        "/select_top_logprobs",
        0,
        20,
        (0, 1),
        True,
        _logprobs_place,
        lambda norm: norm.get("select_top_logprobs"),
    ),
    Field(
        "/reasoning/max_tokens",
        0,
        INT32_MAX,
        (0,),
        True,
        _reasoning_place,
        lambda norm: norm["reasoning"].get("max_tokens"),
    ),
    Field(
        "/logit_bias/42",
        -100,
        100,
        (0,),
        True,
        _bias_place,
        lambda norm: norm.get("logit_bias", {}).get("42"),
    ),
    Field(
        "/weight/min_weight",
        0,
        1e6,
        (),
        False,
        _tt_place("min_weight"),
        _tt_read("min_weight"),
    ),
    Field(
        "/weight/base_weight",
        0,
        1e6,
        (),
        False,
        _tt_place("base_weight"),
        _tt_read("base_weight"),
    ),
    Field(
        "/weight/max_weight",
        0,
        1e6,
        (),
        False,
        _tt_place("max_weight"),
        _tt_read("max_weight"),
        # 0 itself is in range but breaks "max_weight > 0" (tested with the weight rules).
        lowest_valid=5e-324,
    ),
]
# static weight: 0 < w <= 1e6, so the smallest positive double is its lowest value.
STATIC = Field(
    "/weight/weight",
    5e-324,
    1e6,
    (),
    False,
    _static_place,
    lambda norm: norm["weight"]["weight"],
)
ALL_NUMBERS = [*NUMBER_FIELDS, STATIC]


def _below(field: Field) -> float:
    return field.lo - 1 if field.integer else math.nextafter(field.lo, -math.inf)


def _above(field: Field) -> float:
    return field.hi + 1 if field.integer else math.nextafter(field.hi, math.inf)


@pytest.mark.parametrize("field", ALL_NUMBERS, ids=repr)
def test_range_bounds_are_inclusive(field: Field) -> None:
    """Both ends of a field's range are accepted and kept (unless they are its default)."""
    for bound in (field.lowest_valid, field.hi):
        kept = field.read(normalized(field.place(bound)))
        assert kept == (None if bound in field.drop else bound)


@pytest.mark.parametrize("field", ALL_NUMBERS, ids=repr)
def test_just_outside_the_range_is_rejected(field: Field) -> None:
    """The nearest values below and above a field's range are errors at that field's path."""
    for outside in (_below(field), _above(field)):
        assert paths_of(field.place(outside)) == {field.path}


def test_static_weight_zero_is_rejected() -> None:
    """A static weight must be strictly greater than 0."""
    assert paths_of(_static_place(0)) == {"/weight/weight"}
    assert paths_of(_static_place(0.0)) == {"/weight/weight"}
    assert paths_of(_static_place(-0.0)) == {"/weight/weight"}


def test_spec_example_message() -> None:
    """An out-of-range temperature is reported as in the spec's example."""
    assert errors_of(body(temperature=2.5)) == [("/temperature", "must be between 0 and 2")]


@pytest.mark.parametrize("field", [f for f in ALL_NUMBERS if f.integer], ids=repr)
def test_integer_fields_take_integral_floats(field: Field) -> None:
    """An integer field accepts 2.0 and stores it as the integer 2."""
    kept = field.read(normalized(field.place(2.0)))
    assert kept == 2
    assert type(kept) is int


@pytest.mark.parametrize("field", [f for f in ALL_NUMBERS if f.integer], ids=repr)
def test_integer_fields_reject_fractions(field: Field) -> None:
    """An integer field rejects 2.5 and 2.000001."""
    assert paths_of(field.place(2.5)) == {field.path}
    assert paths_of(field.place(2.000001)) == {field.path}


@pytest.mark.parametrize("field", [f for f in ALL_NUMBERS if not f.integer], ids=repr)
def test_number_fields_keep_fractions_and_integral_floats_become_integers(field: Field) -> None:
    """A number field keeps 0.5, and 1.0 is stored (and serialized) as 1."""
    assert field.read(normalized(field.place(0.5))) == 0.5
    one = field.read(normalized(field.place(1.0)))
    assert one is None if 1 in field.drop else (one == 1 and type(one) is int)


@pytest.mark.parametrize("field", ALL_NUMBERS, ids=repr)
@pytest.mark.parametrize("value", [True, False], ids=["true", "false"])
def test_booleans_are_never_numbers(field: Field, value: bool) -> None:
    """true and false are rejected by every numeric field, even where 1 or 0 is allowed."""
    assert paths_of(field.place(value)) == {field.path}


@pytest.mark.parametrize("field", ALL_NUMBERS, ids=repr)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_infinities_are_rejected(field: Field, value: float) -> None:
    """NaN and the infinities are errors, whatever the field's range."""
    assert paths_of(field.place(value)) == {field.path}


@pytest.mark.parametrize("field", ALL_NUMBERS, ids=repr)
@pytest.mark.parametrize("value", ["1", [1], {"v": 1}], ids=["string", "array", "object"])
def test_numbers_reject_other_types(field: Field, value: Any) -> None:
    """A string, array or object is not a number, even when it holds one."""
    assert paths_of(field.place(value)) == {field.path}


@pytest.mark.parametrize("value", [10**400, -(10**400), 2**64])
def test_huge_integers_are_range_errors(value: int) -> None:
    """Integers far outside every range are reported, not crashed on."""
    assert paths_of(body(temperature=value, top_k=value)) == {"/temperature", "/top_k"}


@pytest.mark.parametrize(
    ("key", "default"),
    [
        ("frequency_penalty", 0),
        ("presence_penalty", 0.0),
        ("temperature", 1),
        ("temperature", 1.0),
        ("top_p", 1),
        ("min_p", 0),
        ("repetition_penalty", 1.0),
        ("top_a", 0),
        ("top_k", 0.0),
        ("max_tokens", 0),
        ("max_completion_tokens", 0),
        ("verbosity", "medium"),
        ("frequency_penalty", -0.0),
    ],
)
def test_defaults_are_dropped(key: str, default: Any) -> None:
    """A field given its default value normalizes to the body without it."""
    assert_dropped(body(**{key: default}))


# --- null means absent ------------------------------------------------------------------

OPTIONAL_TOP = [
    "select_top_logprobs",
    "frequency_penalty",
    "logit_bias",
    "max_completion_tokens",
    "presence_penalty",
    "reasoning_effort",
    "stop",
    "temperature",
    "top_p",
    "max_tokens",
    "min_p",
    "provider",
    "reasoning",
    "repetition_penalty",
    "top_a",
    "top_k",
    "verbosity",
    "models",
]
PROVIDER_KEYS = [
    "order",
    "allow_fallbacks",
    "require_parameters",
    "data_collection",
    "only",
    "ignore",
    "quantizations",
    "sort",
]


@pytest.mark.parametrize("key", OPTIONAL_TOP)
def test_null_top_level_key_means_absent(key: str) -> None:
    """``null`` for an optional key is the same as leaving it out, even with a plain mode."""
    assert_dropped(body(**{key: None}))


@pytest.mark.parametrize("key", PROVIDER_KEYS)
def test_null_provider_key_means_absent(key: str) -> None:
    """``null`` inside provider is the same as leaving the key out."""
    with_null = body(provider={key: None, "sort": "price"})
    assert normalized(with_null) == normalized(body(provider={"sort": "price"}))


@pytest.mark.parametrize("key", ["max_tokens", "effort", "enabled"])
def test_null_reasoning_key_means_absent(key: str) -> None:
    """``null`` inside reasoning is the same as leaving the key out."""
    given = {"max_tokens": 10, "effort": "low", "enabled": True}
    with_null = body(reasoning={**given, key: None})
    without = {k: v for k, v in given.items() if k != key}
    assert normalized(with_null) == normalized(body(reasoning=without))


@pytest.mark.parametrize("key", ["id", "mode", "weight"])
def test_required_keys(key: str) -> None:
    """id, mode and weight are required; null for them is the same as missing."""
    missing = body()
    del missing[key]
    assert paths_of(missing) == {"/" + key}
    assert paths_of(body(**{key: None})) == {"/" + key}


# --- unknown keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (body(temprature=0.5), "/temprature"),
        (body(provider={"sort": "price", "orde": ["a"]}), "/provider/orde"),
        (body(reasoning={"effort": "low", "budget": 1}), "/reasoning/budget"),
        (body(weight={"type": "static", "weight": 1, "base_weight": 1}), "/weight/base_weight"),
        (
            body(
                weight={
                    "type": "training_table",
                    "base_weight": 1,
                    "min_weight": 1,
                    "max_weight": 1,
                    "weight": 1,
                }
            ),
            "/weight/weight",
        ),
        (body(Temperature=1), "/Temperature"),
        (body(**{"": 1}), "/"),
    ],
    ids=["top", "provider", "reasoning", "static", "training_table", "case", "empty"],
)
def test_unknown_keys_are_errors(value: Body, path: str) -> None:
    """An unknown key is an error at its own path, at every level of the body."""
    assert paths_of(value) == {path}


def test_unknown_key_with_null_value_is_still_an_error() -> None:
    """A misspelt key is an error even when its value is null."""
    assert paths_of(body(temprature=None)) == {"/temprature"}


# --- enumerations -------------------------------------------------------------------------


ENUMS: list[tuple[str, Callable[[Any], Body], list[str], str | None]] = [
    ("/mode", lambda v: body(mode=v), MODES, None),
    ("/reasoning_effort", lambda v: body(reasoning_effort=v), EFFORTS, None),
    ("/verbosity", lambda v: body(verbosity=v), ["low", "medium", "high"], "medium"),
    (
        "/provider/data_collection",
        lambda v: body(provider={"data_collection": v}),
        ["allow", "deny"],
        "allow",
    ),
    (
        "/provider/sort",
        lambda v: body(provider={"sort": v}),
        ["price", "throughput", "latency"],
        None,
    ),
    ("/reasoning/effort", lambda v: body(reasoning={"effort": v}), EFFORTS, None),
]


def _lookup(norm: Body, path: str) -> Any:
    node: Any = norm
    for part in path.split("/")[1:]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@pytest.mark.parametrize(("path", "place", "allowed", "drop"), ENUMS, ids=[e[0] for e in ENUMS])
def test_enum_values_accepted(
    path: str, place: Callable[[Any], Body], allowed: list[str], drop: str | None
) -> None:
    """Every listed string is accepted; the default is dropped, every other value kept."""
    for value in allowed:
        assert _lookup(normalized(place(value)), path) == (None if value == drop else value)


@pytest.mark.parametrize(("path", "place", "allowed", "drop"), ENUMS, ids=[e[0] for e in ENUMS])
def test_enum_other_values_rejected(
    path: str, place: Callable[[Any], Body], allowed: list[str], drop: str | None
) -> None:
    """A different case, an empty string, padding or a non-string is an error at the field."""
    first = allowed[0]
    for wrong in (first.upper(), "", f" {first}", first + "\x00", 1, True, [first]):
        assert paths_of(place(wrong)) == {path}, wrong


def test_reasoning_effort_is_never_dropped() -> None:
    """reasoning_effort has no default: every value, "medium" included, is kept."""
    assert normalized(body(reasoning_effort="medium"))["reasoning_effort"] == "medium"
    assert normalized(body(reasoning_effort="none"))["reasoning_effort"] == "none"


# --- select_top_logprobs ----------------------------------------------------------------


@pytest.mark.parametrize("mode", [m for m in MODES if not m.endswith("_logprobs")])
@pytest.mark.parametrize("value", [0, 1, 5, 20])
def test_select_top_logprobs_needs_a_logprobs_mode(mode: str, value: int) -> None:
    """select_top_logprobs with a mode that is not *_logprobs is an error, even at 0 or 1."""
    assert paths_of(body(mode=mode, select_top_logprobs=value)) == {"/select_top_logprobs"}


@pytest.mark.parametrize("mode", [m for m in MODES if m.endswith("_logprobs")])
def test_select_top_logprobs_with_logprobs_modes(mode: str) -> None:
    """With a *_logprobs mode, 0 and 1 are dropped and 2 to 20 are kept."""
    assert "select_top_logprobs" not in normalized(body(mode=mode, select_top_logprobs=0))
    assert "select_top_logprobs" not in normalized(body(mode=mode, select_top_logprobs=1))
    assert normalized(body(mode=mode, select_top_logprobs=0)) == normalized(body(mode=mode))
    for value in (2, 20):
        assert normalized(body(mode=mode, select_top_logprobs=value))["select_top_logprobs"] == (
            value
        )


def test_select_top_logprobs_null_is_fine_with_any_mode() -> None:
    """A null select_top_logprobs is absent, so it is allowed with the generate mode."""
    assert_dropped(body(mode="generate", select_top_logprobs=None))


# --- logit_bias -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["0", "7", "50256", "1" + "0" * 30])
def test_logit_bias_token_ids(key: str) -> None:
    """Token ids are decimal strings without leading zeros; "0" itself is allowed."""
    assert normalized(body(logit_bias={key: 5}))["logit_bias"] == {key: 5}


def test_logit_bias_very_long_token_id() -> None:
    """A token id longer than Python's int-parsing limit (4300 digits) is still just a key."""
    key = "9" * 5000
    assert normalized(body(logit_bias={key: 5, "2": 1}))["logit_bias"] == {key: 5, "2": 1}


@pytest.mark.parametrize(
    "key", ["00", "007", "-1", "+1", "1.0", "1e3", " 1", "1 ", "a", "", "\uff11", "\u0661", "1\n"]
)
def test_logit_bias_bad_token_ids(key: str) -> None:
    """Leading zeros, signs, decimals, spaces and non-ASCII digits are not token ids (a path
    is written printably: a newline in a key shows as ``\\n``)."""
    pointer = "/logit_bias/" + printable(key)
    assert paths_of(body(logit_bias={key: 5})) == {pointer}


def test_logit_bias_values() -> None:
    """Values are integers -100..100 (integral floats allowed); others fail at their key."""
    norm = normalized(body(logit_bias={"1": -100, "2": 100, "3": 7.0}))
    assert norm["logit_bias"] == {"1": -100, "2": 100, "3": 7}
    assert type(norm["logit_bias"]["3"]) is int
    bad = {"1": 101, "2": -101, "3": 2.5, "4": True, "5": "5", "6": 7}
    assert paths_of(body(logit_bias=bad)) == {f"/logit_bias/{k}" for k in "12345"}


def test_logit_bias_zero_entries_removed() -> None:
    """Entries with value 0 are removed, and an object left empty is dropped."""
    assert normalized(body(logit_bias={"1": 0, "2": 3, "3": 0.0}))["logit_bias"] == {"2": 3}
    assert_dropped(body(logit_bias={"1": 0, "2": -0.0}))
    assert_dropped(body(logit_bias={}))


@pytest.mark.parametrize("value", [[], ["1"], "1", 1, True])
def test_logit_bias_must_be_an_object(value: Any) -> None:
    """logit_bias that is not an object is an error at /logit_bias."""
    assert paths_of(body(logit_bias=value)) == {"/logit_bias"}


# --- stop ---------------------------------------------------------------------------------


def test_stop_forms_are_equivalent() -> None:
    """ "x", ["x"] and ["x","x"] normalize to the plain string "x"."""
    forms = [body(stop="x"), body(stop=["x"]), body(stop=["x", "x"])]
    assert {registry.validate(f).name for f in forms} == {registry.validate(forms[0]).name}
    assert normalized(forms[2])["stop"] == "x"


def test_stop_array_sorted_and_deduplicated() -> None:
    """An array of several strings is sorted by code point and de-duplicated."""
    assert normalized(body(stop=["b", "a", "b", "B"]))["stop"] == ["B", "a", "b"]


def test_stop_sorted_by_code_point_not_utf16() -> None:
    """U+FFFF sorts before U+1F600 (by code point), though UTF-16 would order them the other way."""
    assert normalized(body(stop=["\U0001f600", "\uffff"]))["stop"] == ["\uffff", "\U0001f600"]


def test_stop_empty_array_dropped() -> None:
    """An empty stop array is dropped."""
    assert_dropped(body(stop=[]))


@pytest.mark.parametrize(
    ("value", "paths"),
    [
        ("", {"/stop"}),
        ([""], {"/stop/0"}),
        (["a", "", 3, None], {"/stop/1", "/stop/2", "/stop/3"}),
        (5, {"/stop"}),
        ({"a": 1}, {"/stop"}),
        (True, {"/stop"}),
        (["\ud800"], {"/stop/0"}),
    ],
)
def test_stop_bad_values(value: Any, paths: set[str]) -> None:
    """Every stop string must be non-empty valid Unicode; each bad item is reported."""
    assert paths_of(body(stop=value)) == paths


# --- provider -----------------------------------------------------------------------------


def test_provider_order_keeps_first_of_duplicates() -> None:
    """provider.order is de-duplicated keeping the first, without sorting."""
    assert normalized(body(provider={"order": ["b", "a", "b", "c", "a"]}))["provider"] == {
        "order": ["b", "a", "c"]
    }


@pytest.mark.parametrize("key", ["only", "ignore"])
def test_provider_only_and_ignore_are_sorted_sets(key: str) -> None:
    """provider.only and provider.ignore are sorted and de-duplicated."""
    assert normalized(body(provider={key: ["z", "a", "z", "m"]}))["provider"] == {
        key: ["a", "m", "z"]
    }


def test_provider_quantizations_follow_the_spec_order() -> None:
    """quantizations are de-duplicated and ordered as listed in the spec, not alphabetically."""
    given = [*reversed(QUANTIZATIONS), "fp8", "int4"]
    assert normalized(body(provider={"quantizations": given}))["provider"] == {
        "quantizations": QUANTIZATIONS
    }
    assert normalized(body(provider={"quantizations": ["fp16", "bf16", "fp4"]}))["provider"] == {
        "quantizations": ["fp4", "fp16", "bf16"]
    }


def test_provider_quantizations_unknown_value() -> None:
    """A quantization not in the list is an error at its index."""
    bad = body(provider={"quantizations": ["fp8", "fp2", "FP16", 8]})
    assert paths_of(bad) == {"/provider/quantizations/1", "/provider/quantizations/2"} | {
        "/provider/quantizations/3"
    }


@pytest.mark.parametrize("key", ["order", "only", "ignore", "quantizations"])
def test_provider_empty_arrays_dropped(key: str) -> None:
    """An empty provider array is dropped, and the provider with it when nothing is left."""
    assert_dropped(body(provider={key: []}))


@pytest.mark.parametrize("key", ["order", "only", "ignore"])
def test_provider_strings_must_be_non_empty(key: str) -> None:
    """Provider names are non-empty strings; every bad item is reported at its index."""
    bad = body(provider={key: ["a", "", 1, None]})
    assert paths_of(bad) == {f"/provider/{key}/{i}" for i in (1, 2, 3)}
    assert paths_of(body(provider={key: "a"})) == {f"/provider/{key}"}


def test_provider_spec_example_message() -> None:
    """An empty provider name is reported as in the spec's example."""
    assert errors_of(body(provider={"order": ["a", ""]})) == [
        ("/provider/order/1", "must be a non-empty string")
    ]


def test_provider_flags() -> None:
    """allow_fallbacks true and require_parameters false are dropped; their opposites kept."""
    assert_dropped(body(provider={"allow_fallbacks": True, "require_parameters": False}))
    kept = body(provider={"allow_fallbacks": False, "require_parameters": True})
    assert normalized(kept)["provider"] == {"allow_fallbacks": False, "require_parameters": True}


@pytest.mark.parametrize("key", ["allow_fallbacks", "require_parameters"])
@pytest.mark.parametrize("value", [0, 1, "true", [True]])
def test_provider_flags_must_be_booleans(key: str, value: Any) -> None:
    """A provider flag accepts only true or false, not numbers or strings."""
    assert paths_of(body(provider={key: value})) == {f"/provider/{key}"}


def test_provider_all_defaults_dropped() -> None:
    """A provider object holding only defaults and empties is dropped entirely."""
    assert_dropped(
        body(
            provider={
                "order": [],
                "allow_fallbacks": True,
                "require_parameters": False,
                "data_collection": "allow",
                "only": [],
                "ignore": [],
                "quantizations": [],
                "sort": None,
            }
        )
    )
    assert_dropped(body(provider={}))


@pytest.mark.parametrize("value", [[], "x", 1, True])
def test_provider_must_be_an_object(value: Any) -> None:
    """A provider that is not an object is an error at /provider."""
    assert paths_of(body(provider=value)) == {"/provider"}


# --- reasoning --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "result"),
    [
        ({"max_tokens": 0}, None),
        ({}, None),
        ({"max_tokens": 0, "enabled": True}, {"enabled": True}),
        # max_tokens 0 is dropped before the enabled rule is applied: not an error.
        ({"max_tokens": 0, "enabled": False}, {"enabled": False}),
        ({"enabled": False}, {"enabled": False}),
        ({"enabled": True}, {"enabled": True}),
        ({"max_tokens": 100}, {"max_tokens": 100, "enabled": True}),
        ({"max_tokens": 100.0, "enabled": True}, {"max_tokens": 100, "enabled": True}),
        ({"effort": "low"}, {"effort": "low", "enabled": True}),
        ({"effort": "none"}, {"effort": "none", "enabled": True}),
        ({"max_tokens": 0, "effort": "high"}, {"effort": "high", "enabled": True}),
    ],
)
def test_reasoning_normalization(given: Body, result: Body | None) -> None:
    """Reasoning drops max_tokens 0, then fills enabled, then is dropped when empty."""
    norm = normalized(body(reasoning=given))
    assert norm.get("reasoning") == result


def test_reasoning_enabled_filled_means_the_same() -> None:
    """Giving enabled: true explicitly names the same Query LLM as letting it be filled in."""
    implicit = registry.validate(body(reasoning={"effort": "low", "max_tokens": 9}))
    explicit = registry.validate(
        body(reasoning={"effort": "low", "max_tokens": 9, "enabled": True})
    )
    assert implicit.name == explicit.name


@pytest.mark.parametrize(
    "given",
    [
        {"enabled": False, "effort": "low"},
        {"enabled": False, "max_tokens": 5},
        {"enabled": False, "max_tokens": 5, "effort": "none"},
    ],
)
def test_reasoning_disabled_with_settings_is_an_error(given: Body) -> None:
    """enabled: false is an error when max_tokens or effort is set, reported at /reasoning."""
    assert paths_of(body(reasoning=given)) == {"/reasoning"}


@pytest.mark.parametrize("value", [0, 1, "false", None])
def test_reasoning_enabled_must_be_boolean(value: Any) -> None:
    """reasoning.enabled must be true or false (null is absent)."""
    given = body(reasoning={"enabled": value})
    if value is None:
        assert_dropped(given)
    else:
        assert paths_of(given) == {"/reasoning/enabled"}


@pytest.mark.parametrize("value", [[], "x", 1])
def test_reasoning_must_be_an_object(value: Any) -> None:
    """A reasoning that is not an object is an error at /reasoning."""
    assert paths_of(body(reasoning=value)) == {"/reasoning"}


# --- weight -----------------------------------------------------------------------------------


def _tt(base: float, lo: float, hi: float) -> Body:
    return body(
        weight={"type": "training_table", "base_weight": base, "min_weight": lo, "max_weight": hi}
    )


@pytest.mark.parametrize(
    ("base", "lo", "hi"),
    [(5, 5, 5), (0, 0, 1), (0, 0, 1e6), (1e6, 1e6, 1e6), (1, 0, 2), (0.5, 0.25, 0.75)],
)
def test_training_table_bounds_in_order(base: float, lo: float, hi: float) -> None:
    """0 <= min <= base <= max <= 1e6 with max > 0 is accepted, equal bounds included."""
    llm = registry.validate(_tt(base, lo, hi))
    assert normalized(_tt(base, lo, hi))["weight"] == {
        "type": "training_table",
        "base_weight": base,
        "min_weight": lo,
        "max_weight": hi,
    }
    assert llm.training_table_name is not None


@pytest.mark.parametrize(
    ("base", "lo", "hi"),
    [(0, 0, 0), (1, 2, 3), (3, 1, 2), (2, 3, 1), (1, 1, 0.5)],
    ids=["all-zero", "min>base", "base>max", "reversed", "max<min"],
)
def test_training_table_bounds_out_of_order(base: float, lo: float, hi: float) -> None:
    """Bounds out of order, or a zero max_weight, are one error at /weight."""
    assert paths_of(_tt(base, lo, hi)) == {"/weight"}


@pytest.mark.parametrize("missing", ["base_weight", "min_weight", "max_weight"])
def test_training_table_bounds_required(missing: str) -> None:
    """Each training-table bound is required (and null counts as missing)."""
    weight = {"type": "training_table", "base_weight": 1, "min_weight": 0, "max_weight": 2}
    assert paths_of(body(weight={k: v for k, v in weight.items() if k != missing})) == {
        f"/weight/{missing}"
    }
    assert paths_of(body(weight={**weight, missing: None})) == {f"/weight/{missing}"}


def test_static_weight_required() -> None:
    """A static weight needs its weight value."""
    assert paths_of(body(weight={"type": "static"})) == {"/weight/weight"}


@pytest.mark.parametrize(
    ("weight", "path"),
    [
        ({"weight": 1}, "/weight/type"),
        ({"type": None, "weight": 1}, "/weight/type"),
        ({"type": "dynamic", "weight": 1}, "/weight/type"),
        ({"type": "Static", "weight": 1}, "/weight/type"),
        ({"type": 1, "weight": 1}, "/weight/type"),
        ([1], "/weight"),
        ("static", "/weight"),
        (1, "/weight"),
    ],
)
def test_weight_type(weight: Any, path: str) -> None:
    """A weight is an object whose type is static or training_table."""
    assert paths_of(body(weight=weight)) == {path}


def test_training_table_name_only_for_training_tables() -> None:
    """A static weight has no training table name; a training-table weight has one."""
    assert registry.validate(body()).training_table_name is None
    assert registry.validate(_tt(1, 0, 2)).training_table_name is not None


def test_training_table_name_ignores_weight_bounds() -> None:
    """Query LLMs that differ only in their weight bounds share a training table, not a name."""
    first, second = registry.validate(_tt(1, 0, 2)), registry.validate(_tt(2, 1, 3))
    assert first.training_table_name == second.training_table_name
    assert first.name != second.name
    other = registry.validate(_tt(1, 0, 2) | {"temperature": 0.5})
    assert other.training_table_name != first.training_table_name


# --- model ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_id",
    ["m", "a" * 256, "é" * 256, "\U0001f600" * 256, "openai/gpt-4o:free", "~/x"],
    ids=["one", "256-ascii", "256-latin", "256-astral", "suffix", "punctuation"],
)
def test_model_id_accepted(model_id: str) -> None:
    """Ids of 1 to 256 characters (code points, not bytes) without white space are accepted."""
    assert normalized(body(id=model_id))["id"] == model_id
    assert normalized(body(models=[model_id]))["models"] == [model_id]


@pytest.mark.parametrize(
    "model_id",
    [
        "",
        "a" * 257,
        "a b",
        " a",
        "a\t",
        "a\nb",
        "a\u00a0b",
        "a\u2028b",
        "a\u3000b",
        "a\x00b",
        "a\x1fb",
        "a\x7fb",
        "a\x85b",
        "a\ud800b",
        "\udfff",
    ],
    ids=[
        "empty",
        "257",
        "space",
        "leading-space",
        "tab",
        "newline",
        "nbsp",
        "line-separator",
        "ideographic-space",
        "nul",
        "unit-separator",
        "del",
        "nel",
        "lone-high-surrogate",
        "lone-low-surrogate",
    ],
)
def test_model_id_rejected(model_id: str) -> None:
    """Empty, over-long, white space, control characters and lone surrogates are errors."""
    assert paths_of(body(id=model_id)) == {"/id"}
    assert paths_of(body(models=["ok", model_id])) == {"/models/1"}


@pytest.mark.parametrize("value", [1, ["m"], {"m": 1}, True])
def test_model_id_must_be_a_string(value: Any) -> None:
    """A non-string id is an error at /id."""
    assert paths_of(body(id=value)) == {"/id"}


def test_models_deduplicated_keeping_first() -> None:
    """models keeps its order and drops later duplicates; an empty array is dropped."""
    assert normalized(body(models=["b", "a", "b", "c", "a"]))["models"] == ["b", "a", "c"]
    assert_dropped(body(models=[]))


@pytest.mark.parametrize("value", ["a", 1, {"a": 1}])
def test_models_must_be_an_array(value: Any) -> None:
    """models that is not an array is an error at /models."""
    assert paths_of(body(models=value)) == {"/models"}


# --- the 64 KiB limit -----------------------------------------------------------------------------


def _with_stop_of(length: int, char: str = "a") -> Body:
    return body(stop=char * length)


def _overhead() -> int:
    """Bytes of the canonical form that are not the stop string itself."""
    return len(registry.validate(_with_stop_of(1)).canonical) - 1


def test_canonical_limit_exactly_64_kib_passes() -> None:
    """A body whose canonical form is exactly 65536 bytes is accepted."""
    llm = registry.validate(_with_stop_of(65536 - _overhead()))
    assert len(llm.canonical) == 65536


def test_canonical_limit_one_byte_over_fails() -> None:
    """A body whose canonical form is 65537 bytes is an error for the whole body."""
    assert paths_of(_with_stop_of(65537 - _overhead())) == {""}


def test_canonical_limit_counts_utf8_bytes() -> None:
    """The limit is on UTF-8 bytes: fewer than 64 Ki characters can still exceed it."""
    chars = (65537 - _overhead() + 1) // 2  # "é" is two bytes
    assert chars < 65536
    assert paths_of(_with_stop_of(chars, "é")) == {""}


def test_canonical_limit_is_on_the_normalized_form() -> None:
    """A large body that normalizes to a small one (duplicates, zero biases) is accepted."""
    big = body(stop=["x"] * 50_000, logit_bias={str(i): 0 for i in range(5_000)})
    assert len(json.dumps(big)) > 2 * 65536
    assert registry.validate(big).name == registry.validate(body(stop="x")).name


# --- every problem at once; paths -------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    """A body with many independent faults yields one error path per fault."""
    faulty = {
        "id": "has space",
        "mode": "generate",
        "select_top_logprobs": 3,
        "temperature": 9,
        "top_k": 2.5,
        "top_p": True,
        "verbosity": "loud",
        "stop": ["ok", ""],
        "logit_bias": {"01": 1, "5": 500},
        "models": ["a", 1],
        "provider": {"order": ["a", ""], "sort": "cheapest", "colour": "red"},
        "reasoning": {"effort": "max"},
        "weight": {"type": "training_table", "base_weight": 30, "min_weight": 1, "max_weight": 20},
        "temprature": 1,
    }
    assert paths_of(faulty) == {
        "/id",
        "/select_top_logprobs",
        "/temperature",
        "/top_k",
        "/top_p",
        "/verbosity",
        "/stop/1",
        "/logit_bias/01",
        "/logit_bias/5",
        "/models/1",
        "/provider/order/1",
        "/provider/sort",
        "/provider/colour",
        "/reasoning/effort",
        "/weight",
        "/temprature",
    }
    assert len(errors_of(faulty)) == 16  # one problem per fault, none reported twice


def test_nested_cross_field_errors_reported_with_others() -> None:
    """The enabled rule and the weight-order rule are reported alongside field errors."""
    faulty = body(
        temperature=-1,
        reasoning={"enabled": False, "effort": "low"},
        weight={"type": "training_table", "base_weight": 3, "min_weight": 4, "max_weight": 5},
        provider={"only": [""]},
    )
    assert paths_of(faulty) == {"/temperature", "/reasoning", "/weight", "/provider/only/0"}


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (body(**{"a/b": 1}), "/a~1b"),
        (body(**{"m~n": 1}), "/m~0n"),
        (body(**{"~1": 1}), "/~01"),
        (body(**{"~/": 1}), "/~0~1"),
        (body(provider={"x/y": 1}), "/provider/x~1y"),
        (body(logit_bias={"1/2": 1}), "/logit_bias/1~12"),
        (body(logit_bias={"~0": 1}), "/logit_bias/~00"),
    ],
)
def test_json_pointer_escaping(value: Body, path: str) -> None:
    """Paths are JSON pointers: ~ is written ~0 and / is written ~1 (in that order)."""
    assert paths_of(value) == {path}


@pytest.mark.parametrize(
    "value", [None, [], [body()], "body", 1, 1.5, True, json.dumps(body())], ids=repr
)
def test_non_object_body(value: Any) -> None:
    """A body that is not a JSON object is one error at the empty path (the whole document)."""
    errors = errors_of(value)
    assert len(errors) == 1
    assert errors[0][0] == ""


def test_validation_error_shape() -> None:
    """Errors are registry.ValidationError (a RegistryError) with a list of (path, message)."""
    with pytest.raises(registry.ValidationError) as info:
        registry.validate(body(temperature=3, top_p=2))
    exc = info.value
    assert isinstance(exc, registry.RegistryError)
    assert isinstance(exc.errors, list)
    assert [path for path, _ in exc.errors] == ["/temperature", "/top_p"]
    for path, message in exc.errors:
        assert isinstance(path, str)
        assert isinstance(message, str)
        assert message
    assert str(exc).splitlines() == [f"{path}: {message}" for path, message in exc.errors]


def test_validate_does_not_change_its_input() -> None:
    """validate leaves the caller's body untouched, valid or not."""
    valid = body(
        stop=["b", "a", "a"],
        provider={"only": ["z", "a"], "allow_fallbacks": True},
        reasoning={"effort": "low"},
        logit_bias={"1": 0, "2": 2.0},
        weight={"type": "training_table", "base_weight": 2.0, "min_weight": 1, "max_weight": 3},
    )
    invalid = body(temperature=5, provider={"order": [""]})
    for given in (valid, invalid):
        before = copy.deepcopy(given)
        with contextlib.suppress(registry.ValidationError):
            registry.validate(given)
        assert given == before
        assert json.dumps(given) == json.dumps(before)


# --- dump: the section-5 response body --------------------------------------------------------


def test_dump_static_has_no_training_table_name_key() -> None:
    """dump of a static-weight Query LLM is the normalized form plus name, nothing else."""
    llm = registry.validate(body(temperature=0.5))
    assert registry.dump(llm) == {**json.loads(llm.canonical), "name": llm.name}
    assert "training_table_name" not in registry.dump(llm)


def test_dump_training_table_has_both_names() -> None:
    """dump of a training-table Query LLM adds both name and training_table_name."""
    llm = registry.validate(_tt(1, 0, 2))
    dumped = registry.dump(llm)
    assert dumped == {
        **json.loads(llm.canonical),
        "name": llm.name,
        "training_table_name": llm.training_table_name,
    }
    assert set(dumped) == {"id", "mode", "weight", "name", "training_table_name"}


def test_dump_is_json_and_a_fresh_dict() -> None:
    """dump returns plain JSON values, and changing the result does not change the Query LLM."""
    llm = registry.validate(body(stop=["a", "b"], provider={"order": ["x"]}))
    first = registry.dump(llm)
    assert json.loads(json.dumps(first)) == first
    first["stop"].append("c")
    first["id"] = "changed"
    assert registry.dump(llm)["stop"] == ["a", "b"]
    assert registry.dump(llm)["id"] == "openai/gpt-4o"
