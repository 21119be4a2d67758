"""Completions in: the rules of a completion, a mark and a weights query, for every surface.

A completion is one call of a Query Model: the prompt's embedding and each member's vote
(`registry.model.Completion`). Its field rules are hooks (`registry.hooks`) registered
here for the rule classes of `registry.model`, so that the library, the HTTP API and the
command line refuse the same input with the same paths. Validation runs in two steps:

1. `completion_of` (and `validated` for a batch) applies the field rules: every problem
   at its path (``/embedding/3``, ``/votes/1/index``), all at once.
2. `Ensemble.vote_problems` (``registry.weights``) checks what needs the Query Model:
   that it is registered, and that every vote's ``index`` is one of its members.

An embedding is kept as the float32 bytes its numbers round to (little-endian): what
is stored, compared on a replay and searched. The votes are kept as canonical JSON
(RFC 8785), in ``index`` order.
"""

from __future__ import annotations

import gc
import json
import math
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import rfc8785
from attrs import frozen

from registry import ids
from registry.errors import ValidationError
from registry.hooks import (
    Invalid,
    Path,
    class_hook,
    converter,
    error,
    number_hook,
    register_rule,
    unknown_key,
)
from registry.model import (
    FLOAT32_MAX,
    MAX_ANSWER,
    MAX_DIMENSIONS,
    MAX_DISTRIBUTION,
    MAX_FORMAT_HASH,
    MAX_MEMBERS,
    Answer,
    Completion,
    Confidence,
    Embedding,
    FormatHash,
    Mark,
    Number,
    Vote,
    Votes,
    WeightsQuery,
)

MAX_PROBLEMS = 100  # problems of a batch reported at most; the batch is refused either way
FLOAT32 = np.dtype("<f4")  # how embeddings are stored: float32, little-endian

# --- embeddings -----------------------------------------------------------------------------

_ELEMENT = number_hook(Number(-math.inf, math.inf), float)
_PAST_FLOAT32 = "must be within float32's range (-3.4028235e+38 to 3.4028235e+38)"
_LENGTH = f"must be an array of 1 to {MAX_DIMENSIONS:,} numbers"


def float32_bytes(value: Any) -> bytes:
    """An embedding's numbers as the float32 bytes they round to; `Invalid` listing every
    problem otherwise. Lists (or tuples) of Python numbers and 1-D numpy arrays are read."""
    if value is None:
        raise Invalid.at("is required")
    if isinstance(value, np.ndarray):
        value = value.tolist() if value.ndim == 1 else None
    if value.__class__ is not list and value.__class__ is not tuple:
        raise Invalid.at(_LENGTH)
    if not 1 <= len(value) <= MAX_DIMENSIONS:
        raise Invalid.at(_LENGTH)
    # The usual input, read in C: array('f') rounds each number to float32 (to nearest),
    # refuses strings, None and nesting, and makes NaN, infinities and numbers past
    # float32's range non-finite. It takes booleans too (as 0 and 1): where a 0 or a 1 is,
    # the element's own type is looked at.
    try:
        vector = np.frombuffer(array("f", value), dtype=FLOAT32)
    except (TypeError, OverflowError):  # not a number, or an int past a double's range
        return _explained(value)
    if np.isfinite(vector).all() and vector.any():
        suspects = np.flatnonzero((vector == 0) | (vector == 1))
        if not any(isinstance(value[i], bool | np.bool_) for i in suspects):
            return vector.tobytes()
    return _explained(value)


def _explained(value: list[Any] | tuple[Any, ...]) -> bytes:
    """The slow path: each number through its rule, so that each problem has its index."""
    problems: list[tuple[Path, str]] = []
    for index, item in enumerate(value):
        try:
            if item is None:
                raise Invalid.at("must be a number, not null")
            _ELEMENT(item, None)
            if abs(item) > FLOAT32_MAX and not _rounds_finite(item):
                raise Invalid.at(_PAST_FLOAT32)
        except Invalid as exc:
            problems.extend(((index, *path), message) for path, message in exc.problems)
            if len(problems) >= MAX_PROBLEMS:
                break
    if problems:
        raise Invalid(problems)
    vector = np.asarray(value, dtype=FLOAT32)
    if not vector.any():
        raise Invalid.at("must not be all zero (after rounding to float32)")
    return vector.tobytes()


