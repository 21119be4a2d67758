"""The private cattrs converter: wire JSON to model and back (spec sections 2 and 3).

Structuring validates and normalizes in one pass. Every field is handled by a
hook built from the rule in its ``Annotated`` metadata (`registry.model`);
a hook returns the normalized value (``None`` when normalization drops it) or
raises `_Invalid`. The generated class functions collect every field's error
(cattrs detailed validation); the class hooks here add the rules that span
fields and turn the collected errors into ``(path, message)`` pairs.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from types import GenericAlias
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import attrs
import msgspec
import rfc8785
from cattrs import Converter
from cattrs.errors import AttributeValidationNote, ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from registry import times
from registry.errors import ValidationError
from registry.model import (
    LOGPROBS_MODES,
    MAX_CANONICAL_BYTES,
    MAX_CREDITS_PER_EVENT,
    MAX_MEMBERS,
    MAX_MODEL_CANONICAL_BYTES,
    MAX_TOKENS_PER_EVENT,
    NANO,
    Amount,
    Choice,
    Cost,
    Flag,
    Identifier,
    LogitBias,
    Members,
    Moment,
    Number,
    Provider,
    QueryLlm,
    QueryLlmName,
    QueryModel,
    QueryModelName,
    Reasoning,
    StaticStrategy,
    StaticWeight,
    Stop,
    Strategy,
    Strings,
    Text,
    TrainingTableStrategy,
    TrainingTableWeight,
    UsageEvent,
    Weight,
)
from registry.naming import is_name

Path = tuple[str | int, ...]

_converter = Converter(forbid_extra_keys=True, detailed_validation=True)


class _Invalid(Exception):
    """Problems in one value: ``(path below the value, message)`` pairs."""

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        super().__init__(problems)
        self.problems = problems

    @classmethod
    def at(cls, message: str, *path: str | int) -> _Invalid:
        return cls([(path, message)])


def pointer(path: Path) -> str:
    """A JSON pointer (RFC 6901) for ``path``; the empty string is the whole document."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def _literal_values(tp: Any) -> tuple[str, ...]:
    """The strings of the ``Literal`` inside ``tp`` (which may be Optional or a tuple)."""
    for arg in get_args(tp):
        if get_origin(arg) is Literal:
            return get_args(arg)
        found = _literal_values(arg)
        if found:
            return found
    return get_args(tp) if get_origin(tp) is Literal else ()


def _optional(tp: Any) -> bool:
    return type(None) in get_args(tp)


def _allow_null(optional: bool) -> None:
    """A hook given null: fine for an optional field (it means absent), else an error."""
    if not optional:
        raise _Invalid.at("is required")


# --- scalar rules ------------------------------------------------------------------


def _number_hook(rule: Number, tp: Any) -> Callable[[Any, Any], float | None]:
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
        if cls is float:
            if not math.isfinite(value):
                raise _Invalid.at(f"must be {kind}, not {value}")
            if value.is_integer():
                value = int(value)  # bounded below, so exact; 2.0 and 2 mean the same
            elif rule.integer:
                raise _Invalid.at("must be an integer")
        elif cls is not int:
            raise _Invalid.at(f"must be {kind}")
        if not (lo < value if rule.above_lo else lo <= value) or value > hi:
            raise _Invalid.at(out_of_range)
        return None if value in drop else value

    return hook


def _choice_hook(rule: Choice, tp: Any) -> Callable[[Any, Any], str | None]:
    optional = _optional(tp)
    allowed = frozenset(_literal_values(tp))
    message = "must be one of: " + ", ".join(_literal_values(tp))

    def hook(value: Any, _: Any) -> str | None:
        if value is None:
            _allow_null(optional)
            return None
        if value.__class__ is not str or value not in allowed:
            raise _Invalid.at(message)
        return None if value == rule.drop else value

    return hook


def _flag_hook(rule: Flag, tp: Any) -> Callable[[Any, Any], bool | None]:
    def hook(value: Any, _: Any) -> bool | None:
        if value is None:
            return None
        if value.__class__ is not bool:
            raise _Invalid.at("must be true or false")
        return None if value is rule.drop else value

    return hook


