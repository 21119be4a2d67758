"""What every ``qllm`` command shares: the registry options, reading input, writing output."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import IO, Any, TypeVar

import click

from registry import jsonin
from registry.errors import ValidationError
from registry.registry import DEFAULT_TIMEOUT, Registry

F = TypeVar("F", bound=Callable[..., Any])


def to_json(value: Any, indent: str = "") -> str:
    """JSON text, indented by two spaces; a `Decimal` is written exactly, as a number."""
    inner = indent + "  "
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (f"{inner}{json.dumps(k)}: {to_json(v, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + to_json(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)


def emit(value: Any) -> None:
    click.echo(to_json(value))


def name_of(file: IO[bytes]) -> str:
    """A FILE argument's name for messages (standard input: ``<stdin>``)."""
    name = getattr(file, "name", "<stdin>")
    return name if isinstance(name, str) else "<stdin>"


def read_json(source: IO[bytes]) -> Any:
    """The JSON of a FILE (or stdin): its bytes, read by the one reader of JSON input
    (`registry.jsonin`), so UTF-8 whatever the locale. A problem of the whole text
    names the file; the others have their path."""
    try:
        return jsonin.loads(source.read())
    except ValidationError as exc:
        label = name_of(source)
        raise ValidationError(
            (path, message if path else f"{label} {message}") for path, message in exc.errors
        ) from None


def open_registry(
    ctx: click.Context, db: str | None, readonly: bool, timeout: float, *, create: bool = True
) -> Registry:
    """The registry at ``db``; commands that only read pass ``create=False``: a missing
    file is then an error (exit 5), never a new empty registry answering 0."""
    registry = Registry(db, readonly=readonly, timeout=timeout, create=create)
    ctx.call_on_close(registry.close)
    return registry


def registry_options(*, reads_only: bool = False) -> Callable[[F], F]:
    """``--db``, ``--timeout`` (and ``--readonly`` for commands that only read)."""

    def decorate(fn: F) -> F:
        fn = click.option(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            show_default=True,
            help="Seconds to wait for another process's write lock.",
        )(fn)
        if reads_only:
            fn = click.option(
                "--readonly", is_flag=True, help="Open the file read-only (SQLite mode=ro)."
            )(fn)
        return click.option(
            "--db",
            envvar="QLLM_DB",
            type=click.Path(dir_okay=False),
            help="Registry file, or a postgresql:// URL [env QLLM_DB; default: a file in the"
            " user's data directory].",
        )(fn)

    return decorate


token_option = click.option(
    "--token", envvar="QLLM_TOKEN", help="Bearer token of the caller [env QLLM_TOKEN]."
)


def query_options(fn: F) -> F:
    fn = click.option("--to", "end", help="Count events before this RFC 3339 time.")(fn)
    fn = click.option("--from", "start", help="Count events at or after this RFC 3339 time.")(fn)
    return click.option("--me", is_flag=True, help="Only the caller's own usage (needs --token).")(
        fn
    )
