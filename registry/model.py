"""The Query LLM domain model: spec sections 2 and 3, one field per line.

Each field carries its rule in ``Annotated`` metadata (its range, its allowed
values, the default that normalization drops); `registry.hooks` reads the
metadata to validate and normalize wire JSON. An instance is always in
normalized form: dropped defaults are ``None``, sets are sorted tuples.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal, get_type_hints

import attrs
from attrs import field, fields, frozen

from registry.naming import Names, model_names, names

INT32_MAX = 2_147_483_647
WEIGHT_MAX = 1_000_000
MAX_CANONICAL_BYTES = 64 * 1024  # spec 2.4
MAX_MODEL_CANONICAL_BYTES = 1024 * 1024  # QUERY_MODEL.md section 1
MAX_MEMBERS = 128

Mode = Literal[
    "generate",
    "select_thinking",
    "select_non_thinking",
    "select_thinking_logprobs",
    "select_non_thinking_logprobs",
]
LOGPROBS_MODES = frozenset({"select_thinking_logprobs", "select_non_thinking_logprobs"})
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
Verbosity = Literal["low", "medium", "high"]
DataCollection = Literal["allow", "deny"]
ProviderSort = Literal["price", "throughput", "latency"]
# Listed in the order normalization puts them in (spec 2.1).
Quantization = Literal["int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown"]


def normalized(instance: Any) -> dict[str, Any]:
    """A model instance (always in normalized form) as JSON-ready values: every field
    that normalization dropped (None) left out, tuples as lists, nested objects too.
    This is the form that is hashed (`registry.naming`), stored and returned."""
    form = _form(instance)
    assert isinstance(form, dict)
    return form


# Field names per model class, read once: `attrs.asdict` with a filter and a serializer
# asks both of every value and took five times as long, on the path that names a body.
_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _form(value: Any) -> Any:
    cls = type(value)
    try:
        names_ = _FIELDS[cls]
    except KeyError:
        names_ = _FIELDS[cls] = tuple(a.name for a in fields(cls)) if attrs.has(cls) else None
    if names_ is not None:
        out = {}
        for name in names_:
            item = getattr(value, name)
            if item is not None:
                out[name] = _form(item)
        return out
    if isinstance(value, (tuple, list)):
        return [_form(item) for item in value]
    if isinstance(value, dict):
        return {key: _form(item) for key, item in value.items()}
    return value


# --- field rules (read by registry.hooks) ------------------------------------


@frozen
class Number:
    """A JSON number (integral if ``integer``) in ``[lo, hi]``; ``drop`` holds the defaults."""

    lo: float
    hi: float
    drop: tuple[float, ...] = ()
    integer: bool = False
    above_lo: bool = False  # the lower bound itself is not allowed


def integer(lo: int, hi: int, drop: tuple[int, ...] = ()) -> Number:
    return Number(lo, hi, drop, integer=True)


@frozen
class Choice:
    """One of the strings of the field's ``Literal`` type; ``drop`` is the default."""

    drop: str | None = None


@frozen
class Flag:
    """A JSON boolean; ``drop`` is the default."""

    drop: bool | None = None


@frozen
class Identifier:
    """1 to 256 characters, no white space or control characters: model and user ids."""


@frozen
class Strings:
    """An array of strings made into a set. ``order``: ``first`` keeps the first of
    duplicates, ``sorted`` sorts by code point, ``listed`` follows the ``Literal``."""

    order: Literal["first", "sorted", "listed"]
    identifiers: bool = False


@frozen
class Stop:
    """A non-empty string or an array of them; see spec section 2 on ``stop``."""


@frozen
class LogitBias:
    """Token ids (decimal strings) to integers in [-100, 100]; zero entries are dropped."""


# --- the model -----------------------------------------------------------------


@frozen(kw_only=True)
class Provider:
    """OpenRouter provider preferences (spec 2.1)."""

    order: Annotated[tuple[str, ...] | None, Strings("first")] = None
    allow_fallbacks: Annotated[bool | None, Flag(drop=True)] = None
    require_parameters: Annotated[bool | None, Flag(drop=False)] = None
    data_collection: Annotated[DataCollection | None, Choice(drop="allow")] = None
    only: Annotated[tuple[str, ...] | None, Strings("sorted")] = None
    ignore: Annotated[tuple[str, ...] | None, Strings("sorted")] = None
    quantizations: Annotated[tuple[Quantization, ...] | None, Strings("listed")] = None
    sort: Annotated[ProviderSort | None, Choice()] = None


@frozen(kw_only=True)
class Reasoning:
    """OpenRouter reasoning configuration (spec 2.2)."""

    max_tokens: Annotated[int | None, integer(0, INT32_MAX, drop=(0,))] = None
    effort: Annotated[Effort | None, Choice()] = None
    enabled: Annotated[bool | None, Flag()] = None