def _check_text(value: Any) -> str | None:
    """Why ``value`` is not a usable non-empty string, or None if it is."""
    if value.__class__ is not str:
        return "must be a non-empty string"
    if not value:
        return "must be a non-empty string"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "must be valid Unicode (no lone surrogates)"
    return None


_NOT_IN_IDENTIFIER = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def identifier_problem(value: Any) -> str | None:
    """Why ``value`` is not an identifier (model or user id), or None if it is."""
    problem = _check_text(value)
    if problem:
        return problem
    if len(value) > 256:
        return "must be at most 256 characters"
    if _NOT_IN_IDENTIFIER.search(value):
        return "must not contain white space or control characters"
    return None


def _identifier_hook(rule: Identifier, tp: Any) -> Callable[[Any, Any], str]:
    def hook(value: Any, _: Any) -> str:
        if value is None:
            raise _Invalid.at("is required")
        problem = identifier_problem(value)
        if problem:
            raise _Invalid.at(problem)
        return value  # type: ignore[no-any-return]

    return hook


# --- arrays and objects that normalize to sets ----------------------------------------


def _items(value: Any, check: Callable[[Any], str | None], what: str) -> list[Any]:
    """The items of a JSON array, each passing ``check``; every failure is reported."""
    if not isinstance(value, list | tuple):
        raise _Invalid.at(f"must be {what}")
    problems: list[tuple[Path, str]] = []
    for index, item in enumerate(value):
        problem = check(item)
        if problem:
            problems.append(((index,), problem))
    if problems:
        raise _Invalid(problems)
    return list(value)