def _rounds_finite(number: float) -> bool:
    """Whether ``number`` rounds to a finite float32 (just past the largest one may)."""
    try:
        return math.isfinite(array("f", [number])[0])
    except OverflowError:  # an int past a double's range
        return False


def float32_list(blob: bytes) -> list[float]:
    """Stored float32 bytes as Python floats (each the float32 value exactly)."""
    values: list[float] = np.frombuffer(blob, dtype=FLOAT32).tolist()
    return values


# --- answers and votes --------------------------------------------------------------------


def answer_problem(value: Any) -> str | None:
    """Why ``value`` is not an answer (a non-empty string of at most 128 characters)."""
    problem = ids.text_problem(value)
    if problem:
        return problem
    if len(value) > MAX_ANSWER:
        return f"must be at most {MAX_ANSWER} characters"
    return None


def _answer_hook(rule: Answer, tp: Any) -> Callable[[Any, Any], str]:
    def hook(value: Any, _: Any) -> str:
        if value is None:
            raise Invalid.at("is required")
        problem = answer_problem(value)
        if problem:
            raise Invalid.at(problem)
        return str(value)

    return hook


_PROBABILITY = number_hook(Number(-math.inf, math.inf), float)
_CONFIDENCE = (
    f"must be an answer (a string of 1 to {MAX_ANSWER} characters) or a distribution"
    " {answer: probability}"
)


def _confidence_hook(rule: Confidence, tp: Any) -> Callable[[Any, Any], str | dict[str, float]]:
    def hook(value: Any, _: Any) -> str | dict[str, float]:
        if value is None:
            raise Invalid.at("is required")
        if value.__class__ is str:
            problem = answer_problem(value)
            if problem:
                raise Invalid.at(problem)
            return str(value)
        if not isinstance(value, dict):
            raise Invalid.at(_CONFIDENCE)
        if not 1 <= len(value) <= MAX_DISTRIBUTION:
            raise Invalid.at(f"must be a distribution of 1 to {MAX_DISTRIBUTION:,} answers")
        problems: list[tuple[Path, str]] = []
        for key, probability in value.items():
            problem = answer_problem(key)
            if problem:
                problems.append(((str(key),), f"an answer {problem}"))
                continue
            try:
                _PROBABILITY(probability, None)
            except Invalid as exc:
                problems.extend(((key, *path), message) for path, message in exc.problems)
                continue
            if probability < 0:
                problems.append(((key,), "must be a probability >= 0"))
        if problems:
            raise Invalid(problems)
        try:
            total = math.fsum(value.values())
        except OverflowError:
            total = math.inf
        if not 0 < total < math.inf:
            raise Invalid.at("probabilities must sum to a finite number greater than 0")
        return dict(value)

    return hook


_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def _format_hash_hook(rule: FormatHash, tp: Any) -> Callable[[Any, Any], str]:
    def hook(value: Any, _: Any) -> str:
        if value is None:
            return ""  # null means left out: the default format
        if value.__class__ is not str:
            raise Invalid.at("must be a string")
        if len(value) > MAX_FORMAT_HASH or not _PRINTABLE.fullmatch(value):
            raise Invalid.at(
                f"must be at most {MAX_FORMAT_HASH} printable ASCII characters (space to ~)"
            )
        return str(value)

    return hook


def _embedding_hook(rule: Embedding, tp: Any) -> Callable[[Any, Any], bytes]:
    def hook(value: Any, _: Any) -> bytes:
        return float32_bytes(value)

    return hook


_DISTRIBUTION = _confidence_hook(Confidence(), None)
register_rule(Embedding, _embedding_hook)
register_rule(Answer, _answer_hook)
register_rule(Confidence, _confidence_hook)
register_rule(FormatHash, _format_hash_hook)
_vote = class_hook(Vote)


