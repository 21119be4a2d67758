"""Canonical bytes and content-addressed names: spec section 4, and nowhere else.

canonical bytes = RFC 8785 serialization of the normalized form (UTF-8);
name = XXH3-128 (seed 0) of those bytes as a big-endian unsigned integer,
written in base62 (``0-9A-Za-z``), left-padded with ``0`` to 22 characters.
The training table name is the same over the normalized form without ``weight``.
A Query Model (QUERY_MODEL.md section 3) is named over its members' names
rather than their bodies: they are content addresses already.
"""

from __future__ import annotations

from typing import Any

import rfc8785
import xxhash
from attrs import frozen

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NAME_LENGTH = 22  # 62**22 > 2**128, so every digest fits
# Two digits per step (62**2 = 3844): half the big-integer divisions.
_PAIRS = tuple(a + b for a in ALPHABET for b in ALPHABET)


def name_of(canonical: bytes) -> str:
    """The base62 name of some canonical bytes."""
    n = xxhash.xxh3_128_intdigest(canonical)
    pairs = []
    for _ in range(NAME_LENGTH // 2):
        n, pair = divmod(n, 3844)
        pairs.append(_PAIRS[pair])
    pairs.reverse()
    return "".join(pairs)


def is_name(text: object) -> bool:
    """Whether ``text`` has the shape of a name (it may still be unregistered)."""
    return isinstance(text, str) and len(text) == NAME_LENGTH and text.isascii() and text.isalnum()


def not_a_name(kind: str) -> str:
    """The message for a value that is not shaped like a name of ``kind`` (a Query LLM...)."""
    return f"must be a {kind} name: {NAME_LENGTH} base62 characters"


@frozen
class Names:
    """What this module derives from a normalized Query LLM."""

    canonical: bytes
    name: str
    training_table_name: str | None


def names(normalized: dict[str, Any]) -> Names:
    """The canonical bytes and names of a normalized form (which it takes apart)."""
    if normalized["weight"]["type"] != "training_table":
        canonical = rfc8785.dumps(normalized)
        return Names(canonical, name_of(canonical), None)
    weight = normalized.pop("weight")
    # RFC 8785 sorts keys, and "weight" sorts after every other key of the
    # body, so the canonical form is the one without the weight with the weight
    # appended: one serialization serves both names.
    head = rfc8785.dumps(normalized)
    canonical = b'%s,"weight":%s}' % (head[:-1], rfc8785.dumps(weight))
    return Names(canonical, name_of(canonical), name_of(head))


def model_names(
    member_names: list[str], member_training_tables: list[str | None], weight: dict[str, Any]
) -> Names:
    """The canonical bytes and names of a Query Model, from its members (in normalized,
    sorted order, duplicates repeated) and its normalized weight strategy.

    The training table name leaves out member weights (by taking the members'
    training table names) and ``top``: the training data depends on neither.
    """
    canonical = rfc8785.dumps({"models": member_names, "weight": weight})
    if weight["type"] != "training_table":
        return Names(canonical, name_of(canonical), None)
    tables = sorted(t for t in member_training_tables if t is not None)
    table_weight = {"type": "training_table", "embeddings_model": weight["embeddings_model"]}
    return Names(
        canonical,
        name_of(canonical),
        name_of(rfc8785.dumps({"models": tables, "weight": table_weight})),
    )
