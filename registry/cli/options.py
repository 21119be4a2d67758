"""What every ``qllm`` command shares: the registry options, reading input, writing output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import IO, Any, TypeVar

import click
from attrs import frozen

from registry import jsonin, times, when
from registry.errors import NotFoundError, ValidationError
from registry.registry import DEFAULT_TIMEOUT, Registry

F = TypeVar("F", bound=Callable[..., Any])


class Group(click.Group):
    """A group of commands that notes which command a line resolved to (in ``meta``,
    which every context of a run shares), so that the one error table can name a
    problem by that command's own options."""

    LEAF = "qllm.command"

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[self.LEAF] = command
        return name, command, rest


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


DB_HELP = (
    "Registry file, or a postgresql:// URL [env QLLM_DB; default: a file in the user's"
    " data directory, see qllm where]."
)
db_option = click.option("--db", envvar="QLLM_DB", type=click.Path(dir_okay=False), help=DB_HELP)
timeout_option = click.option(
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for another process's write lock.",
)


def registry_options(*, reads_only: bool = False) -> Callable[[F], F]:
    """``--db``, ``--timeout`` (and ``--readonly`` for commands that only read)."""

    def decorate(fn: F) -> F:
        fn = timeout_option(fn)
        if reads_only:
            fn = click.option(
                "--readonly", is_flag=True, help="Open the file read-only (SQLite mode=ro)."
            )(fn)
        return db_option(fn)

    return decorate


token_option = click.option(
    "--token",
    envvar="QLLM_TOKEN",
    help="Bearer token of the caller [env QLLM_TOKEN: keep it there, since other users of"
    " the machine can read a command line].",
)


# --- times: the command line's grammar (`registry.when`), resolved before the library ---


def now_of(ctx: click.Context) -> int:
    """The present of this command, the same for all its times (``--from -7d --to now``)."""
    meta = ctx.find_root().meta
    if "qllm.now" not in meta:
        meta["qllm.now"] = times.now()
    return int(meta["qllm.now"])


def resolve(ctx: click.Context, option: str, text: str | None) -> str | None:
    """An option's time as RFC 3339 (`registry.when.resolve`); refused at the option."""
    if text is None:
        return None
    try:
        return when.resolve(text, now_of(ctx))
    except when.WhenError as exc:
        raise ValidationError.one(option, str(exc)) from None


def time_option(*decls: str, help: str, **kwargs: Any) -> Callable[[F], F]:
    """An option taking a time in the command line's grammar (`resolve` it)."""
    return click.option(*decls, metavar="TIME", help=help, **kwargs)


TIMES_HELP = f"TIME is {when.FORMS}; all in UTC."
LAST_HELP = "The window from this long ago until now: 7d, 24h, 2w (instead of --from/--to)."


def window(ctx: click.Context, start: str | None, end: str | None, last: str | None) -> Window:
    """``--from``/``--to`` resolved to RFC 3339 (every problem of both at once), or the
    window ``--last`` names (not with them)."""
    if last is not None:
        if start is not None or end is not None:
            raise ValidationError.one("--last", "cannot be used with --from or --to")
        try:
            return Window(*when.last(last, now_of(ctx)))
        except when.WhenError as exc:
            raise ValidationError.one("--last", str(exc)) from None
    problems: list[tuple[str, str]] = []
    bounds: list[str | None] = []
    for option, text in (("--from", start), ("--to", end)):
        try:
            bounds.append(resolve(ctx, option, text))
        except ValidationError as exc:
            problems.extend(exc.errors)
    if problems:
        raise ValidationError(problems)
    return Window(*bounds)


@frozen
class Window:
    """A window as the command line resolved it: RFC 3339 text, None where open."""

    start: str | None
    end: str | None


def query_options(*, with_metadata: bool = False, last: bool = True) -> Callable[[F], F]:
    """``--me``, ``--from``, ``--to`` and ``--last``; ``with_metadata``: for ``get``, where
    they count only with ``--metadata`` (without it, the body alone is printed: spec 7)."""
    only = " Ignored without --metadata." if with_metadata else ""

    def decorate(fn: F) -> F:
        if last:
            fn = click.option("--last", metavar="DURATION", help=LAST_HELP + only)(fn)
        fn = time_option("--to", "end", help=f"Count events before this TIME.{only}")(fn)
        fn = time_option(
            "--from", "start", help=f"Count events at or after this TIME. {TIMES_HELP}{only}"
        )(fn)
        return click.option(
            "--me",
            is_flag=True,
            help=f"Only the caller's own usage (needs --token or QLLM_TOKEN).{only}",
        )(fn)

    return decorate


class Keys(click.Choice[str]):
    """Choices given by repeating the option or separated by commas (``name,user_id``);
    shell completion offers each one."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        keys = [key.strip() for key in str(value).split(",") if key.strip()]
        return ",".join(str(super(Keys, self).convert(key, param, ctx)) for key in keys)


def keys_of(given: tuple[str, ...]) -> list[str]:
    """The keys of a `Keys` option given several times, in order."""
    return [key for keys in given for key in keys.split(",") if key]


def example(*lines: str) -> str:
    """The end of a command's help: its example, kept as written (click's ``\\b``)."""
    return "\n\nExample:\n\n\b\n" + "\n".join("  " + line for line in lines)


@contextmanager
def by_line(line_of: Callable[[int], int]) -> Iterator[None]:
    """A batch read from a file has its errors named by line (``line 3: /at``), not by
    the item's index: an unknown name's, and every problem of a `ValidationError`."""
    try:
        yield
    except NotFoundError as exc:
        raise exc.located(lambda index: f"line {line_of(index)}") from None
    except ValidationError as exc:
        if exc.events is None:
            raise
        raise type(exc)(
            (f"line {line_of(index)}" + (f": {path}" if path else ""), message)
            for index, path, message in exc.events
        ) from None