def _votes_hook(rule: Votes, tp: Any) -> Callable[[Any, Any], tuple[Vote, ...]]:
    count = f"must be an array of {rule.lo} to {rule.hi} votes"

    def hook(value: Any, _: Any) -> tuple[Vote, ...]:
        if value is None:
            raise Invalid.at("is required")
        if not isinstance(value, list | tuple) or not rule.lo <= len(value) <= rule.hi:
            raise Invalid.at(count)
        problems: list[tuple[Path, str]] = []
        votes: list[Vote] = []
        seen: dict[int, int] = {}  # member index -> the position of its first vote
        for position, item in enumerate(value):
            try:
                vote = _plain_vote(item) or _vote(item, None)
            except Invalid as exc:
                problems.extend(((position, *path), message) for path, message in exc.problems)
                continue
            first = seen.setdefault(vote.index, position)
            if first != position:
                problems.append(
                    ((position, "index"), f"member {vote.index} voted already (/votes/{first})")
                )
            votes.append(vote)
        if problems:
            raise Invalid(problems)
        return tuple(votes)  # in the request's order: later problems name these positions

    return hook


def _plain_vote(item: Any) -> Vote | None:
    """The usual vote (a member index and a string answer, nothing else) without the class
    hook; None for anything else, which the class hook reads (and explains)."""
    if item.__class__ is not dict or len(item) != 2:
        return None
    index, answer = item.get("index"), item.get("confidence_id")
    if index.__class__ is not int or not 0 <= index < MAX_MEMBERS:
        return None
    if answer.__class__ is str:
        return None if answer_problem(answer) else Vote(index=index, confidence_id=answer)
    if answer.__class__ is dict:
        try:
            return Vote(index=index, confidence_id=_DISTRIBUTION(answer, None))
        except Invalid:
            return None  # the class hook says where
    return None


register_rule(Votes, _votes_hook)
# Last: a generated function binds the hooks registered when it is made.
_completion = class_hook(Completion)
_mark = class_hook(Mark)
_weights_query = class_hook(WeightsQuery)


def _structured(hook: Callable[[Any, Any], Any], raw: Any) -> Any:
    try:
        return hook(raw, None)
    except Invalid as exc:
        raise error(exc.problems) from None


_FIELD_HOOKS = {
    field.name: converter.get_structure_hook(field.type)
    for field in attrs.fields(attrs.resolve_types(Completion))
}
_REQUIRED = frozenset(
    field.name for field in attrs.fields(Completion) if field.default is attrs.NOTHING
)


def completion_of(raw: Any) -> Completion:
    """One completion (a dict with the fields of `Completion`), by the field rules."""
    # A batch is read by the thousand: the usual completion (known keys, all present that
    # must be) goes through each field's hook directly, as the generated class function
    # would; anything it refuses is read again by that function, which reports every problem.
    if raw.__class__ is dict and raw.keys() >= _REQUIRED and raw.keys() <= _FIELD_HOOKS.keys():
        try:
            return Completion(**{key: _FIELD_HOOKS[key](value, None) for key, value in raw.items()})
        except Invalid:
            pass
    found = _structured(_completion, raw)
    assert isinstance(found, Completion)
    return found


def mark_of(correct_confidence_id: Any) -> str:
    """The correct answer of a mark, by the `Answer` rule (``/correct_confidence_id``)."""
    found = _structured(_mark, {"correct_confidence_id": correct_confidence_id})
    assert isinstance(found, Mark)
    return found.correct_confidence_id


def weights_query_of(raw: Any) -> WeightsQuery:
    """A weights query (``embedding``, ``response_format_hash``), by the field rules."""
    found = _structured(_weights_query, raw)
    assert isinstance(found, WeightsQuery)
    return found


def body_fields(cls: type, body: Any) -> dict[str, Any]:
    """A request body of ``cls``'s fields (a mark, a weights query) as a dict, its keys
    checked; the values are the registry's to check, with the rest of the call."""
    if not isinstance(body, dict):
        raise ValidationError.one("", "must be a JSON object")
    known = [field.name for field in attrs.fields(cls)]
    unknown = [unknown_key(key, known) for key in body if key not in known]
    if unknown:
        raise error(unknown)
    return body


def id_problem(value: Any) -> str | None:
    """Why ``value`` is not a completion id (the rule of a usage event's ``request_id``)."""
    return ids.bounded_text_problem(value)


