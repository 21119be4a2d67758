"""Issue 19 on every surface: the library on a file, the `Client` over a real server, and
the library on PostgreSQL give the same answers and the same errors for the same input.
Identifiers and request ids (items 10, 13), times (item 9), response bodies given back
(item 12), mappings as events (item 11), and the Client checking what the library checks
(item 15): names that are no names, empty values, wrong types, tokens no token can be."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest

import registry
from registry import AuthenticationError, ValidationError
from registry._convert import dump, dump_model
from registry.naming import not_a_name
from tests.support.behaviour import Reg
from tests.support.data import body

pytestmark = pytest.mark.surfaces  # each reg test: library, HTTP and PostgreSQL

FORMAT = (
    "must not contain format characters such as U+202E"
    " (invisible, or changing the direction of the text around it)"
)


def errors_of(call: Any, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        call(*args, **kwargs)
    return caught.value.errors


def requests(reg: Reg, name: str, start: str | None = None, end: str | None = None) -> int:
    return int(reg.get(name, metadata=True, start=start, end=end)["requests"])


# --- identifiers and request ids ---------------------------------------------------------


def test_format_characters_in_ids_are_refused(reg: Reg) -> None:
    """``openai/\\u202egpt-4o-evil`` would show as ``openai/live-o4-tpg``: refused (item 10)."""
    assert errors_of(reg.register, body(id="openai/\u202egpt-4o-evil")) == [("/id", FORMAT)]
    assert errors_of(reg.register, body(models=["\u202e"])) == [("/models/0", FORMAT)]
    assert reg.count() == 0


@pytest.mark.parametrize(
    ("request_id", "message"),
    [
        ("a\x00b", "must not contain control characters"),
        ("a\tb", "must not contain control characters"),
        ("\u202eabc", FORMAT),
    ],
    ids=["nul", "tab", "direction"],
)
def test_control_and_format_characters_in_request_ids_are_refused(
    reg: Reg, llm: registry.QueryLlm, request_id: str, message: str
) -> None:
    """A NUL in a request id is a 400 at /request_id on both backends, before any
    transaction (item 13); nothing of it, or of its batch, is written."""
    assert errors_of(reg.record_usage, llm.name, request_id=request_id) == [
        ("/request_id", message)
    ]
    batch = [{"name": llm.name, "request_id": "fine"}, {"name": llm.name, "request_id": request_id}]
    assert errors_of(reg.record_usage_many, batch) == [("/1/request_id", message)]
    assert requests(reg, llm.name) == 0
    assert reg.record_usage(llm.name, request_id="a b ok") == 1  # a space is fine


# --- times ---------------------------------------------------------------------------------------


def test_hour_24_is_refused_and_a_leap_second_stays_in_its_day(
    reg: Reg, llm: registry.QueryLlm
) -> None:
    """``24:00:00`` is not the next midnight (item 9); ``23:59:60Z`` is the last microsecond
    of its day, counted in that day, that hour and that minute."""
    assert [p for p, _ in errors_of(reg.record_usage, llm.name, at="2026-06-30T24:00:00Z")] == [
        "/at"
    ]
    assert [p for p, _ in errors_of(reg.get, llm.name, True, start="2026-06-30T24:00:00Z")] == [
        "/from"
    ]
    assert reg.record_usage(llm.name, at="2016-12-31T23:59:60Z") == 1
    assert reg.record_usage(llm.name, at="2016-12-31T15:59:60.5-08:00", request_id="r") == 1
    assert requests(reg, llm.name, "2016-12-31T23:59:59.999999Z", "2017-01-01") == 2
    assert requests(reg, llm.name, "2016-12-31", "2016-12-31T23:59:59.999999Z") == 0


# --- a response body given back as a request ---------------------------------------------------


def test_response_bodies_register_again(reg: Reg) -> None:
    """``qllm validate FILE | qllm register -``: the names a response adds are accepted when
    they are the body's own (item 12), for Query LLMs and Query Models."""
    training = {"type": "training_table", "base_weight": 2, "min_weight": 1, "max_weight": 3}
    llm = registry.validate(body(weight=training))
    assert reg.register(dump(llm)).name == llm.name
    model = registry.validate_model(
        {
            "models": [body(weight=training), body(id="b", weight=training)],
            "weight": {"type": "training_table", "embeddings_model": "e", "top": 3},
        }
    )
    assert reg.register_model(dump_model(model)).name == model.name
    assert reg.get_model(model.name)["name"] == model.name


def test_response_bodies_with_other_names_are_refused(reg: Reg) -> None:
    other = registry.validate(body(id="other")).name
    given = {**dump(registry.validate(body())), "name": other}
    own = registry.validate(body()).name
    assert errors_of(reg.register, given) == [
        ("/name", f"must be {own!r}, this body's name, or left out")
    ]
    assert reg.count() == 0