@frozen(kw_only=True)
class StaticWeight:
    """A fixed weight, 0 < weight <= 1e6."""

    type: Literal["static"] = "static"
    weight: Annotated[float, Number(0, WEIGHT_MAX, above_lo=True)]


@frozen(kw_only=True)
class TrainingTableWeight:
    """A weight learned from a training table, between ``min_weight`` and ``max_weight``."""

    type: Literal["training_table"] = "training_table"
    base_weight: Annotated[float, Number(0, WEIGHT_MAX)]
    min_weight: Annotated[float, Number(0, WEIGHT_MAX)]
    max_weight: Annotated[float, Number(0, WEIGHT_MAX)]


Weight = StaticWeight | TrainingTableWeight


@frozen(kw_only=True)
class QueryLlm:
    """A validated Query LLM in normalized form; build one with `registry.validate`."""

    id: Annotated[str, Identifier()]
    mode: Annotated[Mode, Choice()]
    select_top_logprobs: Annotated[int | None, integer(0, 20, drop=(0, 1))] = None
    frequency_penalty: Annotated[float | None, Number(-2, 2, drop=(0,))] = None
    logit_bias: Annotated[dict[str, int] | None, LogitBias()] = field(default=None, hash=False)
    max_completion_tokens: Annotated[int | None, integer(0, INT32_MAX, drop=(0,))] = None
    presence_penalty: Annotated[float | None, Number(-2, 2, drop=(0,))] = None
    reasoning_effort: Annotated[Effort | None, Choice()] = None
    stop: Annotated[str | tuple[str, ...] | None, Stop()] = None
    temperature: Annotated[float | None, Number(0, 2, drop=(1,))] = None
    top_p: Annotated[float | None, Number(0, 1, drop=(1,))] = None
    max_tokens: Annotated[int | None, integer(0, INT32_MAX, drop=(0,))] = None
    min_p: Annotated[float | None, Number(0, 1, drop=(0,))] = None
    provider: Provider | None = None
    reasoning: Reasoning | None = None
    repetition_penalty: Annotated[float | None, Number(0, 2, drop=(1,))] = None
    top_a: Annotated[float | None, Number(0, 1, drop=(0,))] = None
    top_k: Annotated[int | None, integer(0, INT32_MAX, drop=(0,))] = None
    verbosity: Annotated[Verbosity | None, Choice(drop="medium")] = None
    models: Annotated[tuple[str, ...] | None, Strings("first", identifiers=True)] = None
    weight: Weight

    # The names are derived from the normalized form (spec section 4).
    @cached_property
    def _names(self) -> Names:
        return names(normalized(self))

    @property
    def canonical(self) -> bytes:
        """The RFC 8785 bytes of the normalized form: what `name` hashes."""
        return self._names.canonical

    @property
    def name(self) -> str:
        """The 22-character content address of the whole Query LLM."""
        return self._names.name

    @property
    def training_table_name(self) -> str | None:
        """The content address of all but the weight; only for training-table weights."""
        return self._names.training_table_name


# --- Query Models (QUERY_MODEL.md) ---------------------------------------------------------


@frozen
class Members:
    """An array of ``lo`` to ``hi`` Query LLM bodies, each validated as by `registry.validate`;
    kept sorted by name, duplicates included."""

    lo: int
    hi: int


@frozen(kw_only=True)
class StaticStrategy:
    """Every member votes with its own static weight."""

    type: Literal["static"] = "static"


@frozen(kw_only=True)
class TrainingTableStrategy:
    """Members' weights are learned from the ``top`` nearest rows of a training table,
    prompts embedded by ``embeddings_model``."""

    type: Literal["training_table"] = "training_table"
    embeddings_model: Annotated[str, Identifier()]
    top: Annotated[int, integer(1, 1000)]


Strategy = StaticStrategy | TrainingTableStrategy


@frozen(kw_only=True)
class QueryModel:
    """A validated Query Model (an ensemble) in normalized form; see `registry.validate_model`."""

    models: Annotated[tuple[QueryLlm, ...], Members(1, MAX_MEMBERS)]
    weight: Strategy

    @property
    def members(self) -> tuple[QueryLlm, ...]:
        """The members, sorted by name; duplicates are kept."""
        return self.models

    @cached_property
    def _names(self) -> Names:
        return model_names(
            [m.name for m in self.models],
            [m.training_table_name for m in self.models],
            normalized(self.weight),
        )

    @property
    def canonical(self) -> bytes:
        """The RFC 8785 bytes over member names and weight: what `name` hashes."""
        return self._names.canonical

    @property
    def name(self) -> str:
        """The 22-character content address of the Query Model."""
        return self._names.name

    @property
    def training_table_name(self) -> str | None:
        """The content address of its training table; only for ``training_table`` weights."""
        return self._names.training_table_name