def _strings_hook(rule: Strings, tp: Any) -> Callable[[Any, Any], tuple[str, ...] | None]:
    listed = _literal_values(tp)
    check: Callable[[Any], str | None]
    if listed:
        rank = {item: position for position, item in enumerate(listed)}
        message = "must be one of: " + ", ".join(listed)

        def check(item: Any) -> str | None:
            return None if item.__class__ is str and item in rank else message

        what = "an array of strings"
    elif rule.identifiers:
        check, what = identifier_problem, "an array of model ids"
    else:
        check, what = _check_text, "an array of non-empty strings"

    def hook(value: Any, _: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        items = _items(value, check, what)
        if rule.order == "first":
            unique = tuple(dict.fromkeys(items))
        elif rule.order == "sorted":
            unique = tuple(sorted(set(items)))
        else:
            unique = tuple(sorted(set(items), key=rank.__getitem__))
        return unique or None

    return hook


def _stop_hook(rule: Stop, tp: Any) -> Callable[[Any, Any], str | tuple[str, ...] | None]:
    def hook(value: Any, _: Any) -> str | tuple[str, ...] | None:
        if value is None:
            return None
        if value.__class__ is str:
            problem = _check_text(value)
            if problem:
                raise _Invalid.at(problem)
            return value
        # "x", ["x"] and ["x", "x"] are the same; a set of several stays an array.
        unique = sorted(set(_items(value, _check_text, "a string or an array of strings")))
        if not unique:
            return None
        return unique[0] if len(unique) == 1 else tuple(unique)

    return hook


_TOKEN_ID = re.compile(r"0|[1-9][0-9]*")


def _logit_bias_hook(rule: LogitBias, tp: Any) -> Callable[[Any, Any], dict[str, int] | None]:
    bias = _number_hook(Number(-100, 100, integer=True), int)

    def hook(value: Any, _: Any) -> dict[str, int] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _Invalid.at("must be an object")
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
            except _Invalid as exc:
                problems.extend(((key, *path), message) for path, message in exc.problems)
                continue
            if number:
                kept[key] = int(number)
        if problems:
            raise _Invalid(problems)
        # Token ids have no leading zeros, so (length, text) is numeric order; int() would
        # refuse ids of more than 4300 digits.
        return {key: kept[key] for key in sorted(kept, key=lambda k: (len(k), k))} or None

    return hook


# --- usage event fields -------------------------------------------------------------------


def _amount_hook(rule: Amount, tp: Any) -> Callable[[Any, Any], int]:
    count = _number_hook(Number(0, MAX_TOKENS_PER_EVENT, integer=True), int)

    def hook(value: Any, _: Any) -> int:
        if value.__class__ is int and 0 <= value <= MAX_TOKENS_PER_EVENT:
            return value  # the common case, checked inline
        return 0 if value is None else int(count(value, None) or 0)

    return hook


_NINE_PLACES = Decimal("1e-9")
_MAX_NANO = MAX_CREDITS_PER_EVENT * NANO


def nano_credits(value: Any) -> int:
    """Credits as integer nano-credits: exact, rounded half-even to 9 places (spec 6).

    Decimal text and floats usually take a fast path (`_text_nano`, `_near_nano`);
    what it does not read goes to `_decimal_nano`, the reference, which the fast
    paths always agree with (tests/test_fast_parse.py).
    """
    cls = value.__class__
    if cls is str:
        nano = _text_nano(value)
        if nano is None:
            nano = _decimal_nano(value)
    elif cls is int:
        nano = value * NANO
    elif cls is float:
        if 0 <= value <= MAX_CREDITS_PER_EVENT and _near_nano(value):
            nano = round(value * 1e9)
        elif not math.isfinite(value):
            raise _Invalid.at(f"must be a number of credits, not {value}")
        else:
            text = repr(value)  # the shortest repr: 0.1 means one tenth
            nano = _text_nano(text)
            if nano is None:
                nano = _decimal_nano(text)
    elif cls is Decimal:
        nano = _decimal_nano(value)
    else:
        raise _Invalid.at("must be a number of credits")
    if not 0 <= nano <= _MAX_NANO:
        raise _Invalid.at(f"must be between 0 and {MAX_CREDITS_PER_EVENT} credits")
    return int(nano)


def _near_nano(value: float) -> bool:
    """Whether ``round(value * 1e9)`` is exactly what reading ``repr(value)`` would give.

    For 0 <= value <= 1e6, the shortest repr is within half an ulp (1.2e-10) of
    the float, and the product within 0.125 of its exact value; so when the
    product lies within 0.001 of an integer, the repr scaled by 1e9 lies within
    0.25 of that integer, and rounding it half-even to 9 places gives that
    integer. (Tested against the repr path in tests/test_usage_values.py.)
    """
    scaled = value * 1e9
    return abs(scaled - round(scaled)) < 1e-3


# 10**k for the shifts of `_text_nano`; its bounds keep k below 60.
_POWERS: tuple[int, ...] = tuple(10**k for k in range(60))
_MAX_DIGITS = 40  # longer text goes to the reference (and int() of it stays cheap)


def _text_nano(text: str) -> int | None:  # noqa: PLR0911 - a chain of bail-outs
    """Decimal text in nano-credits by splitting digits, exactly as `_decimal_nano` reads
    it: ``12``, ``+0.5``, ``.5``, ``5.``, ``1.25e-7``, any number of places (rounded
    half-even to 9). None for anything else (signs other than ``+``, non-ASCII digits,
    very long text, big exponents): the caller then asks the reference."""
    whole, dot, fraction = text.partition(".")
    if (  # the usual form, such as 0.000123: no sign, no exponent, at most nine places
        dot
        and 0 < len(fraction) <= 9
        and len(whole) <= 7
        and text.isascii()
        and whole.isdigit()
        and fraction.isdigit()
    ):
        return int(whole) * NANO + int(fraction) * _POWERS[9 - len(fraction)]
    if not text.isascii() or len(text) > _MAX_DIGITS:
        return None
    if text[:1] == "+":
        text = text[1:]
    mantissa, e, exponent = text.partition("e")
    if not e:
        mantissa, e, exponent = text.partition("E")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    if not digits.isdigit():  # also refuses "", "-1", "1.2.3", " 1", "1_0"
        return None
    places = len(fraction)
    if e:
        sign = exponent[:1]
        magnitude = exponent[1:] if sign in ("+", "-") else exponent
        if not magnitude.isdigit() or len(magnitude) > 2:
            return None
        places = places - int(magnitude) if sign != "-" else places + int(magnitude)
    if places <= 9:
        if len(digits) - places > 7:  # 10**7 credits or more: the reference says why
            return None
        return int(digits) * _POWERS[9 - places]
    if places >= 50:
        return None
    # More than 9 places: divide away the extra ones, ties to the even nano-credit.
    unit = _POWERS[places - 9]
    nano, rest = divmod(int(digits), unit)
    if nano > _MAX_NANO:
        return None
    half = unit >> 1
    if rest > half or (rest == half and nano & 1):
        nano += 1
    return nano


_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _decimal_nano(value: str | Decimal) -> int:
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise _Invalid.at("must be a number of credits, such as 0.0125")
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        raise _Invalid.at("must be a number of credits") from None
    if not number.is_finite():
        raise _Invalid.at(f"must be a number of credits, not {value}")
    # Negative before rounding: -0.0000000001 is refused, not rounded to 0.
    # The size bound also keeps the arithmetic below small.
    if number < 0 or number > 2 * MAX_CREDITS_PER_EVENT:
        raise _Invalid.at(f"must be between 0 and {MAX_CREDITS_PER_EVENT} credits")
    with localcontext(prec=40):
        return int(number.quantize(_NINE_PLACES, ROUND_HALF_EVEN).scaleb(9))


def _cost_hook(rule: Cost, tp: Any) -> Callable[[Any, Any], int]:
    def hook(value: Any, _: Any) -> int:
        return 0 if value is None else nano_credits(value)

    return hook


_LAST_MOMENT = 253_402_300_800_000_000  # 10000-01-01T00:00:00Z


def _moment_hook(rule: Moment, tp: Any) -> Callable[[Any, Any], int | None]:
    def hook(value: Any, _: Any) -> int | None:
        if value is None:
            return None
        try:
            moment = times.parse(value)
        except times.TimeError as exc:
            raise _Invalid.at(str(exc)) from None
        if not 0 <= moment < _LAST_MOMENT:
            raise _Invalid.at("must be between 1970-01-01 and 9999-12-31")
        return moment

    return hook


def _text_hook(rule: Text, tp: Any) -> Callable[[Any, Any], str | None]:
    optional = _optional(tp)

    def hook(value: Any, _: Any) -> str | None:
        if value is None:
            _allow_null(optional)
            return None
        problem = _check_text(value)
        if problem:
            raise _Invalid.at(problem)
        if len(value) > 256:
            raise _Invalid.at("must be at most 256 characters")
        return value  # type: ignore[no-any-return]

    return hook


NOT_A_NAME = "must be a Query LLM name: 22 base62 characters"


def _name_hook(rule: QueryLlmName, tp: Any) -> Callable[[Any, Any], str]:
    def hook(value: Any, _: Any) -> str:
        if value is None:
            raise _Invalid.at("is required")
        if not is_name(value):
            raise _Invalid.at(NOT_A_NAME)
        return value  # type: ignore[no-any-return]

    return hook


NOT_A_MODEL_NAME = "must be a Query Model name: 22 base62 characters"


def _model_name_hook(rule: QueryModelName, tp: Any) -> Callable[[Any, Any], str | None]:
    def hook(value: Any, _: Any) -> str | None:
        if value is None:
            return None
        if not is_name(value):
            raise _Invalid.at(NOT_A_MODEL_NAME)
        return value  # type: ignore[no-any-return]

    return hook


def _members_hook(rule: Members, tp: Any) -> Callable[[Any, Any], tuple[QueryLlm, ...]]:
    count = f"must have {rule.lo} to {rule.hi} members"

    def hook(value: Any, _: Any) -> tuple[QueryLlm, ...]:
        if value is None:
            raise _Invalid.at("is required")
        if not isinstance(value, list | tuple):
            raise _Invalid.at("must be an array of Query LLMs")
        if not rule.lo <= len(value) <= rule.hi:
            # Members are not validated past the limit: a huge array costs nothing.
            raise _Invalid.at(count)
        problems: list[tuple[Path, str]] = []
        members = []
        for index, item in enumerate(value):  # `index`: the position in the request
            try:
                member = _query_llm(item, None)
            except _Invalid as exc:
                problems.extend(((index, *path), message) for path, message in exc.problems)
                continue
            too_big = _too_big(member)
            if too_big:
                problems.append(((index,), too_big))
            members.append(member)
        if problems:
            raise _Invalid(problems)
        return tuple(sorted(members, key=_by_name))  # stable: duplicates are equal anyway

    return hook


def _by_name(llm: QueryLlm) -> str:
    return llm.name


_RULE_HOOKS: dict[type, Callable[[Any, Any], Callable[[Any, Any], Any]]] = {
    Members: _members_hook,
    QueryModelName: _model_name_hook,
    Amount: _amount_hook,
    Cost: _cost_hook,
    Moment: _moment_hook,
    Text: _text_hook,
    QueryLlmName: _name_hook,
    Number: _number_hook,
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


_converter.register_structure_hook_factory(lambda tp: _rule_of(tp) is not None, _hook_for_rule)


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
        if isinstance(error, _Invalid):
            problems.extend(((*here, *path), message) for path, message in error.problems)
        elif isinstance(error, KeyError):
            problems.append((here, "is required"))
        elif isinstance(error, ForbiddenExtraKeysError):
            for key in sorted(error.extra_fields, key=str):
                path, message = _unknown_key(key, fields)
                problems.append(((*here, *path), message))
        else:  # a hook bug rather than bad input; still reported, never raised raw
            problems.append((here, f"invalid value ({error})"))
    return problems


def _error(problems: list[tuple[Path, str]]) -> ValidationError:
    """The problems as a `ValidationError`, ordered by path so that reports are stable."""
    return ValidationError(sorted((pointer(path), message) for path, message in problems))


def _unknown_key(key: Any, fields: list[str]) -> tuple[Path, str]:
    hint = difflib.get_close_matches(str(key), fields, n=1)
    return (str(key),), "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")


def _class_hook(
    cl: Any,
    cross: CrossRule | None = None,
    finish: Callable[[Any], Any] | None = None,
    optional: bool = False,
) -> Callable[[Any, Any], Any]:
    base = make_dict_structure_fn(cl, _converter)
    fields = [a.name for a in attrs.fields(cl)]
    known = frozenset(fields)

    def hook(value: Any, _: Any) -> Any:
        if value is None and optional:
            return None  # null for an optional key means the same as leaving it out
        if not isinstance(value, dict):
            raise _Invalid.at("must be an object")
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
            raise _Invalid(problems)
        return finish(obj) if finish else obj

    return hook


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


def _tagged(hooks: dict[str, Callable[[Any, Any], Any]]) -> Callable[[Any, Any], Any]:
    """The hook of an object tagged by ``type``: the class hook of its type."""

    def hook(value: Any, _: Any) -> Any:
        if value is None:
            raise _Invalid.at("is required")
        if not isinstance(value, dict):
            raise _Invalid.at("must be an object")
        kind = value.get("type")
        if kind is None:
            raise _Invalid.at("is required", "type")
        chosen = hooks.get(kind) if isinstance(kind, str) else None
        if chosen is None:
            raise _Invalid.at("must be one of: " + ", ".join(hooks), "type")
        return chosen(value, None)

    return hook


_weight = _tagged(
    {
        "static": _class_hook(StaticWeight),
        "training_table": _class_hook(TrainingTableWeight, _training_table_rules),
    }
)
_STRATEGIES = {
    "static": _class_hook(StaticStrategy),
    "training_table": _class_hook(TrainingTableStrategy),
}
_converter.register_structure_hook(Weight, _weight)
_converter.register_structure_hook(Strategy, _tagged(_STRATEGIES))
_converter.register_structure_hook(
    Provider | None, _class_hook(Provider, finish=_finish_provider, optional=True)
)
_converter.register_structure_hook(
    Reasoning | None, _class_hook(Reasoning, _reasoning_rules, _finish_reasoning, optional=True)
)
# Last: a generated function binds the hooks registered when it is made.
_query_llm = _class_hook(QueryLlm, _query_llm_rules)


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


_query_model = _class_hook(QueryModel, _query_model_rules)


# Usage events are the hot path (an import reads millions), so they skip the
# generated class function and the attrs instance: the fields' own hooks fill
# a list in `UsageEvent` field order directly. (resolve_types: the annotations are strings.)
_EVENT: tuple[attrs.Attribute[Any], ...] = attrs.fields(attrs.resolve_types(UsageEvent))
_EVENT_FIELDS = [a.name for a in _EVENT]
# Row positions: the user (slot 1) is not an event field; it comes from the token.
# (Every hook here ignores its second argument, the type: it is called with None.)
_EVENT_HOOKS = {
    a.name: (position + (position > 0), _converter.get_structure_hook(a.type))
    for position, a in enumerate(_EVENT)
}
_EVENT_DEFAULTS = [None if a.default is attrs.NOTHING else a.default for a in _EVENT]
_EVENT_DEFAULTS.insert(1, None)


def usage_values(raw: Any) -> list[Any]:
    """One usage event (spec 6), validated, as a ``usage_events`` row to complete:
    ``[name, None, at, request_id, *amounts, query_model]``.

    The caller fills in the user (slot 1) and, where ``at`` is None, the time of
    recording. Costs are in nano-credits; ``at`` is in UTC microseconds.
    """
    if raw.__class__ is _TypedEvent:
        return _typed_values(raw)
    if not isinstance(raw, dict):
        raise ValidationError.one("", "must be an object")
    values = _EVENT_DEFAULTS.copy()
    problems: list[tuple[Path, str]] = []
    for key, value in raw.items():
        field = _EVENT_HOOKS.get(key)
        if field is None:
            problems.append(_unknown_key(key, _EVENT_FIELDS))
            continue
        position, hook = field
        try:
            values[position] = hook(value, None)
        except _Invalid as exc:
            problems.extend(((key, *path), message) for path, message in exc.problems)
    if values[0] is None and "name" not in raw:
        problems.append((("name",), "is required"))
    if problems:
        raise _error(problems)
    return values


# --- usage events read straight from JSON text ------------------------------------------
#
# An import reads JSON Lines by the million, and `json.loads` alone costs more than all
# the rules. msgspec (C) reads a line straight into typed fields instead. It checks only
# what it checks exactly as the hooks would: the keys (no unknown, `name` present), each
# value's JSON type, and the amounts (whole numbers in their range). Everything else
# (names, times, request ids, costs) still goes through the fields' own hooks, the same
# code as `usage_values`. What msgspec refuses is not an error yet: the caller reads the
# line with `json` and `usage_values`, the reference, which either accepts it (2.0
# tokens, a null cost) or says what is wrong. So a line gives the same row or the same
# error either way (tests/test_fast_parse.py).

# The JSON type of each rule's field; the amounts' whole range is the Amount rule's.
_JSON_TYPE: dict[type, Any] = {
    Amount: Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS_PER_EVENT)],
    Cost: str | int | float,
    Moment: str,
    Text: str,
    QueryLlmName: str,
    QueryModelName: str,
}


