"""Usage events in: the one way every surface turns its input into rows a store may write.

Library dicts, ``qllm usage import``, every form of ``POST /usage`` and ``qllm
copy`` all go through here, before any transaction:

1. `row_of` applies the field rules (`registry.hooks`) to one event and returns
   its ``usage_events`` row; `read_line` and `read_body` read JSON text straight
   into typed fields first where they can (msgspec, in C: the import's fast path),
   and what they cannot read is read by `registry.jsonin`, the one JSON reader.
2. `validated` is the validation loop: it reads a batch of any length lazily,
   `CHUNK` events at a time, and yields `Chunk`s of rows with the user and the
   time of recording filled in. Problems are collected across events (up to
   `MAX_PROBLEMS`), each with the index of its event, so that a surface can
   say where they are in its own terms (`EventLines.line_of`).
3. `Known.check` refuses rows that name an unregistered Query LLM, or a Query
   Model that does not have the row's Query LLM as a member, asking the store
   only about names it has not seen yet (names are never removed).

A store receives only such rows: it inserts them, checks ``request_id``
repeats and adds them into the rollups, and applies no rule of its own.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from itertools import islice
from types import GenericAlias
from typing import Annotated, Any, Protocol, Union

import attrs
import msgspec

from registry import ids, jsonin
from registry.errors import NotFoundError, ValidationError
from registry.hooks import NOT_A_MODEL_NAME, NOT_A_NAME, Invalid, converter, error, unknown_key
from registry.model import (
    MAX_TOKENS_PER_EVENT,
    Amount,
    Cost,
    Moment,
    QueryLlmName,
    QueryModelName,
    Text,
    UsageEvent,
)
from registry.naming import is_name

CHUNK = 2_000  # events validated (and written) at a time
MAX_PROBLEMS = 100  # problems of a batch reported at most; the batch is refused either way

# A ``usage_events`` row: [name, user_id, at, request_id, *amounts, query_model].
Row = list[Any]
MODEL = -1  # a row's query_model


# --- one event: the field rules ---------------------------------------------------------

# Usage events are the hot path (an import reads millions), so they skip the
# generated class function and the attrs instance: the fields' own hooks fill
# a list in `UsageEvent` field order directly. (resolve_types: the annotations are strings.)
_EVENT: tuple[attrs.Attribute[Any], ...] = attrs.fields(attrs.resolve_types(UsageEvent))
_EVENT_FIELDS = [a.name for a in _EVENT]
# Row positions: the user (slot 1) is not an event field; it comes from the token.
# (Every hook here ignores its second argument, the type: it is called with None.)
_EVENT_HOOKS = {
    a.name: (position + (position > 0), converter.get_structure_hook(a.type))
    for position, a in enumerate(_EVENT)
}
_EVENT_DEFAULTS = [None if a.default is attrs.NOTHING else a.default for a in _EVENT]
_EVENT_DEFAULTS.insert(1, None)


@attrs.frozen
class Unreadable:
    """An event a reader could not read (a line that is not JSON, or repeats a key):
    ``errors`` says why, as ``(path inside the event, message)``. It goes through the
    validation loop like any event, so its problems are reported at their place among
    the others."""

    errors: tuple[tuple[str, str], ...]


def row_of(raw: Any) -> Row:
    """One usage event (spec 6), validated, as a ``usage_events`` row to complete:
    ``[name, None, at, request_id, *amounts, query_model]``.

    The caller fills in the user (slot 1) and, where ``at`` is None, the time of
    recording. Costs are in nano-credits; ``at`` is in UTC microseconds.
    """
    if raw.__class__ is _Typed:
        return _typed_row(raw)
    if raw.__class__ is Unreadable:
        raise ValidationError(raw.errors)
    if not isinstance(raw, dict):
        if not isinstance(raw, Mapping):
            raise ValidationError.one("", "must be an object")
        raw = dict(raw)  # any mapping a Python caller has, read once
    values = _EVENT_DEFAULTS.copy()
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for key, value in raw.items():
        field = _EVENT_HOOKS.get(key)
        if field is None:
            problems.append(unknown_key(key, _EVENT_FIELDS))
            continue
        position, hook = field
        try:
            values[position] = hook(value, None)
        except Invalid as exc:
            problems.extend(((key, *path), message) for path, message in exc.problems)
    if values[0] is None and "name" not in raw:
        problems.append((("name",), "is required"))
    if problems:
        raise error(problems)
    return values


def stored_problem(row: Row) -> tuple[str, str] | None:
    """The first text rule of `row_of` that a stored ``usage_events`` row breaks, as
    ``(path, message)``, or None. For rows read back from a store that took them under
    older rules (a NUL in a ``request_id``): `registry.copy` checks its source with it."""
    name, user, _, request_id = row[:4]
    model = row[MODEL]
    if not is_name(name):
        return "/name", NOT_A_NAME
    if user is not None and (problem := ids.identifier_problem(user)):
        return "/user_id", problem
    if request_id is not None and (problem := ids.bounded_text_problem(request_id)):
        return "/request_id", problem
    if model is not None and not is_name(model):
        return "/query_model", NOT_A_MODEL_NAME
    return None


# --- usage events read straight from JSON text ------------------------------------------
#
# An import reads JSON Lines by the million, and the reference reader (`jsonin.loads`)
# alone costs more than all the rules. msgspec (C) reads a line straight into typed
# fields instead. It checks only what it checks exactly as the hooks would: the keys (no
# unknown, `name` present), each value's JSON type, and the amounts (whole numbers in
# their range). Everything else (names, times, request ids, costs) still goes through the
# fields' own hooks, the same code as `row_of`. Costs are typed Any, so that msgspec hands
# a JSON number over as its text (``float_hook``: a `jsonin.JsonFloat`, as the reference
# reads it), never as a float rounded on the way. msgspec keeps the last of repeated
# keys, which the reference refuses: every field left out is UNSET, and a line is the
# typed reader's only when its key count (`jsonin.flat_keys`) is the count of fields
# given. What msgspec refuses, or cannot show free of repeats, is not an error yet: the
# caller reads the line with `parse_line`, the reference, which either accepts it (2.0
# tokens, a null cost) or says what is wrong. So a line gives the same row or the same
# error either way (a property test holds the two together).

UNSET = msgspec.UNSET

# The JSON type of each rule's field; the amounts' whole range is the Amount rule's.
_JSON_TYPE: dict[type, Any] = {
    Amount: Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS_PER_EVENT)],
    Cost: Any,
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
    if field.default is None and kind is not Any:
        kind = kind | None
    return (field.name, kind | msgspec.UnsetType, UNSET)


_TypedEvent = msgspec.defstruct(
    "_TypedEvent", [_typed_field(a) for a in _EVENT], forbid_unknown_fields=True
)
_read_event = msgspec.json.Decoder(_TypedEvent, float_hook=jsonin.json_float).decode
# An event or an array of them (a list type made at run time: `_TypedEvent` is one too).
_read_events = msgspec.json.Decoder(
    Union[_TypedEvent, GenericAlias(list, _TypedEvent)],  # noqa: UP007
    float_hook=jsonin.json_float,
).decode
_FIELDS = len(_EVENT)
# Row slots (as in `row_of`) of the fields whose hook still has to run: not the amounts.
_HOOKED = tuple((*_EVENT_HOOKS[a.name], a.name) for a in _EVENT if _rule(a).__class__ is not Amount)
_AMOUNT_SLOTS = tuple(
    (_EVENT_HOOKS[a.name][0], _EVENT_DEFAULTS[_EVENT_HOOKS[a.name][0]])
    for a in _EVENT
    if _rule(a).__class__ is Amount
)


_NESTED = frozenset((dict, list))  # a cost that is one: not a flat event


class _Typed(tuple[Any, ...]):
    """One event as the typed reader read it: its fields in `UsageEvent` order (UNSET for
    those left out), their hooks still to run (`row_of`)."""

    __slots__ = ()


def _unrepeated(text: bytes | str, events: Sequence[tuple[Any, ...]]) -> bool:
    """Whether the text of these events (each its fields, as `_Typed` holds them) is free
    of repeated keys: its key count is the count of fields given (`jsonin.flat_keys`).
    False also when that cannot be shown cheaply (a cost that is an array or an object,
    an escaped quote in the text): the reference reader then reads it."""
    given = strings = 0
    for values in events:
        kinds = [*map(type, values)]
        if not _NESTED.isdisjoint(kinds):
            return False
        given += _FIELDS - kinds.count(msgspec.UnsetType)
        strings += kinds.count(str)
    return jsonin.flat_keys(text, strings) == given


def read_line(line: bytes | str) -> Any:
    """One line of a JSON Lines file read straight into typed fields, for `row_of`;
    None when the typed reader cannot read it: then read it with `parse_line`."""
    try:
        values = msgspec.structs.astuple(_read_event(line))
    except (msgspec.MsgspecError, ValueError):  # ValueError: bytes that are not UTF-8
        return None
    # `_unrepeated`, inline: this is the import's hot path.
    kinds = [*map(type, values)]
    if not _NESTED.isdisjoint(kinds):
        return None
    if jsonin.flat_keys(line, kinds.count(str)) != _FIELDS - kinds.count(msgspec.UnsetType):
        return None
    return _Typed(values)


def read_body(body: bytes | str) -> Any:
    """A JSON body of one event or an array of them, read as `read_line` reads a line
    (an event, or a list of events); None when the typed reader cannot read all of it:
    then read it with `registry.jsonin.loads`."""
    try:
        read = _read_events(body)
    except (msgspec.MsgspecError, ValueError):
        return None
    if isinstance(read, list):
        events = [_Typed(msgspec.structs.astuple(event)) for event in read]
        return events if _unrepeated(body, events) else None
    event = _Typed(msgspec.structs.astuple(read))
    return event if _unrepeated(body, [event]) else None


def _typed_row(event: _Typed) -> Row:
    row = [*event]
    row.insert(1, None)
    for position, default in _AMOUNT_SLOTS:
        if row[position] is UNSET:
            row[position] = default
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for position, hook, name in _HOOKED:
        value = row[position]
        try:
            row[position] = hook(None if value is UNSET else value, None)
        except Invalid as exc:
            problems.extend(((name, *path), message) for path, message in exc.problems)
    if problems:
        raise error(problems)
    return row


# --- JSON Lines ----------------------------------------------------------------------------


def parse_line(line: bytes | str) -> Any:
    """A line the typed reader could not read, read by `registry.jsonin`; an `Unreadable`
    if it cannot be (not UTF-8, not JSON, a key repeated)."""
    try:
        return jsonin.loads(line)
    except ValidationError as exc:
        return Unreadable(tuple(exc.errors))


class EventLines:
    """The events of JSON Lines ``source``, read lazily, one line at a time.

    ``source`` yields lines, or an `Unreadable` for a line that could not be read
    (`registry.framing` makes one of a line over its size limit). Blank lines are
    skipped; so that an event's index (which errors carry) maps
    back to its line number, the count of blank lines is remembered once per
    run of them (`line_of`), not once per line. A line that is not JSON is an
    `Unreadable` event: the validation loop reports it at its place.
    """

    def __init__(self, source: Iterable[bytes | str | Unreadable]) -> None:
        self.source = source
        self.read = 0  # events yielded so far
        self._blank = 0  # blank lines so far
        # Parallel arrays: the first event index after each run of blank lines, and the
        # blank lines before it in all.
        self._after = array("q")
        self._blanks = array("q")

    def __iter__(self) -> Iterator[Any]:
        for line in self.source:
            if isinstance(line, Unreadable):  # a line its reader could not take (too long)
                event: Any = line
            elif not line.strip():
                self._blank += 1
                continue
            else:
                event = read_line(line)
                if event is None:
                    event = parse_line(line)
            if self._blank and (not self._blanks or self._blanks[-1] != self._blank):
                self._after.append(self.read)
                self._blanks.append(self._blank)
            self.read += 1
            yield event

    def line_of(self, index: int) -> int:
        """The line number (from 1) of the event at ``index`` (from 0) of the batch."""
        run = bisect_right(self._after, index)
        return index + 1 + (self._blanks[run - 1] if run else 0)


# --- the validation loop ---------------------------------------------------------------------


@attrs.frozen
class Chunk:
    """Validated rows of consecutive events of a batch, ready for a store to write.

    ``first`` is the batch index of ``rows[0]``; ``timeless`` the positions in
    ``rows`` of the events given without ``at``, which got the time of recording
    (a retry of such an event matches its stored one whatever that time was)."""

    rows: list[Row]
    timeless: frozenset[int]
    first: int


def iterate(events: Iterable[Any]) -> Iterator[Any]:
    """An iterator over a batch of events; `ValidationError` at once if it is not iterable."""
    try:
        return iter(events)
    except TypeError:
        raise ValidationError.one("", "must be an iterable of usage events") from None


def validated(
    events: Iterable[Any], user: str | None, now: int, *, batch: bool = True
) -> Iterator[Chunk]:
    """``events`` as `Chunk`s of rows for ``user``, the events without ``at`` at ``now``.

    Read lazily, `CHUNK` at a time, so that a batch of any length (a generator, a
    file) is never whole in memory. A batch with problems yields nothing more once
    the first is found, and raises every problem found (up to `MAX_PROBLEMS`) when
    the input ends: `ValidationError` with ``events`` set. Without ``batch`` (one
    event, `record_usage`), the problems carry no index.
    """
    iterator = iterate(events)
    first = 0
    problems: list[tuple[int, str, str]] = []
    while chunk := list(islice(iterator, CHUNK)):
        rows: list[Row] = []
        timeless: set[int] = set()
        for position, raw in enumerate(chunk):
            try:
                row = row_of(raw)
            except ValidationError as exc:
                if not batch:
                    raise
                problems.extend(exc.of_event(first + position).events or ())
                if len(problems) >= MAX_PROBLEMS:
                    raise ValidationError(events=problems[:MAX_PROBLEMS]) from None
                continue
            row[1] = user
            if row[2] is None:
                timeless.add(len(rows))
                row[2] = now
            rows.append(row)
        if not problems:
            yield Chunk(rows, frozenset(timeless), first)
        first += len(chunk)
    if problems:
        raise ValidationError(events=problems)


# --- what must be registered -------------------------------------------------------------------


class Lookup(Protocol):
    """What `Known` asks a store (a read transaction's `registry.store.Tx`)."""

    def registered(self, names: Collection[str]) -> set[str]: ...
    def memberships(self, models: Collection[str]) -> tuple[set[str], set[tuple[str, str]]]: ...


class Known:
    """The names a process has seen registered. Names are never removed, so each is
    asked of the store once; `check` refuses a chunk naming anything unregistered."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.pairs: set[tuple[str, str]] = set()  # (Query Model, member)

    def check(
        self, chunk: Chunk, lookup: Callable[[], AbstractContextManager[Lookup]], *, batch: bool
    ) -> None:
        """Every row names a registered Query LLM, and its Query Model (if any) has that
        Query LLM among its members (QUERY_MODEL.md section 5); ``lookup`` opens a read
        transaction, only when something is not known yet."""
        rows = chunk.rows
        names = {row[0] for row in rows} - self.names
        pairs = {(row[MODEL], row[0]) for row in rows if row[MODEL] is not None} - self.pairs
        if not names and not pairs:
            return
        with lookup() as found:
            if names:
                self.names |= found.registered(names)
            models: set[str] = set()
            if pairs:
                models, members = found.memberships({model for model, _ in pairs})
                self.pairs |= members
        for position, row in enumerate(rows):
            index = chunk.first + position if batch else None
            if row[0] not in self.names:
                raise NotFoundError(row[0], index)
            model = row[MODEL]
            if model is None or (model, row[0]) in self.pairs:
                continue
            if model not in models:
                message = f"{model} is not a registered Query Model"
            else:
                message = (
                    f"Query Model {model} does not have the Query LLM {row[0]} among its members"
                )
            problem = ValidationError.one("/query_model", message)
            raise problem if index is None else problem.of_event(index)