# --- usage events (spec section 6) ------------------------------------------------------

MAX_TOKENS_PER_EVENT = 10**12
MAX_CREDITS_PER_EVENT = 10**6
NANO = 10**9  # costs are kept as integer nano-credits


@frozen
class Amount:
    """A whole number of tokens, 0 to 10**12."""


@frozen
class Cost:
    """Credits, 0 to 10**6, as an exact decimal (``str``, ``int``, ``float`` by its
    shortest repr, or ``Decimal``) rounded half-even to 9 places: kept in nano-credits."""


@frozen
class Moment:
    """An RFC 3339 time or aware ``datetime`` from 1970 to 9999, kept in UTC microseconds."""


@frozen
class Text:
    """A non-empty string of at most 256 characters."""


@frozen
class QueryLlmName:
    """A name: 22 base62 characters."""


@frozen
class QueryModelName:
    """A Query Model name: 22 base62 characters (that it is registered is checked on write)."""


@frozen(kw_only=True)
class UsageEvent:
    """One request served with one registered Query LLM; the user comes from the token."""

    name: Annotated[str, QueryLlmName()]
    at: Annotated[int | None, Moment()] = None  # None: when it is recorded
    request_id: Annotated[str | None, Text()] = None
    chat_completion_tokens: Annotated[int, Amount()] = 0
    chat_prompt_tokens: Annotated[int, Amount()] = 0
    chat_cost: Annotated[int, Cost()] = 0
    embedding_completion_tokens: Annotated[int, Amount()] = 0
    embedding_prompt_tokens: Annotated[int, Amount()] = 0
    embedding_cost: Annotated[int, Cost()] = 0
    query_model: Annotated[str | None, QueryModelName()] = None  # the ensemble it served


# The six amounts, in field (and usage_events column) order: the fields whose rule is
# Amount or Cost, so a field added before, between or after them cannot slip in.
_EVENT_HINTS = get_type_hints(UsageEvent, include_extras=True)
AMOUNTS = tuple(
    a.name
    for a in fields(UsageEvent)
    if any(isinstance(rule, Amount | Cost) for rule in _EVENT_HINTS[a.name].__metadata__)
)


# --- completions and training tables (the training-table contract) -------------------------

MAX_DIMENSIONS = 16_384  # numbers in an embedding
MAX_ANSWER = 128  # characters of an answer (a confidence id)
MAX_DISTRIBUTION = 1000  # answers in a distribution vote
MAX_FORMAT_HASH = 128  # characters of a response_format_hash
# The largest finite float32: a number past it would be stored as an infinity.
FLOAT32_MAX = 3.4028234663852886e38


@frozen
class Embedding:
    """A prompt's embedding: 1 to 16,384 finite numbers, not all zero, each within float32's
    range. Stored as float32 (rounded to nearest), little-endian; every comparison reads the
    stored values."""


@frozen
class Answer:
    """An answer a member voted for, or the correct one: a non-empty string of at most
    128 characters."""


@frozen
class Confidence:
    """What a member voted for: an `Answer`, or a distribution ``{answer: probability}`` of
    1 to 1,000 answers, each probability a finite number >= 0, summing to more than 0."""


@frozen
class FormatHash:
    """Which question format a completion answered: at most 128 printable ASCII characters;
    ``""`` (the default) is a format too."""


@frozen
class Votes:
    """``lo`` or more votes, each member ``index`` at most once; kept in ``index`` order."""

    lo: int
    hi: int


@frozen(kw_only=True)
class Vote:
    """One member's vote: its ``index`` in the Query Model and the answer it voted for."""

    index: Annotated[int, integer(0, MAX_MEMBERS - 1)]
    confidence_id: Annotated[str | dict[str, float], Confidence()]


@frozen(kw_only=True)
class Completion:
    """One call of a Query Model: its prompt's embedding and each answering member's vote.

    ``embedding`` holds the float32 bytes (little-endian) the numbers round to."""

    id: Annotated[str, Text()]
    query_model: Annotated[str, QueryModelName()]
    embedding: Annotated[bytes, Embedding()]
    votes: Annotated[tuple[Vote, ...], Votes(1, MAX_MEMBERS)]
    response_format_hash: Annotated[str, FormatHash()] = ""
    at: Annotated[int | None, Moment()] = None  # None: when it is recorded

    @property
    def dimensions(self) -> int:
        return len(self.embedding) // 4


@frozen(kw_only=True)
class Mark:
    """The correct answer of a completion: it makes the completion a training row."""

    correct_confidence_id: Annotated[str, Answer()]


@frozen(kw_only=True)
class WeightsQuery:
    """A prompt to weigh a Query Model's members for (``POST /query_models/{name}/weights``)."""

    embedding: Annotated[bytes, Embedding()]
    response_format_hash: Annotated[str, FormatHash()] = ""
