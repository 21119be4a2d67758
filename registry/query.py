"""What a statistics question asks, parsed once for every backend: windows, pages, the
sorts, and the 64-bit rule on totals. No SQL here: the stores answer these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from attrs import frozen

from registry import times
from registry.errors import ValidationError
from registry.model import AMOUNTS
from registry.naming import is_name, not_a_name

HOUR = 3_600_000_000  # microseconds
# What usage is measured by (list sorts, charts, totals): each measure is the sum of
# these amounts over the events; "requests" counts them. Token and cost measures add
# chat and embedding together (spec 9). The one definition: SQL, the CLI, the charts
# and the OpenAPI document are all made from it.
MEASURES: dict[str, tuple[str, ...]] = {
    "requests": (),
    "tokens": (
        "chat_completion_tokens",
        "chat_prompt_tokens",
        "embedding_completion_tokens",
        "embedding_prompt_tokens",
    ),
    "prompt_tokens": ("chat_prompt_tokens", "embedding_prompt_tokens"),
    "completion_tokens": ("chat_completion_tokens", "embedding_completion_tokens"),
    "cost": ("chat_cost", "embedding_cost"),
}
SORTS = ("created", *MEASURES)
MAX_PAGE = 1000
ANONYMOUS = ""  # the rollups' user_id for events recorded without a token
NO_MODEL = ""  # the rollups' query_model for events recorded for no Query Model


# --- the fields of a question ------------------------------------------------------------


def flag(path: str, value: Any) -> bool:
    """A yes-or-no field of a question (``metadata``, ``me``): True or False, nothing else."""
    if value.__class__ is not bool:
        raise ValidationError.one(path, "must be true or false")
    return bool(value)


def named(name: Any, kind: str) -> str:
    """``name`` if it is shaped like a name of ``kind`` (a Query LLM...); else an error at
    ``/name``. Before any look-up, and before a name goes into a URL path."""
    if not is_name(name):
        raise ValidationError.one("/name", not_a_name(kind))
    return str(name)


# --- windows -----------------------------------------------------------------------------


@frozen
class Window:
    """The half-open range ``[start, end)`` of UTC microseconds; None is unbounded."""

    start: int | None = None
    end: int | None = None

    @classmethod
    def of(cls, start: str | datetime | None, end: str | datetime | None) -> Window:
        problems: list[tuple[str, str]] = []
        bounds: list[int | None] = []
        for path, value in (("/from", start), ("/to", end)):
            try:
                bounds.append(None if value is None else times.parse(value))
            except times.TimeError as exc:
                problems.append((path, str(exc)))
        if problems:
            raise ValidationError(problems)
        low, high = bounds
        if low is not None and high is not None and low > high:
            raise ValidationError.one("/from", "must not be later than to")
        return cls(low, high)

    def pieces(self) -> tuple[tuple[int | None, int | None] | None, list[tuple[int, int]]]:
        """The whole hours for the rollups, and the partial hours for the raw events."""
        start, end = self.start, self.end
        first = None if start is None else -(-start // HOUR) * HOUR  # first whole hour
        last = None if end is None else end - end % HOUR  # end of the last whole hour
        if first is not None and last is not None and first >= last:
            return None, [(start, end)] if start is not None and end is not None else []
        edges = []
        if start is not None and first is not None and start < first:
            edges.append((start, first))
        if end is not None and last is not None and last < end:
            edges.append((last, end))
        return (first, last), edges


# --- what statistics are about ------------------------------------------------------------


@frozen
class Subject:
    """What a question is about: the registered things of ``table`` (by ``name``), the
    column that names them in the events and rollups, and what they are called
    (``kind``). Trusted constants only: they are spliced into SQL."""

    table: str
    column: str
    kind: str


LLMS = Subject("query_llms", "name", "Query LLM")
MODELS = Subject("query_models", "query_model", "Query Model")


# --- list pages -----------------------------------------------------------------------------


@frozen
class Page:
    """What `list` returns: ``count`` names from ``offset``, ordered by ``sort`` over ``window``."""

    count: int
    offset: int
    sort: str
    window: Window

    @classmethod
    def of(
        cls,
        count: Any,
        offset: Any,
        sort: Any,
        start: str | datetime | None,
        end: str | datetime | None,
    ) -> Page:
        problems = []
        if count.__class__ is not int or not 1 <= count <= MAX_PAGE:
            problems.append(("/count", f"must be an integer between 1 and {MAX_PAGE}"))
        if offset.__class__ is not int or offset < 0:
            problems.append(("/offset", "must be an integer, 0 or more"))
        if sort not in SORTS:
            problems.append(("/sort", "must be one of: " + ", ".join(SORTS)))
        try:
            window = Window.of(start, end)
        except ValidationError as exc:
            problems.extend(exc.errors)
        if problems:
            raise ValidationError(problems)
        return cls(count, offset, sort, window)


# --- the 64-bit guarantee -------------------------------------------------------------------

INT64_MAX = 2**63 - 1
# Every total a reader can ask for is a sum of these over one group's events:
# one amount (metadata, windows, the stats view) or a list sort key (spec 9).
# Windows are parts of the all-time totals (amounts are never negative), so
# bounding each group's all-time sums bounds every total anyone can ask for.
COMBINED = {key: columns for key, columns in MEASURES.items() if len(columns) > 1}


def too_large(group: str = "Query LLM") -> ValidationError:
    """The refusal of a write that would take a group's totals past 64 bits."""
    return ValidationError.one(
        "", f"these events would take a {group}'s totals past 2**63 (9.2e9 credits)"
    )


def check_sums(by_amount: Mapping[str, int], group: str) -> None:
    """Refuse (`too_large`) a group whose all-time sums (or combined keys) pass 64 bits."""
    if any(value > INT64_MAX for value in by_amount.values()):
        raise too_large(group)
    for columns in COMBINED.values():
        if sum(by_amount[c] for c in columns) > INT64_MAX:
            raise too_large(group)


def models_of(pairs: Iterable[tuple[str, str | None]]) -> set[str]:
    """The Query Models among ``(name, query_model)`` pairs (none: None or '')."""
    return {model for _, model in pairs if model and model != NO_MODEL}


def measure(row: Mapping[str, Any], name: str) -> int | Decimal:
    """One measure (`MEASURES`) of a statistics result (a body with metadata, a series
    row): requests, a sum of tokens, or an exact cost."""
    columns = MEASURES[name]
    if not columns:
        return int(row["requests"])
    if name == "cost":
        return sum((Decimal(row[c]) for c in columns), Decimal(0))
    return sum(int(row[c]) for c in columns)


assert set(AMOUNTS) == {c for columns in MEASURES.values() for c in columns}
