"""schemathesis against the ``/openapi.json`` of a live ``qllm serve`` process.

Every operation the document describes gets generated requests, valid and
invalid: no answer may be a 500, and every answer must match the response
schema the document gives for its status (undocumented statuses fail too).
Examples are bounded so the whole module stays within a few seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry.http import openapi, wire
from registry.http.app import ROUTES
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
