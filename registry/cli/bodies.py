"""Query LLM and Query Model bodies: validate, register, get, list and count."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import IO, Any

import click

from registry._convert import dump, dump_model, validate, validate_model
from registry.cli import ranking
from registry.cli.options import (
    Group,
    Window,
    emit,
    example,
    name_of,
    open_registry,
    query_options,
    read_json,
    registry_options,
    token_option,
    window,
)
from registry.errors import ValidationError
from registry.query import SORTS, measure
from registry.registry import Registry

FILES = click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.File("rb"))


def checked(files: Sequence[IO[bytes]], check: Callable[[Any], Any]) -> list[Any]:
    """Each FILE's body through ``check`` (`validate`...), in order; every problem of every
    file reported at once, each named by its file when there are several. Nothing is
    registered unless every file is valid."""
    several = len(files) > 1
    found, problems = [], []
    for file in files:
        label = name_of(file)
        try:
            found.append(check(read_json(file)))
        except ValidationError as exc:
            for path, message in exc.errors:
                if not several:
                    problems.append((path, message))
                elif path == "" and message.startswith(label + " "):  # the whole file's
                    problems.append((label, message[len(label) + 1 :]))
                else:
                    problems.append((f"{label}: {path or '/'}", message))
    if problems:
        raise ValidationError(problems)
    return found


def one_or_all(printed: list[Any]) -> Any:
    """One FILE: its body, as the spec prints it; several: a JSON array of them, in order."""
    return printed[0] if len(printed) == 1 else printed


@click.command(name="validate")
@FILES
def validate_command(files: tuple[IO[bytes], ...]) -> None:
    """Validate and normalize Query LLM bodies (FILE, or - for stdin); print each with its
    names. Several files: a JSON array, and every problem named by its file.

    Example:

    \b
      qllm validate examples/query-llms/gpt-4o-generate.json
    """
    emit(one_or_all([dump(llm) for llm in checked(files, validate)]))


@click.command()
@FILES
@registry_options()
@token_option
@click.pass_context
def register(
    ctx: click.Context,
    files: tuple[IO[bytes], ...],
    db: str | None,
    timeout: float,
    token: str | None,
) -> None:
    """Register Query LLM bodies (FILE..., or - for stdin); registering one again changes
    nothing. Every file is validated first: if any is invalid, none is registered. Prints
    the body (several: a JSON array, in order).

    Example:

    \b
      qllm register examples/query-llms/*.json
    """
    llms = checked(files, validate)
    registry = open_registry(ctx, db, False, timeout)
    emit(one_or_all([dump(registry.register(llm, token=token)) for llm in llms]))


# The three reads of one kind of registered thing, as `Registry` methods.
Get = Callable[..., dict[str, Any]]
List = Callable[..., list[str]]
Count = Callable[..., int]


def read_commands(
    subject: str, prefix: str, get: Get, list_: List, count: Count
) -> list[click.Command]:
    """``get``, ``list`` and ``count`` of one kind of registered thing: the same options and
    file handling for Query LLMs and Query Models, each command one call of the `Registry`
    method given (``Registry.get``...). Read commands never create a file."""
    models = subject == "Query Model"

    @click.command(
        name="get",
        help=f"Print a registered {subject}; with --metadata, when and by whom it was"
        " registered and its usage totals (the library's counters, and on the command line"
        " also tokens and cost: every token, and chat plus embedding cost)."
        + example(f"{prefix} get NAME --metadata --last 7d"),
    )
    @click.argument("name")
    @click.option("--metadata", is_flag=True, help="Include creation facts and usage totals.")
    @query_options(with_metadata=True)
    @registry_options(reads_only=True)
    @token_option
    @click.pass_context
    def get_command(
        ctx: click.Context,
        name: str,
        metadata: bool,
        me: bool,
        start: str | None,
        end: str | None,
        last: str | None,
        db: str | None,
        readonly: bool,
        timeout: float,
        token: str | None,
    ) -> None:
        # Without --metadata the window is ignored, as the library ignores it (spec 7).
        span = window(ctx, start, end, last) if metadata else Window(None, None)
        registry = open_registry(ctx, db, readonly, timeout, create=False)
        body = get(
            registry, name, metadata=metadata, me=me, start=span.start, end=span.end, token=token
        )
        if metadata:  # the two totals people ask for first (the HTTP answer has the spec's keys)
            body["tokens"] = measure(body, "tokens")
            body["cost"] = measure(body, "cost")
        emit(body)

    @click.command(
        name="list",
        help=f"List {subject} names: newest first, or by usage over the window (largest"
        " first). --format table or csv prints a row for each, with its readable id and its"
        " totals; a window without usage is said to be one."
        + example(f"{prefix} list --sort cost --from 2026-W47 --format table"),
    )
    @click.option(
        "--count",
        "count_",
        type=int,
        default=100,
        show_default=True,
        help="How many names (1 to 1000).",
    )
    @click.option(
        "--offset",
        type=int,
        default=0,
        show_default=True,
        help="How many to skip first (the next page: --offset 100).",
    )
    @click.option(
        "--sort",
        type=click.Choice(SORTS),
        default="created",
        show_default=True,
        help="created: newest first; the others: largest usage over the window first.",
    )
    @ranking.format_option(default="json", json="the names (a JSON array)")
    @query_options()
    @registry_options(reads_only=True)
    @token_option
    @click.pass_context
    def list_command(
        ctx: click.Context,
        count_: int,
        offset: int,
        sort: str,
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
        span = window(ctx, start, end, last)
        registry = open_registry(ctx, db, readonly, timeout, create=False)
        asked: dict[str, Any] = {"me": me, "start": span.start, "end": span.end, "token": token}
        names = list_(registry, count=count_, offset=offset, sort=sort, **asked)
        empty = sort != "created" and ranking.nothing_used(registry, models, sort, names, asked)
        if format_ == "json":
            if empty:
                ranking.say_empty(models, sort, span)
            emit(names)
            return
        bodies = [get(registry, n, metadata=True, **asked) for n in names]
        by = None if sort == "created" else sort
        shown = ranking.rows(bodies, models=models, by=by, first=offset + 1, created=True)
        ranking.show(shown, format_, models, by, span, empty)

    @click.command(
        name="count",
        help=f"Print how many {subject}s are registered (with --me: the caller's)."
        + example(f"{prefix} count --me"),
    )
    @click.option(
        "--me",
        is_flag=True,
        help=f"Only the caller's {subject}s: registered by or used by the caller (needs"
        " --token or QLLM_TOKEN).",
    )
    @registry_options(reads_only=True)
    @token_option
    @click.pass_context
    def count_command(
        ctx: click.Context,
        me: bool,
        db: str | None,
        readonly: bool,
        timeout: float,
        token: str | None,
    ) -> None:
        registry = open_registry(ctx, db, readonly, timeout, create=False)
        emit(count(registry, me=me, token=token))

    return [get_command, list_command, count_command]


LLM_READS = read_commands("Query LLM", "qllm", Registry.get, Registry.list, Registry.count)


@click.group(cls=Group)
def model() -> None:
    """Validate, register and query Query Models (ensembles of Query LLMs).

    Example:

    \b
      qllm model register examples/query-models/*.json
    """


@model.command(name="validate")
@FILES
def model_validate(files: tuple[IO[bytes], ...]) -> None:
    """Validate and normalize Query Model bodies (FILE, or -); print each with its names.
    Several files: a JSON array, and every problem named by its file.

    Example:

    \b
      qllm model validate examples/query-models/learned-select.json
    """
    emit(one_or_all([dump_model(m) for m in checked(files, validate_model)]))


@model.command(name="register")
@FILES
@registry_options()
@token_option
@click.pass_context
def model_register(
    ctx: click.Context,
    files: tuple[IO[bytes], ...],
    db: str | None,
    timeout: float,
    token: str | None,
) -> None:
    """Register Query Model bodies (FILE..., or -), each with its members in one
    transaction. Every file is validated first: if any is invalid, none is registered.

    Example:

    \b
      qllm model register examples/query-models/*.json
    """
    models = checked(files, validate_model)
    registry = open_registry(ctx, db, False, timeout)
    emit(one_or_all([dump_model(registry.register_model(m, token=token)) for m in models]))


for _command in read_commands(
    "Query Model", "qllm model", Registry.get_model, Registry.list_models, Registry.count_models
):
    model.add_command(_command)