# --- events given as any mapping -------------------------------------------------------------


class Event(Mapping[str, Any]):
    """A read-only mapping that is not a dict."""

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def test_any_mapping_is_an_event(reg: Reg, llm: registry.QueryLlm) -> None:
    """``record_usage_many`` takes any `Mapping` (item 11), on the library and the Client."""
    events = [
        MappingProxyType({"name": llm.name, "request_id": "proxy", "chat_cost": "0.5"}),
        Event(name=llm.name, request_id="own", chat_prompt_tokens=3),
    ]
    assert reg.record_usage_many(events) == 2
    assert reg.get(llm.name, metadata=True)["chat_prompt_tokens"] == 3
    with pytest.raises(ValidationError) as caught:
        reg.record_usage_many([Event(nam=llm.name)])
    assert [path for path, _ in caught.value.errors] == ["/0/nam", "/0/name"]


# --- what the Client checks before sending, as the library checks it ---------------------------


@pytest.mark.parametrize("name", ["..", ".", "count", "a/b", "", " ", "%2e%2e", "x" * 22 + "/"])
def test_names_that_are_no_names(reg: Reg, name: str) -> None:
    """``get("..")`` once fetched the dashboard over HTTP, ``get("count")`` a count and
    ``get("a/b")`` a 404: a name that is not 22 base62 characters is a 400 at /name."""
    assert errors_of(reg.get, name) == [("/name", not_a_name("Query LLM"))]
    assert errors_of(reg.get, name, metadata=True) == [("/name", not_a_name("Query LLM"))]
    assert errors_of(reg.get_model, name) == [("/name", not_a_name("Query Model"))]


SERIES = ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"names": [""]}, [("/name", "'' is not a Query LLM name (22 base62)")]),
        ({"query_model": ""}, [("/query_model", "'' is not a Query Model name (22 base62)")]),
        ({"bucket": ""}, [("/bucket", "must be one of: hour, day, week, month")]),
        (
            {"group_by": ["name,user_id"]},
            [("/group_by", "'name,user_id' is not one of: name, query_model, model, user_id")],
        ),
        ({"group_by": "name"}, None),
        ({"names": iter([])}, None),
    ],
    ids=["names", "query_model", "bucket", "group_by", "one key", "generator"],
)
def test_empty_and_odd_series_queries(
    reg: Reg, kwargs: dict[str, Any], expected: list[tuple[str, str]] | None
) -> None:
    """Empty values are refused as the library refuses them, never dropped from a query
    string; a comma is not a separator of keys in the library's list."""
    if expected is None:
        assert reg.usage_series(*SERIES, **kwargs) == reg.usage_series(*SERIES, **kwargs)
        return
    assert errors_of(reg.usage_series, *SERIES, **kwargs) == expected


NOT_A_TIME = "must be an RFC 3339 date-time such as 2026-11-01T00:00:00Z: ''"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"start": ""}, [("/from", NOT_A_TIME)]),
        ({"end": ""}, [("/to", NOT_A_TIME)]),
        ({"me": ""}, [("/me", "must be true or false")]),
        ({"me": 1}, [("/me", "must be true or false")]),
    ],
    ids=["from", "to", "me", "me-int"],
)
def test_empty_list_fields(reg: Reg, kwargs: dict[str, Any], expected: list[Any]) -> None:
    assert errors_of(reg.list, **kwargs) == expected
    assert errors_of(reg.list_models, **kwargs) == expected


@pytest.mark.parametrize("metadata", ["", "true", 1, None])
def test_metadata_is_true_or_false(reg: Reg, llm: registry.QueryLlm, metadata: Any) -> None:
    assert errors_of(reg.get, llm.name, metadata=metadata) == [
        ("/metadata", "must be true or false")
    ]


@pytest.mark.parametrize("token", ["qllm_é", " ", "qllm_\ud800", "qllm_a\nb"])
def test_tokens_that_cannot_be_tokens_are_unknown(
    reg: Reg, llm: registry.QueryLlm, token: str
) -> None:
    """``token="qllm_é"`` raised a bare UnicodeEncodeError over HTTP, ``" "`` a StorageError:
    an unknown token on every surface and call."""
    calls: list[Callable[[], Any]] = [
        lambda: reg.get(llm.name, token=token),
        lambda: reg.list(token=token),
        lambda: reg.count(token=token),
        lambda: reg.register(body(), token=token),
        lambda: reg.record_usage(llm.name, token=token),
        lambda: reg.record_usage_many([{"name": llm.name}], token=token),
        lambda: reg.usage_series(*SERIES, token=token),
    ]
    for call in calls:
        with pytest.raises(AuthenticationError, match="unknown token"):
            call()
    assert requests(reg, llm.name) == 0