def check_id(value: Any, path: str = "/id") -> str:
    problem = id_problem(value)
    if problem:
        raise ValidationError.one(path, problem)
    return str(value)


def votes_text(votes: Iterable[Vote]) -> str:
    """The votes as stored: canonical JSON (RFC 8785), in member ``index`` order."""
    ordered = sorted(votes, key=lambda vote: vote.index)
    try:
        return _plain_votes_text(ordered)
    except _NotPlain:
        return rfc8785.dumps(
            [{"index": v.index, "confidence_id": v.confidence_id} for v in ordered]
        ).decode()


class _NotPlain(Exception):
    """A value whose canonical form `_plain_votes_text` does not write: rfc8785 does."""


def _plain_votes_text(ordered: list[Vote]) -> str:
    """RFC 8785 of the votes, written directly (the pure-Python rfc8785 took more time than
    every rule of a completion): strings as ``json.dumps`` writes them without ASCII
    escapes (the same escapes as ECMAScript's), answers of a distribution in ASCII order
    (RFC 8785 sorts by UTF-16 code units: the same for ASCII), whole numbers as integers,
    other floats by their shortest repr when it has no exponent (ECMAScript's digits);
    anything else raises `_NotPlain`."""
    parts = []
    for vote in ordered:
        answer = vote.confidence_id
        if isinstance(answer, str):
            text = _string(answer)
        else:
            if not all(key.isascii() for key in answer):
                raise _NotPlain
            text = (
                "{"
                + ",".join(f"{_string(key)}:{_number(answer[key])}" for key in sorted(answer))
                + "}"
            )
        parts.append(f'{{"confidence_id":{text},"index":{vote.index}}}')
    return "[" + ",".join(parts) + "]"


_string = json.JSONEncoder(ensure_ascii=False).encode


def _number(value: float) -> str:
    if value.__class__ is int and abs(value) < 2**53:
        return str(value)
    if value.__class__ is float:
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = repr(value)
        if "e" not in text and "n" not in text:
            return text
    raise _NotPlain


# --- batches ----------------------------------------------------------------------------------


@frozen
class Batch:
    """The completions of a batch that passed the field rules, each with its index, and
    the problems of the others as ``(index, path, message)``."""

    items: list[tuple[int, Completion]]
    problems: list[tuple[int, str, str]]


def iterate(completions: Iterable[Any]) -> Iterator[Any]:
    try:
        return iter(completions)
    except TypeError:
        raise ValidationError.one("", "must be an iterable of completions") from None


def validated(completions: Iterable[Any]) -> Batch:
    """Every completion of a batch by the field rules; problems collected with their index
    (up to `MAX_PROBLEMS`)."""
    items: list[tuple[int, Completion]] = []
    problems: list[tuple[int, str, str]] = []
    # The collector paused meanwhile: a batch allocates a few objects per completion, none
    # in a cycle, while the caller holds every embedding as a list of numbers; each full
    # collection would walk all of those numbers again (20,000 completions of 1,536 numbers:
    # 5,050 a second with it on, 7,631 with it paused).
    paused = gc.isenabled()
    gc.disable()
    try:
        for index, raw in enumerate(iterate(completions)):
            try:
                items.append((index, completion_of(raw)))
            except ValidationError as exc:
                problems.extend((index, path, message) for path, message in exc.errors)
                if len(problems) >= MAX_PROBLEMS:
                    return Batch(items, problems[:MAX_PROBLEMS])
    finally:
        if paused:
            gc.enable()
    return Batch(items, problems)


def as_dict(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A completion given as keyword arguments, without the ones left at None."""
    return {key: value for key, value in raw.items() if value is not None}


def same_completion(stored: Sequence[Any], row: Sequence[Any], timeless: bool) -> bool:
    """Whether ``row`` (a completion as written) repeats the ``stored`` one: the same Query
    Model, format, embedding (float32 bytes), votes and user, and the same ``at`` unless
    the repeat left it out (a retry means "the same call")."""
    # (id, query_model, training_table_name, format, dimensions, embedding, votes, at,
    #  user_id, created)
    return (
        tuple(stored[1:7]) == tuple(row[1:7])
        and stored[8] == row[8]
        and (timeless or stored[7] == row[7])
    )
