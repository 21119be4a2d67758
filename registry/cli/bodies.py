"""Query LLM and Query Model bodies: validate, register, get, list and count."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

import click

from registry._convert import dump, dump_model, validate, validate_model
from registry.cli.options import (
    emit,
    open_registry,
    query_options,
    read_json,
    registry_options,
    token_option,
)
from registry.query import SORTS
from registry.registry import Registry


@click.command(name="validate")
@click.argument("file", type=click.File("rb"))
def validate_command(file: IO[bytes]) -> None:
    """Validate and normalize a Query LLM body (FILE, or - for stdin); print it with its names."""
    emit(dump(validate(read_json(file))))


@click.command()
@click.argument("file", type=click.File("rb"))
@registry_options()
@token_option
@click.pass_context
def register(
    ctx: click.Context, file: IO[bytes], db: str | None, timeout: float, token: str | None
) -> None:
    """Register a Query LLM body (FILE, or - for stdin); registering it again changes nothing."""
    body = read_json(file)
    emit(dump(open_registry(ctx, db, False, timeout).register(body, token=token)))


# The three reads of one kind of registered thing, as `Registry` methods.
Get = Callable[..., dict[str, Any]]
List = Callable[..., list[str]]
Count = Callable[..., int]


def read_commands(subject: str, get: Get, list_: List, count: Count) -> list[click.Command]:
    """``get``, ``list`` and ``count`` of one kind of registered thing: the same options and
    file handling for Query LLMs and Query Models, each command one call of the `Registry`
    method given (``Registry.get``...). Read commands never create a file."""

    @click.command(
        name="get", help=f"Print a registered {subject}; with --metadata, its statistics."
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
        db: str | None,
        readonly: bool,
        timeout: float,
        token: str | None,
    ) -> None:
        registry = open_registry(ctx, db, readonly, timeout, create=False)
        emit(get(registry, name, metadata=metadata, me=me, start=start, end=end, token=token))

    @click.command(
        name="list",
        help=f"List {subject} names: newest first, or by usage (largest first) over --from/--to.",
    )
    @click.option("--count", "count_", type=int, default=100, show_default=True, help="1 to 1000.")
    @click.option("--offset", type=int, default=0, show_default=True)
    @click.option("--sort", default="created", show_default=True, help=", ".join(SORTS) + ".")
    @query_options()
    @registry_options(reads_only=True)
    @token_option
    @click.pass_context
    def list_command(
        ctx: click.Context,
        count_: int,
        offset: int,
        sort: str,
        me: bool,
        start: str | None,
        end: str | None,
        db: str | None,
        readonly: bool,
        timeout: float,
        token: str | None,
    ) -> None:
        registry = open_registry(ctx, db, readonly, timeout, create=False)
        names = list_(
            registry,
            count=count_,
            offset=offset,
            sort=sort,
            me=me,
            start=start,
            end=end,
            token=token,
        )
        emit(names)

    @click.command(
        name="count", help=f"Print how many {subject}s are registered (with --me: the caller's)."
    )
    @click.option("--me", is_flag=True, help=f"Only the caller's {subject}s (needs --token).")
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


LLM_READS = read_commands("Query LLM", Registry.get, Registry.list, Registry.count)


@click.group()
def model() -> None:
    """Validate, register and query Query Models (ensembles of Query LLMs)."""


@model.command(name="validate")
@click.argument("file", type=click.File("rb"))
def model_validate(file: IO[bytes]) -> None:
    """Validate and normalize a Query Model body (FILE, or -); print it with its names."""
    emit(dump_model(validate_model(read_json(file))))


@model.command(name="register")
@click.argument("file", type=click.File("rb"))
@registry_options()
@token_option
@click.pass_context
def model_register(
    ctx: click.Context, file: IO[bytes], db: str | None, timeout: float, token: str | None
) -> None:
    """Register a Query Model body (FILE, or -) and its members, all or nothing."""
    body = read_json(file)
    emit(dump_model(open_registry(ctx, db, False, timeout).register_model(body, token=token)))


for _command in read_commands(
    "Query Model", Registry.get_model, Registry.list_models, Registry.count_models
):
    model.add_command(_command)
