"""The private cattrs converter of bodies: Query LLMs and Query Models, wire JSON to model
and back (spec sections 2 and 3, QUERY_MODEL.md sections 1 to 4).

Structuring validates and normalizes in one pass: each field goes through the hook
of its rule (`registry.hooks`), and the class hooks here add the rules that span
fields (``select_top_logprobs`` only with a logprobs mode, the order of the weight
bounds, members' weight types) and the normalizations that need the whole object.
Unstructuring writes the normalized form back as JSON values, which `registry.naming`
hashes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import rfc8785

from registry.errors import ValidationError
from registry.hooks import Invalid, Path, class_hook, converter, error, register_rule, tagged
from registry.model import (
    LOGPROBS_MODES,
    MAX_CANONICAL_BYTES,
    MAX_MEMBERS,
    MAX_MODEL_CANONICAL_BYTES,
    Members,
    Provider,
    QueryLlm,
    QueryModel,
    Reasoning,
    StaticStrategy,
    StaticWeight,
    Strategy,
    TrainingTableStrategy,
    TrainingTableWeight,
    Weight,
    normalized,
)


def _members_hook(rule: Members, tp: Any) -> Callable[[Any, Any], tuple[QueryLlm, ...]]:
    count = f"must have {rule.lo} to {rule.hi} members"

    def hook(value: Any, _: Any) -> tuple[QueryLlm, ...]:
        if value is None:
            raise Invalid.at("is required")
        if not isinstance(value, list | tuple):
            raise Invalid.at("must be an array of Query LLMs")
        if not rule.lo <= len(value) <= rule.hi:
            # Members are not validated past the limit: a huge array costs nothing.
            raise Invalid.at(count)
        problems: list[tuple[Path, str]] = []
        members = []
        for index, item in enumerate(value):  # `index`: the position in the request
            try:
                member = _query_llm(item, None)
            except Invalid as exc:
                problems.extend(((index, *path), message) for path, message in exc.problems)
                continue
            too_big = _too_big(member)
            if too_big:
                problems.append(((index,), too_big))
            members.append(member)
        if problems:
            raise Invalid(problems)
        return tuple(sorted(members, key=_by_name))  # stable: duplicates are equal anyway

    return hook


def _by_name(llm: QueryLlm) -> str:
    return llm.name


def _query_llm_rules(body: Mapping[str, Any], failed: frozenset[str]) -> Iterator[tuple[Path, str]]:
    mode, top = body.get("mode"), body.get("select_top_logprobs")
    if top is not None and "mode" not in failed and mode not in LOGPROBS_MODES:
        yield ("select_top_logprobs",), "only allowed with a *_logprobs mode"


def _reasoning_rules(body: Mapping[str, Any], failed: frozenset[str]) -> Iterator[tuple[Path, str]]:
    if failed or body.get("enabled") is not False:  # a broken field is reported already
        return
    if body.get("max_tokens") or body.get("effort") is not None:
        yield (), "enabled cannot be false when max_tokens or effort is set"


def _training_table_rules(
    body: Mapping[str, Any], failed: frozenset[str]
) -> Iterator[tuple[Path, str]]:
    if failed:
        return
    low, base, high = body["min_weight"], body["base_weight"], body["max_weight"]
    if not low <= base <= high or high <= 0:
        yield (), "must have min_weight <= base_weight <= max_weight and max_weight > 0"


def _finish_reasoning(reasoning: Reasoning) -> Reasoning | None:
    # Spec 2.2, in this order: max_tokens 0 was dropped by its field rule, then
    # fill in enabled, then drop the object if nothing is left.
    if reasoning.enabled is None and (reasoning.max_tokens is not None or reasoning.effort):
        reasoning = attrs.evolve(reasoning, enabled=True)
    return reasoning if reasoning != _EMPTY_REASONING else None


def _finish_provider(provider: Provider) -> Provider | None:
    return provider if provider != _EMPTY_PROVIDER else None


_EMPTY_REASONING = Reasoning()
_EMPTY_PROVIDER = Provider()


_weight = tagged(
    {
        "static": class_hook(StaticWeight),
        "training_table": class_hook(TrainingTableWeight, _training_table_rules),
    }
)
_STRATEGIES = {
    "static": class_hook(StaticStrategy),
    "training_table": class_hook(TrainingTableStrategy),
}
converter.register_structure_hook(Weight, _weight)
converter.register_structure_hook(Strategy, tagged(_STRATEGIES))
converter.register_structure_hook(
    Provider | None, class_hook(Provider, finish=_finish_provider, optional=True)
)
converter.register_structure_hook(
    Reasoning | None, class_hook(Reasoning, _reasoning_rules, _finish_reasoning, optional=True)
)
# Last: a generated function binds the hooks registered when it is made.
_query_llm = class_hook(QueryLlm, _query_llm_rules)
register_rule(Members, _members_hook)


def _query_model_rules(
    body: Mapping[str, Any], failed: frozenset[str]
) -> Iterator[tuple[Path, str]]:
    # Every member's weight type must be the model's; a member whose own weight
    # type is unknown is reported by its own validation already.
    weight, members = body.get("weight"), body.get("models")
    kind = weight.get("type") if isinstance(weight, dict) else None
    if kind not in _STRATEGIES or not isinstance(members, list | tuple):
        return
    if len(members) > MAX_MEMBERS:
        return
    for index, member in enumerate(members):
        member_weight = member.get("weight") if isinstance(member, dict) else None
        member_kind = member_weight.get("type") if isinstance(member_weight, dict) else None
        if member_kind in _STRATEGIES and member_kind != kind:
            yield (
                ("models", index, "weight", "type"),
                f"must be {kind}, the Query Model's weight type",
            )


_query_model = class_hook(QueryModel, _query_model_rules)


def validate(body: Any) -> QueryLlm:
    """Validate and normalize a request body; raise `ValidationError` listing every problem.

    Pure: touches no database. The result carries its ``name`` and
    ``training_table_name``. A response body is a request body too: the names it
    carries are accepted when they are this body's (`_RESPONSE_KEYS`).
    """
    body, given = _response_keys(body, _NAMES)
    try:
        llm = _query_llm(body, None)
    except Invalid as exc:
        raise error(exc.problems) from None
    assert isinstance(llm, QueryLlm)
    too_big = _too_big(llm)
    if too_big:
        raise ValidationError.one("", too_big)
    problems = _mismatches(given, _names_of(llm), "this body's")
    if problems:
        raise error(problems)
    return llm


# --- the keys a response body adds, given back in a request ----------------------------------
#
# `qllm validate FILE | qllm register -` (and the same for Query Models) sends a response
# body back as a request. The keys the registry adds to a response (QUERY_LLM.md section 5,
# QUERY_MODEL.md section 4) are derived from the body, never part of it: given back, each
# must hold what the registry would add, and is then ignored; anything else is an error at
# its path, so that a body edited after its name was printed is not registered under a name
# that no longer says what it is.

_NAMES = ("name", "training_table_name")
_MEMBER_KEYS = (*_NAMES, "index", "training_table_index")
_ABSENT = "must be left out: this body has none (the registry adds it only to bodies that do)"


def _response_keys(body: Any, keys: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """``body`` without the response-only ``keys``, and the values it gave them."""
    if not isinstance(body, dict) or not any(key in body for key in keys):
        return body, {}
    given = {key: body[key] for key in keys if key in body}
    return {key: value for key, value in body.items() if key not in given}, given


def _names_of(thing: QueryLlm | QueryModel) -> dict[str, Any]:
    return {"name": thing.name, "training_table_name": thing.training_table_name}


def _mismatches(
    given: Mapping[str, Any], expected: Mapping[str, Any], whose: str, at: Path = ()
) -> list[tuple[Path, str]]:
    """The given response keys that do not hold what the registry adds (``expected``; a
    range for an index that duplicates share)."""
    problems: list[tuple[Path, str]] = []
    for key, value in given.items():
        want = expected.get(key)
        if want is None:
            problems.append(((*at, key), _ABSENT))
        elif isinstance(want, range):
            if value.__class__ is not int or value not in want:
                problems.append(
                    ((*at, key), f"must be {want[0]}, {whose} {key.replace('_', ' ')}, or left out")
                )
        elif value.__class__ is not want.__class__ or value != want:
            problems.append(((*at, key), f"must be {want!r}, {whose} {key}, or left out"))
    return problems


def _given_members(body: Any) -> tuple[Any, dict[int, dict[str, Any]]]:
    """A Query Model body without its members' response keys, and those given, by the
    member's position in the request."""
    members = body.get("models") if isinstance(body, dict) else None
    if not isinstance(members, list | tuple):
        return body, {}
    given: dict[int, dict[str, Any]] = {}
    stripped = []
    for index, given_member in enumerate(members):
        member, keys = _response_keys(given_member, _MEMBER_KEYS)
        stripped.append(member)
        if keys:
            given[index] = keys
    if not given:
        return body, {}
    return {**body, "models": stripped}, given