def _rule(field: attrs.Attribute[Any]) -> Any:
    """An event field's rule: the one item of its ``Annotated`` metadata."""
    (rule,) = (r for r in getattr(field.type, "__metadata__", ()) if r.__class__ in _JSON_TYPE)
    return rule


def _typed_field(field: attrs.Attribute[Any]) -> tuple[Any, ...]:
    kind = _JSON_TYPE[_rule(field).__class__]
    if field.default is attrs.NOTHING:
        return (field.name, kind)
    return (field.name, kind | None if field.default is None else kind, field.default)


_TypedEvent = msgspec.defstruct(
    "_TypedEvent", [_typed_field(a) for a in _EVENT], forbid_unknown_fields=True
)
_read_event = msgspec.json.Decoder(_TypedEvent).decode
# An event or an array of them (a list type made at run time: `_TypedEvent` is one too).
_read_events = msgspec.json.Decoder(Union[_TypedEvent, GenericAlias(list, _TypedEvent)]).decode  # noqa: UP007
# Row slots (as in `usage_values`) of the fields whose hook still has to run: not the amounts.
_HOOKED = tuple((*_EVENT_HOOKS[a.name], a.name) for a in _EVENT if _rule(a).__class__ is not Amount)


def usage_line(line: bytes | str) -> Any:
    """One line of a JSON Lines file read straight into typed fields, for `usage_values`;
    None when the typed reader cannot read it: then parse the line as JSON as usual."""
    try:
        return _read_event(line)
    except (msgspec.MsgspecError, ValueError):  # ValueError: bytes that are not UTF-8
        return None


