"""schemathesis against the ``/openapi.json`` of a live ``qllm serve`` process.

Every operation the document describes gets generated requests, valid and
invalid: no answer may be a 500, and every answer must match the response
schema the document gives for its status (undocumented statuses fail too).
Examples are bounded so the whole module stays within a few seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry import credits, times
from registry.http import openapi, wire
from registry.http.app import ROUTES
from registry.model import MAX_CREDITS_PER_EVENT
from registry.registry import Registry
from tests.support.servers import Servers

BODY = {"id": "openai/gpt-4o", "mode": "generate", "weight": {"type": "static", "weight": 1}}


@pytest.fixture(scope="module")
def live(servers: Servers) -> Iterator[tuple[str, Path]]:
    pid, url, path = servers.take()
    yield url, path
    servers.stop(pid)


@pytest.fixture(scope="module")
def api(live: tuple[str, Path]) -> tuple[Any, str]:
    url, path = live
    import httpx

    httpx.get(url + "/health").raise_for_status()  # the file is created and migrated
    with Registry(path) as reg:  # something to find, so some GETs answer 200 with a body
        name = reg.register(BODY).name
        reg.record_usage(name, chat_prompt_tokens=3, chat_cost="0.25")
    return schemathesis.openapi.from_url(url + "/openapi.json"), name


# What the issue asks: no 500, and each answer as documented (status, media type,
# headers, body schema). Not schemathesis's positive/negative acceptance checks: the
# rules past JSON Schema (a window's order, a registered name, a weight's range) make
# a schema-valid request a 400 by design, and an empty query field means "absent".
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# The operations this server's document describes, read from the same function that
# builds it, so a new route is covered without editing this list.
OPERATIONS = [
    (path, method, mode)
    for path, operations in openapi.document(ROUTES)["paths"].items()
    for method, operation in operations.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # nothing to make invalid in an operation without parameters or body
    if mode is GenerationMode.POSITIVE or operation.get("parameters") or "requestBody" in operation
]

# `/query_llms/count` is its own route: a concrete path is matched before a templated
# one (as OpenAPI says), so an invalid `{name}` spelled like a sibling route is that
# route's request, answered by its own schema, and not a case of `{name}`'s.
SIBLINGS = {path.rsplit("/", 1)[1] for path in openapi.document(ROUTES)["paths"] if "{" not in path}


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests on every run: a failure is reproducible
    database=None,
)
@given(data=st.data())
def test_no_500_and_every_answer_conforms(
    api: tuple[Any, str], path: str, method: str, mode: GenerationMode, data: st.DataObject
) -> None:
    schema, name = api
    known: dict[str, Any] = {}
    # A random name is never registered: half the time ask for the one that is, so
    # 200 answers with and without metadata are checked against their schema too.
    if "{name}" in path and mode is GenerationMode.POSITIVE and data.draw(st.booleans()):
        known["path_parameters"] = {"name": name}
    case = data.draw(schema[path][method].as_strategy(mode, **known))
    assume(str((case.path_parameters or {}).get("name")) not in SIBLINGS)
    case.call_and_validate(checks=CHECKS)


# --- the response renderer's fast path writes what the exact one writes --------------------

_DECIMALS = st.decimals(allow_nan=False, allow_infinity=False, places=9) | st.decimals(
    allow_nan=False, allow_infinity=False
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | _DECIMALS
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_render_fast_path_writes_the_exact_text(value: Any) -> None:
    assert wire.render(value) == wire._render_exact(value)


# --- the document's patterns are the rules' -------------------------------------------------
#
# JSON Schema reads a pattern as ECMA-262 does: anywhere in the string unless anchored,
# and `$` only at its very end. The document's patterns are anchored, so an ECMA match is
# a Python `fullmatch` of what lies between the anchors (Python's `$` would also accept a
# final newline, which ECMA's does not).


def _schema_of(field: str) -> dict[str, Any]:
    usage = openapi.document(ROUTES)["components"]["schemas"]["UsageEvent"]
    return usage["properties"][field]  # type: ignore[no-any-return]


def _ecma_full(pattern: str, text: str) -> bool:
    assert pattern.startswith("^")
    assert pattern.endswith("$")
    return re.fullmatch(pattern[1:-1], text) is not None


def _string_pattern(schema: dict[str, Any]) -> str:
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            return str(option["pattern"])
    raise AssertionError(f"no string in {schema}")


# Strings near the rule's edges: digits, signs, dots, exponents, spaces and lookalikes.
_COST_TEXTS = st.text(alphabet="0123456789+-.eE _\u0661", max_size=12) | st.from_regex(
    credits.COST_PATTERN, fullmatch=True
)


@settings(max_examples=1000, deadline=None)
@given(_COST_TEXTS)
@example("")
@example(".")
@example("e5")
@example("+.5")
@example("-0")
@example("-0.0e7")
@example("-.5")
@example("1e7")
def test_the_cost_pattern_accepts_exactly_what_the_rule_does(text: str) -> None:
    """The document's cost string pattern, against `nano_credits`: the same strings, but
    for the size of the value (at most 10**6 credits), which only the value can tell.
    (Exponents of 10**17 and more are left out: the rule's decimal arithmetic refuses
    some of them, even on zero, and no client writes one.)"""
    pattern = _string_pattern(_schema_of("chat_cost"))
    exponent = re.search(r"[eE]([+-]?[0-9]+)$", text)
    assume(exponent is None or abs(int(exponent[1])) < 10**17)
    try:
        credits.nano_credits(text)
        accepted = True
    except credits.CreditError:
        accepted = False
    if accepted:
        assert _ecma_full(pattern, text), text
    elif _ecma_full(pattern, text):  # only a value too large may pass the pattern
        assert _too_large(text), text


def _too_large(text: str) -> bool:
    """Whether decimal ``text`` (of the pattern) is over 10**6 credits once rounded to
    9 places, worked out from its digits (its exponent may be beyond a Decimal's)."""
    mantissa, _, exponent = text.lower().partition("e")
    whole, _, fraction = mantissa.lstrip("+-").partition(".")
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return False
    top = len(digits) - len(fraction) + int(exponent or 0)  # digits before the point
    if top != 7:
        return top > 7
    return Decimal(text).quantize(Decimal("1e-9")) > MAX_CREDITS_PER_EVENT


@st.composite
def _time_texts(draw: st.DrawFn) -> str:
    """Times of every shape the rule sees: right, nearly right and wrong."""
    digits = st.text("0123456789", min_size=1, max_size=3)
    date = draw(
        st.sampled_from(["2026-11-01", "2024-02-29", "2026-02-30", "2026-13-01", "0000-00-00"])
        | st.builds(lambda *p: "-".join(p), digits, digits, digits)
    )
    if draw(st.booleans()):
        return date
    clock = draw(
        st.sampled_from(["10:00:00", "23:59:59.999999", "24:00:00", "23:59:60", "9:00:00"])
        | st.builds(lambda *p: ":".join(p), digits, digits, digits)
    )
    if draw(st.booleans()):
        clock += "." + draw(st.text("0123456789", max_size=8))
    separator = draw(st.sampled_from("Tt x"))
    offset = draw(
        st.sampled_from(["Z", "z", "", "+01:00", "-05:30", "+0100", "+24:00", "UTC"])
        | st.text("0123456789+-:Z", max_size=6)
    )
    return date + separator + clock + offset


@settings(max_examples=1000, deadline=None)
@given(_time_texts() | st.text(max_size=30))
@example("2026-11-01")
@example("2026-11-01T00:00:00")
@example("2026-11-01 00:00:00+01:00")
@example("2026-11-01T00:00:00Z\n")
def test_the_time_pattern_accepts_exactly_what_the_rule_does(text: str) -> None:
    """The document's time pattern (every time field and query field), against
    `times.parse`: the same strings, but for what only the value can tell (and says so):
    numbers the calendar has no day or hour for (30 February, hour 25), a leap second
    that is not 23:59:60 in UTC, and a time outside years 1 to 9999 once in UTC."""
    pattern = _string_pattern(_schema_of("at"))
    assert pattern == _WINDOW_TIME["pattern"]
    refused = ""
    try:
        times.parse(text)
    except times.TimeError as exc:
        refused = str(exc)
    if not refused:
        assert _ecma_full(pattern, text), text
    elif _ecma_full(pattern, text):  # only a date or clock that does not exist may pass
        value_only = ("is not a valid date", "has second 60", "is past 9999", "is before 0001")
        assert refused.startswith(value_only), refused


_WINDOW_TIME = next(
    p["schema"]
    for p in openapi.document(ROUTES)["paths"]["/query_llms/{name}"]["get"]["parameters"]
    if p["name"] == "from"
)


def test_every_operation_documents_405() -> None:
    """A known path with another method is a 405: every operation says it can be."""
    for path, operations in openapi.document(ROUTES)["paths"].items():
        for method, operation in operations.items():
            if path != "/":
                assert "405" in operation["responses"], (path, method)
