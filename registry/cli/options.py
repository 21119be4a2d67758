"""What every ``qllm`` command shares: the registry options, reading input, writing output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import IO, Any, TypeVar

import click

from registry import jsonin
from registry.errors import ValidationError
from registry.registry import DEFAULT_TIMEOUT, Registry

F = TypeVar("F", bound=Callable[..., Any])


def to_json(value: Any, indent: str = "", *, ascii_only: bool = False) -> str:
    """JSON text, indented by two spaces; a `Decimal` is written exactly, as a number.
    ``ascii_only``: every other character as a ``\\u`` escape."""
    inner = indent + "  "
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (
            f"{inner}{json.dumps(k, ensure_ascii=ascii_only)}: "
            + to_json(v, inner, ascii_only=ascii_only)
            for k, v in value.items()
        )
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        lines = (inner + to_json(v, inner, ascii_only=ascii_only) for v in value)
        return "[\n" + ",\n".join(lines) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def emit(value: Any) -> None:
    """JSON on stdout. When stdout does not take UTF-8 (a Latin-1 or C locale), every
    character beyond ASCII is escaped: the same JSON, which any reader (``qllm register
    -`` in a pipe too) reads back as the same text, and no UnicodeEncodeError."""
    encoding = getattr(sys.stdout, "encoding", None) or ""
    utf8 = encoding.lower().replace("-", "").replace("_", "") == "utf8"
    click.echo(to_json(value, ascii_only=not utf8))


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


def query_options(*, with_metadata: bool = False) -> Callable[[F], F]:
    """``--me``, ``--from``, ``--to``; ``with_metadata``: for ``get``, where they count
    only with ``--metadata`` (without it, the body alone is printed: spec 7)."""
    only = " Ignored without --metadata." if with_metadata else ""

    def decorate(fn: F) -> F:
        fn = click.option("--to", "end", help=f"Count events before this RFC 3339 time.{only}")(fn)
        fn = click.option(
            "--from", "start", help=f"Count events at or after this RFC 3339 time.{only}"
        )(fn)
        return click.option(
            "--me", is_flag=True, help=f"Only the caller's own usage (needs --token).{only}"
        )(fn)

    return decorate