def usage_body(body: bytes | str) -> Any:
    """A JSON body of one event or an array of them, read as `usage_line` reads a line
    (an event, or a list of events); None when the typed reader cannot read all of it."""
    try:
        return _read_events(body)
    except (msgspec.MsgspecError, ValueError):
        return None


def _typed_values(event: Any) -> list[Any]:
    row = [*msgspec.structs.astuple(event)]
    row.insert(1, None)
    problems: list[tuple[Path, str]] = []
    for position, hook, name in _HOOKED:
        try:
            row[position] = hook(row[position], None)
        except _Invalid as exc:
            problems.extend(((name, *path), message) for path, message in exc.problems)
    if problems:
        raise _error(problems)
    return row


def validate(body: Any) -> QueryLlm:
    """Validate and normalize a request body; raise `ValidationError` listing every problem.

    Pure: touches no database. The result carries its ``name`` and
    ``training_table_name``.
    """
    try:
        llm = _query_llm(body, None)
    except _Invalid as exc:
        raise _error(exc.problems) from None
    assert isinstance(llm, QueryLlm)
    too_big = _too_big(llm)
    if too_big:
        raise ValidationError.one("", too_big)
    return llm


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


# --- unstructuring: the normalized form as plain JSON values ------------------------------


def _to_list(value: tuple[str, ...]) -> list[str]:
    return list(value)