def _member_mismatches(
    model: QueryModel, members: list[Any], given: dict[int, dict[str, Any]]
) -> list[tuple[Path, str]]:
    """Each member's response keys against what `model_body` adds to that member."""
    names = [m.name for m in model.models]  # normalized order: sorted by name
    tables = sorted({m.training_table_name for m in model.models if m.training_table_name})
    problems: list[tuple[Path, str]] = []
    for index, keys in given.items():
        member = _query_llm(members[index], None)  # valid: the model was
        first = names.index(member.name)
        expected: dict[str, Any] = {
            **_names_of(member),
            "index": range(first, first + names.count(member.name)),
            "training_table_index": None,
        }
        if model.training_table_name is not None and member.training_table_name is not None:
            expected["training_table_index"] = range(
                tables.index(member.training_table_name),
                tables.index(member.training_table_name) + 1,
            )
        problems.extend(_mismatches(keys, expected, "this member's", ("models", index)))
    return problems


def _too_big(llm: QueryLlm) -> str | None:
    size = len(llm.canonical)
    if size > MAX_CANONICAL_BYTES:
        return f"canonical form is {size} bytes, over the 64 KiB limit"
    return None


def dump(llm: QueryLlm) -> dict[str, Any]:
    """The response body of spec section 5 without metadata: normalized form and names.

    The body is read back from the canonical bytes, so it is exactly what is
    hashed and stored, keys in canonical order, and equal to what `get` returns.
    """
    body: dict[str, Any] = json.loads(llm.canonical)
    body["name"] = llm.name
    if llm.training_table_name is not None:
        body["training_table_name"] = llm.training_table_name
    return body


