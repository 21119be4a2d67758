"""The hooks of the field rules: `registry.model`'s rule metadata as cattrs structure hooks.

Every field of the model carries its rule in ``Annotated`` metadata (`Number`,
`Choice`, `Identifier`, `Cost`...). Here each rule class has a hook factory:
given the rule and the field's type, it returns the hook that validates and
normalizes one wire value, returning the normalized value (``None`` when
normalization drops it) or raising `Invalid` with every problem found below
the value. `class_hook` builds the hook of a whole attrs class from its
fields' hooks (cattrs collects every field's error) plus the rules that span
fields; `error` turns collected problems into a `ValidationError` ordered by
path. Query LLM and Query Model bodies (`registry._convert`) and usage events
(`registry.events`) are both built from these hooks, so a rule is written once.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Literal, get_args, get_origin

import attrs
from cattrs import Converter
from cattrs.errors import AttributeValidationNote, ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn

from registry import ids, times
from registry.credits import CreditError, nano_credits
from registry.errors import ValidationError
from registry.jsonin import JsonFloat, pointer
from registry.model import (
    MAX_TOKENS_PER_EVENT,
    Amount,
    Choice,
    Cost,
    Flag,
    Identifier,
    LogitBias,
    Moment,
    Number,
    QueryLlmName,
    QueryModelName,
    Stop,
    Strings,
    Text,
)
from registry.naming import is_name, not_a_name

Path = tuple[str | int, ...]

converter = Converter(forbid_extra_keys=True, detailed_validation=True)


class Invalid(Exception):
    """Problems in one value: ``(path below the value, message)`` pairs."""

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        super().__init__(problems)
        self.problems = problems

    @classmethod
    def at(cls, message: str, *path: str | int) -> Invalid:
        return cls([(path, message)])


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def literal_values(tp: Any) -> tuple[str, ...]:
    """The strings of the ``Literal`` inside ``tp`` (which may be Optional or a tuple)."""
    for arg in get_args(tp):
        if get_origin(arg) is Literal:
            return get_args(arg)
        found = literal_values(arg)
        if found:
            return found
    return get_args(tp) if get_origin(tp) is Literal else ()


def _optional(tp: Any) -> bool:
    return type(None) in get_args(tp)


def _allow_null(optional: bool) -> None:
    """A hook given null: fine for an optional field (it means absent), else an error."""
    if not optional:
        raise Invalid.at("is required")


# --- scalar rules ------------------------------------------------------------------


def number_hook(rule: Number, tp: Any) -> Callable[[Any, Any], float | None]:
    optional = _optional(tp)
    lo, hi, drop = rule.lo, rule.hi, rule.drop
    kind = "an integer" if rule.integer else "a number"
    if rule.above_lo:
        out_of_range = f"must be greater than {_fmt(lo)} and at most {_fmt(hi)}"
    else:
        out_of_range = f"must be between {_fmt(lo)} and {_fmt(hi)}"

    def hook(value: Any, _: Any) -> float | None:
        if value is None:
            _allow_null(optional)
            return None
        cls = value.__class__  # exact: bool is a subclass of int and is not a number
        if cls is float or cls is JsonFloat:
            if not math.isfinite(value):
                if cls is JsonFloat:  # a finite number written too large for a float
                    raise Invalid.at(out_of_range)
                raise Invalid.at(f"must be {kind}, not {value}")
            if cls is JsonFloat:
                value = float(value)  # its text is for costs only
            if value.is_integer():
                value = int(value)  # bounded below, so exact; 2.0 and 2 mean the same
            elif rule.integer:
                raise Invalid.at("must be an integer")
        elif cls is not int:
            raise Invalid.at(f"must be {kind}")
        if not (lo < value if rule.above_lo else lo <= value) or value > hi:
            raise Invalid.at(out_of_range)
        return None if value in drop else value

    return hook


def _choice_hook(rule: Choice, tp: Any) -> Callable[[Any, Any], str | None]:
    optional = _optional(tp)
    allowed = frozenset(literal_values(tp))
    message = "must be one of: " + ", ".join(literal_values(tp))

    def hook(value: Any, _: Any) -> str | None:
        if value is None:
            _allow_null(optional)
            return None
        if value.__class__ is not str or value not in allowed:
            raise Invalid.at(message)
        return None if value == rule.drop else value

    return hook


def _flag_hook(rule: Flag, tp: Any) -> Callable[[Any, Any], bool | None]:
    def hook(value: Any, _: Any) -> bool | None:
        if value is None:
            return None
        if value.__class__ is not bool:
            raise Invalid.at("must be true or false")
        return None if value is rule.drop else value

    return hook


def _identifier_hook(rule: Identifier, tp: Any) -> Callable[[Any, Any], str]:
    def hook(value: Any, _: Any) -> str:
        if value is None:
            raise Invalid.at("is required")
        problem = ids.identifier_problem(value)
        if problem:
            raise Invalid.at(problem)
        return value  # type: ignore[no-any-return]

    return hook


# --- arrays and objects that normalize to sets ----------------------------------------


def items(value: Any, check: Callable[[Any], str | None], what: str) -> list[Any]:
    """The items of a JSON array, each passing ``check``; every failure is reported."""
    if not isinstance(value, list | tuple):
        raise Invalid.at(f"must be {what}")
    problems: list[tuple[Path, str]] = []
    for index, item in enumerate(value):
        problem = check(item)
        if problem:
            problems.append(((index,), problem))
    if problems:
        raise Invalid(problems)
    return list(value)


def _strings_hook(rule: Strings, tp: Any) -> Callable[[Any, Any], tuple[str, ...] | None]:
    listed = literal_values(tp)
    check: Callable[[Any], str | None]
    if listed:
        rank = {item: position for position, item in enumerate(listed)}
        message = "must be one of: " + ", ".join(listed)

        def check(item: Any) -> str | None:
            return None if item.__class__ is str and item in rank else message

        what = "an array of strings"
    elif rule.identifiers:
        check, what = ids.identifier_problem, "an array of model ids"
    else:
        check, what = ids.text_problem, "an array of non-empty strings"

    def hook(value: Any, _: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        given = items(value, check, what)
        if rule.order == "first":
            unique = tuple(dict.fromkeys(given))
        elif rule.order == "sorted":
            unique = tuple(sorted(set(given)))
        else:
            unique = tuple(sorted(set(given), key=rank.__getitem__))
        return unique or None

    return hook


def _stop_hook(rule: Stop, tp: Any) -> Callable[[Any, Any], str | tuple[str, ...] | None]:
    def hook(value: Any, _: Any) -> str | tuple[str, ...] | None:
        if value is None:
            return None
        if value.__class__ is str:
            problem = ids.text_problem(value)
            if problem:
                raise Invalid.at(problem)
            return value
        # "x", ["x"] and ["x", "x"] are the same; a set of several stays an array.
        unique = sorted(set(items(value, ids.text_problem, "a string or an array of strings")))
        if not unique:
            return None
        return unique[0] if len(unique) == 1 else tuple(unique)

    return hook


_TOKEN_ID = re.compile(r"0|[1-9][0-9]*")


def _logit_bias_hook(rule: LogitBias, tp: Any) -> Callable[[Any, Any], dict[str, int] | None]:
    bias = number_hook(Number(-100, 100, integer=True), int)

    def hook(value: Any, _: Any) -> dict[str, int] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Invalid.at("must be an object")
        problems: list[tuple[Path, str]] = []
        kept: dict[str, int] = {}
        for key, item in value.items():
            if key.__class__ is not str or not _TOKEN_ID.fullmatch(key):
                problems.append(
                    ((str(key),), "must be a token id: a decimal integer without leading zeros")
                )
                continue
            try:
                number = bias(item, int)
            except Invalid as exc:
                problems.extend(((key, *path), message) for path, message in exc.problems)
                continue
            if number:
                kept[key] = int(number)
        if problems:
            raise Invalid(problems)
        # Token ids have no leading zeros, so (length, text) is numeric order; int() would
        # refuse ids of more than 4300 digits.
        return {key: kept[key] for key in sorted(kept, key=lambda k: (len(k), k))} or None

    return hook


def _amount_hook(rule: Amount, tp: Any) -> Callable[[Any, Any], int]:
    count = number_hook(Number(0, MAX_TOKENS_PER_EVENT, integer=True), int)

    def hook(value: Any, _: Any) -> int:
        if value.__class__ is int and 0 <= value <= MAX_TOKENS_PER_EVENT:
            return value  # the common case, checked inline
        return 0 if value is None else int(count(value, None) or 0)

    return hook


def _cost_hook(rule: Cost, tp: Any) -> Callable[[Any, Any], int]:
    def hook(value: Any, _: Any) -> int:
        if value is None:
            return 0
        try:
            return nano_credits(value)
        except CreditError as exc:
            raise Invalid.at(str(exc)) from None

    return hook


def _moment_hook(rule: Moment, tp: Any) -> Callable[[Any, Any], int | None]:
    def hook(value: Any, _: Any) -> int | None:
        if value is None:
            return None
        try:
            moment = times.parse(value)
        except times.TimeError as exc:
            raise Invalid.at(str(exc)) from None
        if moment < 0:  # `times.parse` refuses what is past 9999-12-31 already
            raise Invalid.at("must be between 1970-01-01 and 9999-12-31")
        return moment

    return hook


def _text_hook(rule: Text, tp: Any) -> Callable[[Any, Any], str | None]:
    optional = _optional(tp)

    def hook(value: Any, _: Any) -> str | None:
        if value is None:
            _allow_null(optional)
            return None
        problem = ids.bounded_text_problem(value)
        if problem:
            raise Invalid.at(problem)
        return value  # type: ignore[no-any-return]

    return hook


NOT_A_NAME = not_a_name("Query LLM")


def _name_hook(rule: QueryLlmName, tp: Any) -> Callable[[Any, Any], str]:
    def hook(value: Any, _: Any) -> str:
        if value is None:
            raise Invalid.at("is required")
        if not is_name(value):
            raise Invalid.at(NOT_A_NAME)
        return value  # type: ignore[no-any-return]

    return hook


NOT_A_MODEL_NAME = not_a_name("Query Model")


def _model_name_hook(rule: QueryModelName, tp: Any) -> Callable[[Any, Any], str | None]:
    optional = _optional(tp)  # a usage event's may be left out; a completion's may not

    def hook(value: Any, _: Any) -> str | None:
        if value is None:
            _allow_null(optional)
            return None
        if not is_name(value):
            raise Invalid.at(NOT_A_MODEL_NAME)
        return value  # type: ignore[no-any-return]

    return hook


# Rule class -> the factory of its hook, given (rule, the field's type). `register_rule` adds one
# from above (Query Model members, which need the Query LLM converter).
RuleHook = Callable[[Any, Any], Callable[[Any, Any], Any]]
_RULE_HOOKS: dict[type, RuleHook] = {
    QueryModelName: _model_name_hook,
    Amount: _amount_hook,
    Cost: _cost_hook,
    Moment: _moment_hook,
    Text: _text_hook,
    QueryLlmName: _name_hook,
    Number: number_hook,
    Choice: _choice_hook,
    Flag: _flag_hook,
    Identifier: _identifier_hook,
    Strings: _strings_hook,
    Stop: _stop_hook,
    LogitBias: _logit_bias_hook,
}


def _rule_of(tp: Any) -> Any:
    if get_origin(tp) is Annotated:
        for meta in tp.__metadata__:
            if type(meta) in _RULE_HOOKS:
                return meta
    return None


def _hook_for_rule(tp: Any) -> Callable[[Any, Any], Any]:
    rule = _rule_of(tp)
    return _RULE_HOOKS[type(rule)](rule, get_args(tp)[0])


def register_rule(rule: type, factory: RuleHook) -> None:
    """Use ``factory`` for the fields whose rule is an instance of ``rule``; before any class
    hook that has such a field is made (a generated function binds the hooks it finds)."""
    _RULE_HOOKS[rule] = factory


converter.register_structure_hook_factory(lambda tp: _rule_of(tp) is not None, _hook_for_rule)


# --- classes: field errors collected, then the rules that span fields ----------------

CrossRule = Callable[[Mapping[str, Any], frozenset[str]], Iterator[tuple[Path, str]]]


def _problems(exc: ClassValidationError, fields: list[str]) -> list[tuple[Path, str]]:
    """Turn what a generated structure function collected into (path, message) pairs."""
    problems: list[tuple[Path, str]] = []
    for error in exc.exceptions:
        note = next(
            (n for n in getattr(error, "__notes__", ()) if isinstance(n, AttributeValidationNote)),
            None,
        )
        here: Path = (note.name,) if note else ()
        if isinstance(error, Invalid):
            problems.extend(((*here, *path), message) for path, message in error.problems)
        elif isinstance(error, KeyError):
            problems.append((here, "is required"))
        elif isinstance(error, ForbiddenExtraKeysError):
            for key in sorted(error.extra_fields, key=str):
                path, message = unknown_key(key, fields)
                problems.append(((*here, *path), message))
        else:  # a hook bug rather than bad input; still reported, never raised raw
            problems.append((here, f"invalid value ({error})"))
    return problems


def error(problems: list[tuple[Path, str]]) -> ValidationError:
    """The problems as a `ValidationError`, ordered by path so that reports are stable."""
    return ValidationError(sorted((pointer(path), message) for path, message in problems))


def unknown_key(key: Any, fields: list[str]) -> tuple[Path, str]:
    hint = difflib.get_close_matches(str(key), fields, n=1)
    return (str(key),), "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")


def class_hook(
    cl: Any,
    cross: CrossRule | None = None,
    finish: Callable[[Any], Any] | None = None,
    optional: bool = False,
) -> Callable[[Any, Any], Any]:
    base = make_dict_structure_fn(cl, converter)
    fields = [a.name for a in attrs.fields(cl)]
    known = frozenset(fields)

    def hook(value: Any, _: Any) -> Any:
        if value is None and optional:
            return None  # null for an optional key means the same as leaving it out
        if not isinstance(value, dict):
            raise Invalid.at("must be an object")
        problems: list[tuple[Path, str]] = []
        failed: frozenset[str] = frozenset()
        try:
            obj = base(value, cl)
        except ClassValidationError as exc:
            problems = _problems(exc, fields)
            failed = frozenset(str(path[0]) for path, _ in problems if path) & known
        if cross:
            problems.extend(cross(value, failed))
        if problems:
            raise Invalid(problems)
        return finish(obj) if finish else obj

    return hook


def tagged(hooks: dict[str, Callable[[Any, Any], Any]]) -> Callable[[Any, Any], Any]:
    """The hook of an object tagged by ``type``: the class hook of its type."""

    def hook(value: Any, _: Any) -> Any:
        if value is None:
            raise Invalid.at("is required")
        if not isinstance(value, dict):
            raise Invalid.at("must be an object")
        kind = value.get("type")
        if kind is None:
            raise Invalid.at("is required", "type")
        chosen = hooks.get(kind) if isinstance(kind, str) else None
        if chosen is None:
            raise Invalid.at("must be one of: " + ", ".join(hooks), "type")
        return chosen(value, None)

    return hook
