"""Readable names for what a series is grouped by, and for Query LLMs and Query Models.

A name is a 22-character hash; people know a Query LLM by its upstream ``id`` and
``mode`` (``openai/gpt-4o (generate)``) and a Query Model by its members. Two Query
LLMs can share an id and mode (another temperature, say), so a label ends with the
name's first characters (`short`), which tell them apart. The bodies come from library
calls (`RegistryApi.get`, `get_model`); nothing here reads a store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from registry.api import RegistryApi
from registry.errors import NotFoundError
from registry.model import AMOUNTS

SHORT = 7  # characters of a name: enough to tell a registry's names apart, as git's are
MEMBERS_SHOWN = 3  # a Query Model's label lists this many member ids, then "+ N more"
# A group whose key is null: events recorded without a token, or for no Query Model.
NONE_LABEL = {"user_id": "(no user)", "query_model": "(no Query Model)"}
COUNTERS = ("requests", *AMOUNTS)  # what a series result counts; its other keys group it

# What a group's key value is called, per group_by key: value -> label.
Labels = Mapping[str, Mapping[Any, str]]


def short(name: str) -> str:
    return name[:SHORT]


def llm(body: Mapping[str, Any]) -> str:
    """``openai/gpt-4o (generate)``: a Query LLM as its users know it."""
    return f"{body.get('id', '?')} ({body.get('mode', '?')})"


def model(body: Mapping[str, Any]) -> str:
    """``openai/gpt-4o + meta/llama (static)``: a Query Model by its members' ids."""
    return f"{members(body)} ({weight(body)})"


def members(body: Mapping[str, Any]) -> str:
    """``openai/gpt-4o + meta/llama``: a Query Model's members' ids, the first few."""
    ids = list(dict.fromkeys(str(m.get("id", "?")) for m in body.get("models", ())))
    shown = " + ".join(ids[:MEMBERS_SHOWN])
    if len(ids) > MEMBERS_SHOWN:
        shown += f" + {len(ids) - MEMBERS_SHOWN} more"
    return shown


def weight(body: Mapping[str, Any]) -> str:
    """A Query Model's weight type: ``static`` or ``training_table``."""
    return str(body.get("weight", {}).get("type", "?"))


def keys_of(data: Sequence[Mapping[str, Any]]) -> list[str]:
    """The group_by keys a series' results carry, in their order."""
    for bucket in data:
        for row in bucket["results"]:
            return [k for k in row if k not in COUNTERS]
    return []


def gather(
    registry: RegistryApi,
    data: Sequence[Mapping[str, Any]],
    known: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[Any, str]]:
    """Labels for the Query LLMs (``name``) and Query Models (``query_model``) a series is
    grouped by, from their bodies: those in ``known`` (by name), the rest read with
    `get` / `get_model`. Other keys (``model``, ``user_id``) are readable as they are."""
    keys = keys_of(data)
    found: dict[str, dict[Any, str]] = {}
    known = known or {}
    for key, read, describe in (
        ("name", registry.get, llm),
        ("query_model", registry.get_model, model),
    ):
        if key not in keys:
            continue
        values = {row[key] for b in data for row in b["results"] if row[key] is not None}
        found[key] = {}
        for value in sorted(values):
            body = known.get(value)
            if body is None:
                try:
                    body = read(value)
                except NotFoundError:  # not possible for a registered name: say the hash
                    found[key][value] = value
                    continue
            found[key][value] = f"{describe(body)} {short(value)}"
    return found


def of(row: Mapping[str, Any], keys: Iterable[str], labels: Labels) -> str:
    """A group's label: each key's readable value, joined by `` / ``; "all" ungrouped."""
    parts = []
    for key in keys:
        value = row[key]
        if value is None:
            parts.append(NONE_LABEL.get(key, "(none)"))
        else:
            parts.append(labels.get(key, {}).get(value, str(value)))
    return " / ".join(parts) or "all"