def unstructure(llm: QueryLlm) -> dict[str, Any]:
    """The normalized form of ``llm`` as JSON-ready values (no names)."""
    return normalized(llm)


def unstructure_strategy(weight: Strategy) -> dict[str, Any]:
    """A Query Model's normalized weight strategy as JSON-ready values."""
    return normalized(weight)


# --- Query Models (QUERY_MODEL.md) ---------------------------------------------------------

# The normalized form in full is {"models":[<member>,...],"weight":<weight>}; RFC 8785 writes
# "models" before "weight" and nothing else, so its size is the sum of its parts.
_MODEL_FRAME = len(b'{"models":[],"weight":}')


def validate_model(body: Any) -> QueryModel:
    """Validate and normalize a Query Model body; raise `ValidationError` listing every problem.

    Member errors carry ``/models/<i>``, ``<i>`` the member's position in the request.
    Pure: touches no database. A response body is a request body too: the keys the
    registry adds (names, members' names and positions) are accepted when they are
    this body's.
    """
    body, given = _response_keys(body, _NAMES)
    body, members_given = _given_members(body)
    try:
        model = _query_model(body, None)
    except Invalid as exc:
        raise error(exc.problems) from None
    assert isinstance(model, QueryModel)
    size = _MODEL_FRAME + len(rfc8785.dumps(unstructure_strategy(model.weight)))
    size += sum(len(m.canonical) for m in model.models) + len(model.models) - 1
    if size > MAX_MODEL_CANONICAL_BYTES:
        raise ValidationError.one("", f"normalized form is {size} bytes, over the 1 MiB limit")
    problems = _mismatches(given, _names_of(model), "this body's")
    if members_given:
        problems.extend(_member_mismatches(model, body["models"], members_given))
    if problems:
        raise error(problems)
    return model


def normalized_model(model: QueryModel) -> dict[str, Any]:
    """The normalized form of a Query Model (QUERY_MODEL.md section 2), members in full."""
    return {
        "models": [unstructure(m) for m in model.models],
        "weight": unstructure_strategy(model.weight),
    }


def dump_model(model: QueryModel) -> dict[str, Any]:
    """The response body of QUERY_MODEL.md section 4 without metadata."""
    return model_body(
        model.name,
        model.training_table_name,
        [dump(m) for m in model.models],
        unstructure_strategy(model.weight),
    )


def model_body(
    name: str,
    training_table_name: str | None,
    members: list[dict[str, Any]],
    weight: dict[str, Any],
) -> dict[str, Any]:
    """A Query Model's response body from its members' response bodies, in normalized order.

    ``index`` is a member's position in that order; ``training_table_index`` the
    position of its training table among the model's distinct ones, sorted.
    """
    body: dict[str, Any] = {"name": name}
    tables: dict[str, int] = {}
    if training_table_name is not None:
        body["training_table_name"] = training_table_name
        distinct = sorted({m["training_table_name"] for m in members})
        tables = {table: position for position, table in enumerate(distinct)}
    body["models"] = [
        {**member, "index": index}
        | ({"training_table_index": tables[member["training_table_name"]]} if tables else {})
        for index, member in enumerate(members)
    ]
    body["weight"] = weight
    return body