def _unstructure_hook(cl: Any) -> Callable[[Any], dict[str, Any]]:
    # Normalized instances hold None for everything normalization dropped, and
    # None is every optional field's default, so omitting defaults omits exactly
    # those. The weight's ``type`` has a default too, but is always written.
    if "type" in attrs.fields_dict(cl):
        return make_dict_unstructure_fn(
            cl, _converter, _cattrs_omit_if_default=True, type=override(omit_if_default=False)
        )
    return make_dict_unstructure_fn(cl, _converter, _cattrs_omit_if_default=True)


def _is_tuple(tp: Any) -> bool:
    return tp is tuple or get_origin(tp) is tuple


_converter.register_unstructure_hook_func(_is_tuple, _to_list)
for _cl in (
    Provider,
    Reasoning,
    StaticWeight,
    TrainingTableWeight,
    StaticStrategy,
    TrainingTableStrategy,
    QueryLlm,  # last: its function binds the hooks above
):
    _converter.register_unstructure_hook(_cl, _unstructure_hook(_cl))


def unstructure(llm: QueryLlm) -> dict[str, Any]:
    """The normalized form of ``llm`` as JSON-ready values (no names)."""
    return _converter.unstructure(llm, QueryLlm)  # type: ignore[no-any-return]


def unstructure_strategy(weight: Strategy) -> dict[str, Any]:
    """A Query Model's normalized weight strategy as JSON-ready values."""
    return _converter.unstructure(weight, type(weight))  # type: ignore[no-any-return]


# --- Query Models (QUERY_MODEL.md) ---------------------------------------------------------

# The normalized form in full is {"models":[<member>,...],"weight":<weight>}; RFC 8785 writes
# "models" before "weight" and nothing else, so its size is the sum of its parts.
_MODEL_FRAME = len(b'{"models":[],"weight":}')


def validate_model(body: Any) -> QueryModel:
    """Validate and normalize a Query Model body; raise `ValidationError` listing every problem.

    Member errors carry ``/models/<i>``, ``<i>`` the member's position in the request.
    Pure: touches no database.
    """
    try:
        model = _query_model(body, None)
    except _Invalid as exc:
        raise _error(exc.problems) from None
    assert isinstance(model, QueryModel)
    size = _MODEL_FRAME + len(rfc8785.dumps(unstructure_strategy(model.weight)))
    size += sum(len(m.canonical) for m in model.models) + len(model.models) - 1
    if size > MAX_MODEL_CANONICAL_BYTES:
        raise ValidationError.one("", f"normalized form is {size} bytes, over the 1 MiB limit")
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
