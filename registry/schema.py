"""JSON Schemas generated from the rules in `registry.model`, never written by hand.

The model's fields carry their rules in ``Annotated`` metadata (`Number`,
`Choice`, `Strings`...); this module walks any attrs class and turns each rule
into the JSON Schema (2020-12, as OpenAPI 3.1 uses) of the wire value it
accepts. A schema describes what a body may look like; rules that span fields
(``select_top_logprobs`` only with a logprobs mode, the weight bounds' order)
are left to `registry.validate`, which has the last word.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import attrs

from registry import credits, model, times
from registry.hooks import literal_values
from registry.model import (
    MAX_ANSWER,
    MAX_CREDITS_PER_EVENT,
    MAX_DIMENSIONS,
    MAX_DISTRIBUTION,
    MAX_FORMAT_HASH,
    MAX_TOKENS_PER_EVENT,
    Amount,
    Answer,
    Choice,
    Confidence,
    Cost,
    Embedding,
    Flag,
    FormatHash,
    Identifier,
    LogitBias,
    Members,
    Moment,
    Number,
    QueryLlmName,
    QueryModelName,
    Stop,
    Strings,
    Text,
    Votes,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_IDENTIFIER = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$",
}
_NON_EMPTY = {"type": "string", "minLength": 1}
_ANSWER = {"type": "string", "minLength": 1, "maxLength": MAX_ANSWER}
# A time, as every field and query field of one reads it (`registry.times`).
TIME: dict[str, Any] = {
    "type": "string",
    "pattern": f"^{times.PATTERN}$",
    "description": (
        "RFC 3339: a date-time with a UTC offset, or a date (its midnight UTC); hours 00 to"
        " 23, a leap second only as 23:59:60 UTC, years 1 to 9999 once in UTC"
    ),
}


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _members(tp: Any) -> list[Any]:
    """The non-null members of a union (or ``[tp]``)."""
    return [a for a in get_args(tp) if a is not type(None)] if _is_union(tp) else [tp]


def _rule_schema(rule: Any, tp: Any) -> dict[str, Any]:  # noqa: PLR0911, PLR0912 - a table
    """The schema of one field's value from its rule (``tp`` is the field's type)."""
    if isinstance(rule, Number):
        out: dict[str, Any] = {"type": "integer" if rule.integer else "number"}
        out["exclusiveMinimum" if rule.above_lo else "minimum"] = _num(rule.lo)
        out["maximum"] = _num(rule.hi)
        return out
    if isinstance(rule, Choice):
        return {"type": "string", "enum": list(literal_values(tp))}
    if isinstance(rule, Flag):
        return {"type": "boolean"}
    if isinstance(rule, Identifier):
        return dict(_IDENTIFIER)
    if isinstance(rule, Strings):
        allowed = list(literal_values(tp))
        if allowed:
            item: dict[str, Any] = {"type": "string", "enum": allowed}
        else:
            item = dict(_IDENTIFIER) if rule.identifiers else dict(_NON_EMPTY)
        return {"type": "array", "items": item}
    if isinstance(rule, Stop):
        return {"anyOf": [dict(_NON_EMPTY), {"type": "array", "items": dict(_NON_EMPTY)}]}
    if isinstance(rule, LogitBias):
        return {
            "type": "object",
            "propertyNames": {"pattern": "^(0|[1-9][0-9]*)$"},
            "additionalProperties": {"type": "integer", "minimum": -100, "maximum": 100},
        }
    if isinstance(rule, Amount):
        return {"type": "integer", "minimum": 0, "maximum": MAX_TOKENS_PER_EVENT}
    if isinstance(rule, Cost):
        return {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_CREDITS_PER_EVENT},
                {"type": "string", "pattern": f"^{credits.COST_PATTERN}$"},
            ],
            "description": (
                "credits from 0 to 1000000, an exact decimal rounded half-even to 9 places"
            ),
        }
    if isinstance(rule, Moment):
        return dict(TIME)
    if isinstance(rule, Text):
        return {"type": "string", "minLength": 1, "maxLength": 256}
    if isinstance(rule, QueryLlmName | QueryModelName):  # both: 22 base62 characters
        return {"type": "string", "pattern": "^[0-9A-Za-z]{22}$"}
    if isinstance(rule, Embedding):
        return {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 1,
            "maxItems": MAX_DIMENSIONS,
            "description": "finite numbers, not all zero; stored as float32",
        }
    if isinstance(rule, Answer):
        return dict(_ANSWER)
    if isinstance(rule, Confidence):
        return {
            "anyOf": [
                dict(_ANSWER),
                {
                    "type": "object",
                    "propertyNames": dict(_ANSWER),
                    "additionalProperties": {"type": "number", "minimum": 0},
                    "minProperties": 1,
                    "maxProperties": MAX_DISTRIBUTION,
                    "description": "answer -> probability; the probabilities sum to more than 0",
                },
            ]
        }
    if isinstance(rule, FormatHash):
        return {"type": "string", "maxLength": MAX_FORMAT_HASH, "pattern": "^[\\x20-\\x7e]*$"}
    raise TypeError(f"no JSON Schema for rule {rule!r}")


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class _Walker:
    """Builds the schemas of attrs classes, each class once, referenced by ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.defs: dict[str, dict[str, Any]] = {}

    def ref(self, cls: type) -> dict[str, Any]:
        if cls.__name__ not in self.defs:
            self.defs[cls.__name__] = {}  # reserved first: a class may refer to itself
            self.defs[cls.__name__] = self.object_schema(cls)
        return {"$ref": self.prefix + cls.__name__}

    def object_schema(self, cls: type) -> dict[str, Any]:
        hints = get_type_hints(cls, include_extras=True)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for a in attrs.fields(cls):
            tp = hints[a.name]
            optional = a.default is not attrs.NOTHING
            if not optional:
                required.append(a.name)
            properties[a.name] = self.value_schema(tp, nullable=optional and _nullable(tp))
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        if cls.__doc__:
            out["description"] = cls.__doc__.split("\n\n")[0].replace("\n", " ").strip()
        return out

    def value_schema(self, tp: Any, *, nullable: bool) -> dict[str, Any]:
        if get_origin(tp) is Annotated:
            base, *metadata = get_args(tp)
            if isinstance(metadata[0], Members | Votes):  # an array of objects of another class
                item = self.ref(get_args(base)[0])
                rule = metadata[0]
                schema = {"type": "array", "items": item, "minItems": rule.lo, "maxItems": rule.hi}
            else:
                schema = _rule_schema(metadata[0], base)
        else:
            members = _members(tp)
            if all(attrs.has(m) for m in members):
                schema = self.union(members)
            elif get_origin(tp) is Literal:  # a discriminator such as the weight's `type`
                schema = {"const": get_args(tp)[0]}
            else:
                raise TypeError(f"no rule for a field of type {tp!r}")
        if nullable:
            return {"anyOf": [schema, {"type": "null"}]}
        return schema

    def union(self, members: list[type]) -> dict[str, Any]:
        if len(members) == 1:
            return self.ref(members[0])
        schema: dict[str, Any] = {"oneOf": [self.ref(m) for m in members]}
        tags = {m: attrs.fields_dict(m).get("type") for m in members}
        if all(t is not None and t.default is not attrs.NOTHING for t in tags.values()):
            schema["discriminator"] = {
                "propertyName": "type",
                "mapping": {t.default: self.prefix + m.__name__ for m, t in tags.items() if t},
            }
        return schema


def _nullable(tp: Any) -> bool:
    if get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return _is_union(tp) and type(None) in get_args(tp)


def components(*classes: type, prefix: str = "#/components/schemas/") -> dict[str, Any]:
    """The schemas of ``classes`` and of every class they use, by class name (for OpenAPI)."""
    walker = _Walker(prefix)
    for cls in classes:
        walker.ref(cls)
    return walker.defs


def json_schema(cls: type = model.QueryLlm) -> dict[str, Any]:
    """A standalone JSON Schema (2020-12) of the wire body of ``cls``: what `qllm schema` prints."""
    walker = _Walker("#/$defs/")
    root = walker.object_schema(cls)
    walker.defs.pop(cls.__name__, None)
    return {"$schema": DIALECT, "title": cls.__name__, **root, "$defs": walker.defs}
