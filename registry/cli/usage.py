"""Usage: record one event, import JSON Lines, and usage over time."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from registry.cli.options import emit, name_of, open_registry, registry_options, token_option
from registry.errors import NotFoundError, ValidationError
from registry.events import EventLines
from registry.render import text


@click.group()
def usage() -> None:
    """Record usage events, import them, and chart usage over time."""


@usage.command(name="record")
@click.argument("name")
@click.option("--at", help="RFC 3339 time of the request [default: now].")
@click.option("--request-id", help="Idempotency key: the same request is counted once.")
@click.option("--chat-prompt-tokens", type=int, default=0)
@click.option("--chat-completion-tokens", type=int, default=0)
@click.option("--chat-cost", default="0", help="Credits, an exact decimal.")
@click.option("--embedding-prompt-tokens", type=int, default=0)
@click.option("--embedding-completion-tokens", type=int, default=0)
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
    """Record one request served with the Query LLM NAME."""
    written = open_registry(ctx, db, False, timeout).record_usage(
        name,
        token=token,
        at=at,
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
@click.option("--from", "start", required=True, help="Start of the window (RFC 3339, inclusive).")
@click.option("--to", "end", help="End of the window (RFC 3339, exclusive) [default: now].")
@click.option(
    "--bucket",
    default="day",
    show_default=True,
    help="hour, day, week (from Monday) or month; aligned in UTC.",
)
@click.option(
    "--group-by",
    multiple=True,
    help="name, model, user_id or query_model; repeat it or separate keys by commas.",
)
@click.option("--name", "names", multiple=True, help="Only this Query LLM (repeatable).")
@click.option("--query-model", help="Only events recorded for this Query Model.")
@click.option("--me", is_flag=True, help="Only the caller's own usage (needs --token).")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "table", "chart", "html"]),
    default="json",
    show_default=True,
    help="html: the dashboard page of the window, to open in a browser.",
)
@click.option(
    "--metric",
    type=click.Choice(text.METRICS),
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
@registry_options(reads_only=True)
@token_option
@click.pass_context
def usage_series(
    ctx: click.Context,
    start: str,
    end: str | None,
    bucket: str,
    group_by: tuple[str, ...],
    names: tuple[str, ...],
    query_model: str | None,
    me: bool,
    format_: str,
    metric: str,
    colour: str,
    db: str | None,
    readonly: bool,
    timeout: float,
    token: str | None,
) -> None:
    """Usage per time bucket over --from/--to, grouped by --group-by: JSON, a table or a chart."""
    registry = open_registry(ctx, db, readonly, timeout, create=False)
    keys = [key.strip() for keys in group_by for key in keys.split(",") if key.strip()]
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
    else:
        from registry.render import labels  # noqa: PLC0415 - only the chart needs it

        # In a pipe this is $COLUMNS, else 80: the chart never wraps in a log.
        width = min(shutil.get_terminal_size((80, 24)).columns, 160)
        painted = text.use_colour(colour, sys.stdout.isatty(), os.environ)
        chart = text.chart(data, bucket, metric, width, labels.gather(registry, data), painted)
        # click strips colour codes when stdout is no terminal, unless told otherwise.
        click.echo(chart, color=painted)


def _on_lines(exc: ValidationError, lines: EventLines) -> ValidationError:
    """A batch's problems named by line (``line 3: /at``), not by the event's index."""
    if exc.events is None:
        return exc
    return type(exc)(
        (f"line {lines.line_of(index)}" + (f": {path}" if path else ""), message)
        for index, path, message in exc.events
    )


@usage.command(name="import")
@click.argument("file", type=click.File("rb"))
@registry_options()
@token_option
@click.pass_context
def usage_import(
    ctx: click.Context, file: IO[bytes], db: str | None, timeout: float, token: str | None
) -> None:
    """Record the events of a JSON Lines FILE (or -) all-or-nothing: one bad line rejects all."""
    registry = open_registry(ctx, db, False, timeout)
    lines = EventLines(file)
    events: Any = lines
    size = _file_size(file)
    if size and sys.stderr.isatty():
        events = _with_progress(lines, file, size)
    try:
        written = registry.record_usage_many(events, token=token)
    except NotFoundError as exc:
        raise exc.located(lambda index: f"line {lines.line_of(index)}") from None
    except ValidationError as exc:
        raise _on_lines(exc, lines) from None
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
