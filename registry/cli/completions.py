"""Completions and training tables: record, get, mark and unmark completions, and a Query
Model's weights for a prompt (``qllm model weights``)."""

from __future__ import annotations

from typing import IO, Any

import click

from registry import jsonin
from registry.cli.bodies import model
from registry.cli.options import (
    Group,
    by_line,
    emit,
    open_registry,
    read_json,
    registry_options,
    token_option,
)
from registry.errors import ValidationError
from registry.model import WeightsQuery


@click.group(cls=Group)
def completion() -> None:
    """Record completions of Query Models, read them, and mark the correct answer.

    Example:

    \b
      qllm completion mark call-17 B
    """


@completion.command(name="record")
@click.argument("file", type=click.File("rb"))
@registry_options()
@token_option
@click.pass_context
def record(
    ctx: click.Context, file: IO[bytes], db: str | None, timeout: float, token: str | None
) -> None:
    """Record one completion (a JSON object in FILE, or -) or JSON Lines of them, all or
    nothing: one bad line rejects all, and each problem names its line.

    Example:

    \b
      QLLM_TOKEN=... qllm completion record completions.jsonl
    """
    text = jsonin.text_of(file.read())
    registry = open_registry(ctx, db, False, timeout)
    single = _object(text)
    if single is not None:
        emit({"written": registry.record_completion_dict(single, token=token)})
        return
    lines: list[int] = []  # the line number of each completion
    items: list[Any] = []
    problems: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(jsonin.loads(line))
        except ValidationError as exc:
            problems.extend(
                (f"line {number}" + (f": {path}" if path else ""), message)
                for path, message in exc.errors
            )
            continue
        lines.append(number)
    if problems:
        raise ValidationError(problems)
    with by_line(lines.__getitem__):
        written = registry.record_completions(items, token=token)
    emit({"read": len(items), "written": written})


def _object(text: str) -> dict[str, Any] | None:
    """The one JSON object ``text`` holds, or None (JSON Lines, or something else)."""
    try:
        value = jsonin.loads(text)
    except ValidationError:
        return None
    return value if isinstance(value, dict) else None


@completion.command(name="get")
@click.argument("id_", metavar="ID")
@click.option("--embedding", is_flag=True, help="Include the stored embedding (float32 values).")
@registry_options(reads_only=True)
@token_option
@click.pass_context
def get(
    ctx: click.Context,
    id_: str,
    embedding: bool,
    db: str | None,
    readonly: bool,
    timeout: float,
    token: str | None,
) -> None:
    """Print a recorded completion; with --embedding, its embedding too.

    Example:

    \b
      qllm completion get call-17
    """
    registry = open_registry(ctx, db, readonly, timeout, create=False)
    emit(registry.get_completion(id_, embedding=embedding, token=token))


@completion.command(name="mark")
@click.argument("id_", metavar="ID")
@click.argument("answer")
@registry_options()
@token_option
@click.pass_context
def mark(
    ctx: click.Context,
    id_: str,
    answer: str,
    db: str | None,
    timeout: float,
    token: str | None,
) -> None:
    """Mark ANSWER as the correct one: the completion becomes a training row.

    Example:

    \b
      qllm completion mark call-17 B
    """
    open_registry(ctx, db, False, timeout).mark(id_, answer, token=token)
    emit({})


@completion.command(name="unmark")
@click.argument("id_", metavar="ID")
@registry_options()
@token_option
@click.pass_context
def unmark(ctx: click.Context, id_: str, db: str | None, timeout: float, token: str | None) -> None:
    """Remove the completion from its training table (the completion stays).

    Example:

    \b
      qllm completion unmark call-17
    """
    open_registry(ctx, db, False, timeout).unmark(id_, token=token)
    emit({})


@model.command(name="weights")
@click.argument("name")
@click.option(
    "--embedding",
    "source",
    type=click.File("rb"),
    required=True,
    help="The prompt's embedding: a JSON array, or an object with embedding and"
    " response_format_hash (- for stdin).",
)
@registry_options(reads_only=True)
@token_option
@click.pass_context
def weights(
    ctx: click.Context,
    name: str,
    source: IO[bytes],
    db: str | None,
    readonly: bool,
    timeout: float,
    token: str | None,
) -> None:
    """Each member's weight for a prompt, from the nearest rows of the training table.

    Example:

    \b
      qllm model weights NAME --embedding prompt.json
    """
    given = read_json(source)
    fmt: Any = ""
    if isinstance(given, dict):
        from registry.completions import body_fields  # noqa: PLC0415 - numpy only when used

        fields = body_fields(WeightsQuery, given)
        embedding, fmt = fields.get("embedding"), fields.get("response_format_hash")
    else:
        embedding = given
    registry = open_registry(ctx, db, readonly, timeout, create=False)
    emit(registry.weights(name, embedding, fmt, token=token))


__all__ = ["completion", "weights"]
