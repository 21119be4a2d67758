"""Usage: record one event, import JSON Lines, and usage over time."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from registry.cli.options import (
    TIMES_HELP,
    Group,
    Keys,
    by_line,
    emit,
    keys_of,
    name_of,
    open_registry,
    query_options,
    registry_options,
    resolve,
    time_option,
    token_option,
    window,
)
from registry.errors import ValidationError
from registry.events import EventLines
from registry.query import MEASURES
from registry.render import tables, text
from registry.series import BUCKETS, GROUPS


@click.group(cls=Group)
def usage() -> None:
    """Usage events: record one, import JSON Lines of them, and ask for usage over time
    (series: JSON, a table, CSV, a chart in the terminal, or the dashboard page).

    Example:

    \b
      QLLM_TOKEN=... qllm usage import examples/usage-alice.jsonl
      qllm usage series --last 7d --group-by user_id --format chart
    """


@usage.command(name="record")
@click.argument("name")
@time_option("--at", help=f"When the request was made [default: now]. {TIMES_HELP}")
@click.option(
    "--request-id",
    help="Idempotency key: recording the same request again counts it once (always give"
    " one when a retry is possible).",
)
@click.option(
    "--chat-prompt-tokens", type=int, default=0, help="Prompt tokens of the chat completion."
)
@click.option(
    "--chat-completion-tokens",
    type=int,
    default=0,
    help="Completion tokens of the chat completion.",
)
@click.option("--chat-cost", default="0", help="Credits, an exact decimal (0.0125).")
@click.option(
    "--embedding-prompt-tokens", type=int, default=0, help="Prompt tokens of the embedding."
)
@click.option(
    "--embedding-completion-tokens",
    type=int,
    default=0,
    help="Completion tokens of the embedding.",
)
@click.option("--embedding-cost", default="0", help="Credits, an exact decimal.")
@click.option("--query-model", help="The Query Model (ensemble) the request served.")
@registry_options()
@token_option
@click.pass_context
def usage_record(
    ctx: click.Context,
    name: str,
    at: str | None,
    request_id: str | None,
    chat_prompt_tokens: int,
    chat_completion_tokens: int,
    chat_cost: str,
    embedding_prompt_tokens: int,
    embedding_completion_tokens: int,
    embedding_cost: str,
    query_model: str | None,
    db: str | None,
    timeout: float,
    token: str | None,
) -> None:
    """Record one request served with the Query LLM NAME; prints how many events were
    written (0: its --request-id was recorded before).

    Example:

    \b
      qllm usage record NAME --request-id r1 --chat-prompt-tokens 900 --chat-cost 0.0125
    """
    when = resolve(ctx, "--at", at)
    written = open_registry(ctx, db, False, timeout).record_usage(
        name,
        token=token,
        at=when,
        request_id=request_id,
        chat_prompt_tokens=chat_prompt_tokens,
        chat_completion_tokens=chat_completion_tokens,
        chat_cost=chat_cost,
        embedding_prompt_tokens=embedding_prompt_tokens,
        embedding_completion_tokens=embedding_completion_tokens,
        embedding_cost=embedding_cost,
        query_model=query_model,
    )
    emit({"written": written})


@usage.command(name="series")
@click.option(
    "--bucket",
    type=click.Choice(BUCKETS),
    default="day",
    show_default=True,
    help="Width of a bucket, aligned in UTC (week: from Monday).",
)
@click.option(
    "--group-by",
    type=Keys(GROUPS),
    multiple=True,
    help="Group each bucket by these keys: repeat the option or separate them by commas.",
)
@click.option("--name", "names", multiple=True, help="Only this Query LLM (repeatable).")
@click.option("--query-model", help="Only events recorded for this Query Model.")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "table", "csv", "chart", "html"]),
    default="json",
    show_default=True,
    help="json: the data as the API answers it; table: aligned, every digit; csv: a row per"
    " bucket and group, every counter exact; chart: bars in the terminal; html: the"
    " dashboard page of the window, to open in a browser.",
)
@click.option(
    "--metric",
    type=click.Choice(tuple(MEASURES)),
    default="cost",
    show_default=True,
    help="What the chart's bars measure.",
)
@click.option(
    "--color",
    "colour",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the chart: auto colours a terminal unless NO_COLOR is set.",
)
@query_options()
@registry_options(reads_only=True)
@token_option
@click.pass_context
def usage_series(
    ctx: click.Context,
    bucket: str,
    group_by: tuple[str, ...],
    names: tuple[str, ...],
    query_model: str | None,
    format_: str,
    metric: str,
    colour: str,
    me: bool,
    start: str | None,
    end: str | None,
    last: str | None,
    db: str | None,
    readonly: bool,
    timeout: float,
    token: str | None,
) -> None:
    """Usage per time bucket over a window (--from and --to, or --last), grouped by
    --group-by: JSON, a table, CSV, a chart, or the dashboard page. --to defaults to now.

    Example:

    \b
      qllm usage series --from 2026-11 --group-by user_id --format table
      qllm usage series --last 7d --group-by name --format chart
    """
    span = window(ctx, start, end, last)
    if span.start is None:
        raise ValidationError.one("--from", "is required (or --last)")
    start, end = span.start, span.end
    registry = open_registry(ctx, db, readonly, timeout, create=False)
    keys = keys_of(group_by)
    data = registry.usage_series(
        start,
        end,
        bucket=bucket,
        group_by=keys,
        names=list(names) or None,
        query_model=query_model,
        me=me,
        token=token,
    )
    if format_ == "html":
        from registry.render import dashboard  # noqa: PLC0415 - only this format needs it
        from registry.render.page import Form  # noqa: PLC0415

        # The page of the same query the server answers at GET /?from=...: the query was
        # checked by the call above, so the page shows it (never the default window).
        typed = Form(
            start=start,
            end=end or "",
            bucket=bucket,
            group_by=tuple(keys),
            names=names,
            query_model=query_model or "",
            me="true" if me else "",
        )
        board = dashboard.gather(registry, typed, token)
        if board.errors:
            raise ValidationError(board.errors)
        click.echo(dashboard.render(board), nl=False)
    elif format_ == "json":
        emit({"data": data})
    elif format_ == "table":
        click.echo(text.table(data, bucket))
    elif format_ == "csv":
        from registry.render import dashboard, labels  # noqa: PLC0415 - only CSV needs them

        # The dashboard's CSV of the same series: keys in full, their labels, every counter.
        keys_shown = labels.keys_of(data)
        rows = dashboard.series_table(data, keys_shown, labels.gather(registry, data))
        click.echo(tables.csv_text(rows), nl=False)
    else:
        from registry.render import labels  # noqa: PLC0415 - only the chart needs it

        # In a pipe this is $COLUMNS, else 80: the chart never wraps in a log.
        width = min(shutil.get_terminal_size((80, 24)).columns, 160)
        painted = text.use_colour(colour, sys.stdout.isatty(), os.environ)
        chart = text.chart(data, bucket, metric, width, labels.gather(registry, data), painted)
        # click strips colour codes when stdout is no terminal, unless told otherwise.
        click.echo(chart, color=painted)


@usage.command(name="import")
@click.argument("file", type=click.File("rb"))
@registry_options()
@token_option
@click.pass_context
def usage_import(
    ctx: click.Context, file: IO[bytes], db: str | None, timeout: float, token: str | None
) -> None:
    """Record the events of a JSON Lines FILE (or -) all-or-nothing: one bad line rejects
    all, and every problem is named by its line. The events are the caller's: give the
    token (QLLM_TOKEN) or they are recorded for no user.

    Example:

    \b
      QLLM_TOKEN=... qllm usage import examples/usage-alice.jsonl
    """
    registry = open_registry(ctx, db, False, timeout)
    lines = EventLines(file)
    events: Any = lines
    size = _file_size(file)
    if size and sys.stderr.isatty():
        events = _with_progress(lines, file, size)
    with by_line(lines.line_of):
        written = registry.record_usage_many(events, token=token)
    click.echo(
        f"read {lines.read} events from {name_of(file)}: {written} new, "
        f"{lines.read - written} recorded before",
        err=True,
    )
    emit({"read": lines.read, "written": written})


def _file_size(file: IO[bytes]) -> int:
    try:
        return os.fstat(file.fileno()).st_size
    except (OSError, ValueError):
        return 0


def _with_progress(events: EventLines, file: IO[bytes], size: int) -> Iterator[Any]:
    with click.progressbar(length=size, label="importing", file=sys.stderr) as bar:
        done = 0
        for event in events:
            yield event
            if events.read % 1000 == 0:
                position = os.lseek(file.fileno(), 0, os.SEEK_CUR)
                bar.update(position - done)
                done = position
        bar.update(size - done)


@usage.command(name="claim")
@click.argument("file", type=click.File("rb"))
@registry_options()
@token_option
@click.pass_context
def usage_claim(
    ctx: click.Context, file: IO[bytes], db: str | None, timeout: float, token: str | None
) -> None:
    """Mend an import made without its token: the events of the JSON Lines FILE (or -)
    that were recorded without a token become the caller's (QLLM_TOKEN), all or nothing.
    Each line must be an event as it was imported, with its request_id; an event that
    another user recorded is never taken, and one already the caller's is skipped.

    Example:

    \b
      QLLM_TOKEN=... qllm usage claim examples/usage-alice.jsonl
    """
    registry = open_registry(ctx, db, False, timeout, create=False)
    lines = EventLines(file)
    with by_line(lines.line_of):
        claimed = registry.claim_usage(lines, token=token)
    click.echo(
        f"read {lines.read} events from {name_of(file)}: {claimed} claimed, "
        f"{lines.read - claimed} were the caller's already or repeated a request_id",
        err=True,
    )
    emit({"read": lines.read, "claimed": claimed})
