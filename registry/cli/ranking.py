"""Rankings: ``qllm top`` ("which Query LLM cost most this week?"), and the rows that
``qllm list --format table|csv|json`` prints. The order is the library's (`Registry.list`
sorted by a measure); each row's totals are its `get` with metadata over the same window."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
import click

from registry import series, times
from registry.api import RegistryApi
from registry.cli.options import (
    F,
    Window,
    emit,
    now_of,
    open_registry,
    query_options,
    registry_options,
    token_option,
    window,
)
from registry.query import MEASURES, measure
from registry.render import ranking, tables, text
from registry.render.tables import Table

FORMATS = ("table", "csv", "json")
DEFAULT_LAST = "30d"  # top's window when none is given: the dashboard's too
EPOCH = "1970-01-01"  # no usage event is older (`registry.model`): top's open start


def format_option(*, default: str, json: str) -> Callable[[F], F]:
    return click.option(
        "--format",
        "format_",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="table: aligned for reading, numbers rounded; csv: every value exact, for a"
        f" spreadsheet; json: {json}.",
    )


rows = ranking.table  # the rows of a ranking, as list --format prints them too


def kind(models: bool) -> str:
    return "Query Model" if models else "Query LLM"


def span_text(span: Window) -> str:
    """A window for a person: minutes, UTC."""
    start = "the first event" if span.start is None else _minutes(span.start)
    end = "now" if span.end is None else _minutes(span.end)
    return f"from {start} to {end} UTC"


def _minutes(at: str) -> str:
    return times.render(times.parse(at))[:16].replace("T", " ")


def nothing_used(
    registry: RegistryApi, models: bool, by: str, names: Sequence[str], asked: Mapping[str, Any]
) -> bool:
    """Whether nothing of ``by`` was used in the window: the largest, the first name when
    sorted by it, has none (or there is no name at all)."""
    if not names:
        return True
    list_ = registry.list_models if models else registry.list
    get = registry.get_model if models else registry.get
    (largest,) = list_(count=1, sort=by, **asked)
    return not measure(get(largest, metadata=True, **asked), by)


def say_empty(models: bool, by: str, span: Window) -> None:
    click.echo(
        f"no usage {span_text(span)}: no {kind(models)} has any {by} in this window", err=True
    )


def show(
    shown: Table, format_: str, models: bool, by: str | None, span: Window, empty: bool
) -> None:
    """``shown`` as a table, CSV or JSON; an empty window said on stderr (CSV, JSON) or
    under the table, where the rows' order then means nothing."""
    if format_ == "json":
        emit(ranking.objects(shown))
    elif format_ == "csv":
        click.echo(tables.csv_text(shown), nl=False)
    else:
        if empty and by is not None:
            shown = attrs.evolve(shown, empty=f"no usage {span_text(span)}")
        click.echo(text.grid(shown))
        if empty and by is not None and shown.rows:
            click.echo(f"(no usage {span_text(span)}: every {by} is 0, so the order says nothing)")
        return
    if empty and by is not None:
        say_empty(models, by, span)


def window_total(
    registry: RegistryApi, models: bool, by: str, start: str, end: str, asked: Mapping[str, Any]
) -> Decimal | int:
    """The total of ``by`` over ``[start, end)`` for every Query LLM (or every Query Model:
    the events recorded for one), from the usage series in month buckets, at most
    `series.MAX_BUCKETS` a call."""
    total: Decimal | int = 0
    at, stop = times.parse(start), times.parse(end)
    while at < stop:
        upto = at
        for _ in range(series.MAX_BUCKETS):
            upto = min(series.following_boundary(upto, "month"), stop)
        data = registry.usage_series(
            times.render(at),
            times.render(upto),
            bucket="month",
            group_by=["query_model"] if models else [],
            me=asked["me"],
            token=asked["token"],
        )
        for bucket in data:
            for row in bucket["results"]:
                if not models or row["query_model"] is not None:
                    total += measure(row, by)
        at = upto
    return total


@click.command()
@click.option(
    "--by",
    type=click.Choice(tuple(MEASURES)),
    default="cost",
    show_default=True,
    help="The measure to rank by: tokens are chat plus embedding, cost is credits.",
)
@click.option("--models", is_flag=True, help="Rank Query Models (ensembles) instead.")
@click.option(
    "--count",
    "count_",
    type=int,
    default=10,
    show_default=True,
    help="How many to show (1 to 1000).",
)
@format_option(default="table", json="one object per row, every value exact")
@query_options()
@registry_options(reads_only=True)
@token_option
@click.pass_context
def top(
    ctx: click.Context,
    by: str,
    models: bool,
    count_: int,
    format_: str,
    me: bool,
    start: str | None,
    end: str | None,
    last: str | None,
    db: str | None,
    readonly: bool,
    timeout: float,
    token: str | None,
) -> None:
    """The Query LLMs (or --models: Query Models) that used most over a window, largest
    first: rank, readable id and mode, short name, requests, tokens, cost, and each one's
    share of the window's total. The window is the last 30 days unless --last, --from or
    --to say otherwise; only those with some usage in it are shown.

    Example:

    \b
      qllm top --by cost --last 7d
      qllm top --models --from 2026-11 --format csv > november.csv
    """
    if start is None and end is None and last is None:
        last = DEFAULT_LAST
    span = window(ctx, start, end, last)
    start, end = span.start or EPOCH, span.end or times.render(now_of(ctx))
    span = Window(start, end)
    registry = open_registry(ctx, db, readonly, timeout, create=False)
    asked: dict[str, Any] = {"me": me, "start": start, "end": end, "token": token}
    list_ = registry.list_models if models else registry.list
    get = registry.get_model if models else registry.get
    bodies = [get(name, metadata=True, **asked) for name in list_(count=count_, sort=by, **asked)]
    bodies = [body for body in bodies if measure(body, by)]
    total = window_total(registry, models, by, start, end, asked) if bodies else 0
    shown = rows(bodies, models=models, by=by, total=total)
    if format_ == "table":
        plural = "Query Models" if models else "Query LLMs"
        click.echo(f"{plural} by {by}, {span_text(span)}")
    show(shown, format_, models, by, span, not bodies)


__all__ = ["FORMATS", "format_option", "nothing_used", "rows", "say_empty", "show", "top"]
