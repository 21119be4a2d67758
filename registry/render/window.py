"""The query a dashboard page answers: what was typed (`page.Form`) made into the library's
arguments, checked by the library itself, and what is shown when it is refused.

A refused query never leaves a page blank: its problems are listed, the fields they
name are left out and the rest is asked again; if that is refused too, the page shows
the default, the last 30 whole days in UTC per day, for everyone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from attrs import evolve, frozen

from registry import series as buckets
from registry import times
from registry.api import RegistryApi
from registry.errors import AuthenticationError, AuthorizationError, ValidationError
from registry.render.labels import COUNTERS
from registry.render.page import Form

DAYS = 30  # the default window: the last 30 days, whole days in UTC
Problems = list[tuple[str, str]]


@frozen
class Query:
    """A usage question as `RegistryApi.usage_series` takes it (``token`` is the caller's)."""

    start: str
    end: str
    bucket: str = "day"
    group_by: tuple[str, ...] = ()
    names: tuple[str, ...] | None = None
    query_model: str | None = None
    me: bool = False
    token: str | None = None

    def series(self, registry: RegistryApi, **changes: Any) -> list[dict[str, Any]]:
        """`usage_series` for this query, with ``changes`` (another bucket, grouping...)."""
        asked = evolve(self, **changes)
        return registry.usage_series(
            asked.start,
            asked.end,
            bucket=asked.bucket,
            group_by=asked.group_by,
            names=asked.names,
            query_model=asked.query_model,
            me=asked.me,
            token=asked.token,
        )


def default_window() -> tuple[str, str]:
    """The last 30 days: from midnight UTC 29 days ago to the coming midnight."""
    end = buckets.following_boundary(times.now(), "day")
    start = end - DAYS * 86_400_000_000
    return buckets.render(start), buckets.render(end)


def _typed(form: Form, token: str | None, drop: set[str]) -> tuple[Query, Problems]:
    """The query the form asks, leaving out the fields in ``drop``; ``me`` is checked here
    (the library takes a bool, a form gives text)."""
    start, end = default_window()
    problems: Problems = []
    me = False
    if "me" not in drop:
        if form.me in ("true", "false", ""):
            me = form.me == "true"
        else:
            problems.append(("/me", "must be true or false"))
    keep = {
        key: key not in drop for key in ("from", "to", "bucket", "group_by", "name", "query_model")
    }
    query = Query(
        start=form.start if form.start and keep["from"] else start,
        end=form.end if form.end and keep["to"] else end,
        bucket=form.bucket if form.bucket and keep["bucket"] else "day",
        group_by=form.group_by if keep["group_by"] else (),
        names=form.names or None if keep["name"] else None,
        query_model=form.query_model or None if keep["query_model"] else None,
        me=me,
        token=None if "token" in drop else token,
    )
    return query, problems


def _problems(exc: Exception) -> Problems:
    if isinstance(exc, ValidationError):
        return list(exc.errors)
    if isinstance(exc, AuthorizationError):
        return [("/me", str(exc))]
    return [("/token", str(exc))]


def resolve(
    registry: RegistryApi,
    form: Form,
    token: str | None = None,
    **fixed: Any,
) -> tuple[Query, list[dict[str, Any]], Problems]:
    """The query to show, its series, and the typed query's problems (none: it is shown).

    ``fixed`` are arguments the page sets itself (a Query LLM page's ``names``)."""
    drop: set[str] = set()
    errors: Problems = []
    for _ in range(2):
        query, problems = _typed(form, token, drop)
        query = evolve(query, **fixed)
        if not problems:
            try:
                return query, query.series(registry), errors
            except (ValidationError, AuthenticationError, AuthorizationError) as exc:
                problems = _problems(exc)
        errors = errors or problems
        drop |= {path.split("/")[1] if path.count("/") else path for path, _ in problems}
        if any(path in ("/from", "/to") for path, _ in problems):
            drop |= {"from", "to"}  # one bound alone is seldom what was meant
        if any(path == "/me" for path, _ in problems):
            drop.add("token")
    start, end = default_window()
    query = evolve(Query(start, end), **fixed)
    return query, query.series(registry), errors


def totals_by(
    registry: RegistryApi, query: Query, key: str
) -> dict[str | None, dict[str, Decimal | int]]:
    """Each ``key`` group's counters over the query's whole window, with its filters:
    the series per month (the widest bucket, so it never has more buckets than the
    page's own series), summed (USAGE_SERIES.md: the sums are the statistics)."""
    sums: dict[str | None, dict[str, Decimal | int]] = {}
    for bucket in query.series(registry, bucket="month", group_by=(key,)):
        for row in bucket["results"]:
            into = sums.setdefault(row[key], dict.fromkeys(COUNTERS, 0))
            for counter in COUNTERS:
                into[counter] += row[counter]
    return sums


def counters(row: Mapping[str, Any]) -> dict[str, Decimal | int]:
    """The counters of a statistics result, zeros where it has none."""
    return {key: row.get(key, 0) for key in COUNTERS}


def summed(data: Sequence[Mapping[str, Any]]) -> dict[str, Decimal | int]:
    """A whole series' counters added up."""
    total: dict[str, Decimal | int] = dict.fromkeys(COUNTERS, 0)
    for bucket in data:
        for row in bucket["results"]:
            for counter in COUNTERS:
                total[counter] += row[counter]
    return total
