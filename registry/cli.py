"""``qllm``: the command line, a thin layer over `registry.Registry` (spec section 11).

JSON goes to stdout. Errors go to stderr, one line per problem, and set the
exit status: 1 invalid input (a malformed command line included), 3 not
found, 4 authentication or authorization, 5 the database cannot be used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from registry import times
from registry._convert import dump, dump_model, validate, validate_model
from registry.copy import BATCH, copy_registry
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    CopyError,
    NotFoundError,
    RegistryError,
    ValidationError,
)
from registry.events import EventLines
from registry.location import default_location, describe, location_of
from registry.query import SORTS
from registry.registry import DEFAULT_TIMEOUT, Registry
from registry.render import text

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INVALID, EXIT_NOT_FOUND, EXIT_AUTH, EXIT_STORAGE, EXIT_COPY = 1, 3, 4, 5, 6


class _Group(click.Group):
    """Runs a command and turns a `RegistryError` into stderr lines and an exit status."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            exc.exit_code = EXIT_INVALID  # type: ignore[misc] # click's own way to set it
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a malformed command line is invalid input (spec 11)
            exc.exit_code = EXIT_INVALID  # type: ignore[misc] # click's own way to set it
            raise
        except ValidationError as exc:
            for line in exc.lines():
                click.echo(line, err=True)
            ctx.exit(EXIT_INVALID)
        except NotFoundError as exc:
            click.echo(str(exc), err=True)
            ctx.exit(EXIT_NOT_FOUND)
        except (AuthenticationError, AuthorizationError) as exc:
            click.echo(str(exc), err=True)
            ctx.exit(EXIT_AUTH)
        except CopyError as exc:
            click.echo(str(exc), err=True)
            ctx.exit(EXIT_COPY)
        except RegistryError as exc:
            click.echo(str(exc), err=True)
            ctx.exit(EXIT_STORAGE)
        except UnicodeDecodeError as exc:  # a FILE or stdin that is not UTF-8 text
            click.echo(f"/: input is not UTF-8 text: {exc.reason}", err=True)
            ctx.exit(EXIT_INVALID)


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


def _emit(value: Any) -> None:
    click.echo(to_json(value))


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError.one("", f"{where}: not valid JSON: {exc}") from None
    except RecursionError:
        raise ValidationError.one("", f"{where}: JSON nested too deeply") from None


def _read_json(source: IO[str], label: str) -> Any:
    return _parse_json(source.read(), label)


def _open_registry(
    ctx: click.Context, db: str | None, readonly: bool, timeout: float, *, create: bool = True
) -> Registry:
    """The registry at ``db``; commands that only read pass ``create=False``: a missing
    file is then an error (exit 5), never a new empty registry answering 0."""
    registry = Registry(db, readonly=readonly, timeout=timeout, create=create)
    ctx.call_on_close(registry.close)
    return registry


def _registry_options(*, reads_only: bool = False) -> Callable[[F], F]:
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


_token_option = click.option(
    "--token", envvar="QLLM_TOKEN", help="Bearer token of the caller [env QLLM_TOKEN]."
)


def _query_options(fn: F) -> F:
    fn = click.option("--to", "end", help="Count events before this RFC 3339 time.")(fn)
    fn = click.option("--from", "start", help="Count events at or after this RFC 3339 time.")(fn)
    return click.option("--me", is_flag=True, help="Only the caller's own usage (needs --token).")(
        fn
    )


@click.group(cls=_Group)
@click.version_option(package_name="query-llm-registry")
def cli() -> None:
    """Query LLM Registry: validate, name, store and count Query LLMs in one SQLite file."""


@cli.command(name="validate")
@click.argument("file", type=click.File("r"))
def validate_command(file: IO[str]) -> None:
    """Validate and normalize a Query LLM body (FILE, or - for stdin); print it with its names."""
    _emit(dump(validate(_read_json(file, file.name))))


@cli.command()
@click.argument("file", type=click.File("r"))
@_registry_options()
@_token_option
@click.pass_context
def register(
    ctx: click.Context, file: IO[str], db: str | None, timeout: float, token: str | None
) -> None:
    """Register a Query LLM body (FILE, or - for stdin); registering it again changes nothing."""
    body = _read_json(file, file.name)
    _emit(dump(_open_registry(ctx, db, False, timeout).register(body, token=token)))


def _read_commands(group: click.Group, subject: str, get: str, list_: str, count: str) -> None:
    """``get``, ``list`` and ``count`` of one kind of registered thing on ``group``: the same
    options and file handling for Query LLMs and Query Models, one `Registry` method each
    (``get``, ``list_``, ``count`` name them). Read commands never create a file."""

    @group.command(
        name="get", help=f"Print a registered {subject}; with --metadata, its statistics."
    )
    @click.argument("name")
    @click.option("--metadata", is_flag=True, help="Include creation facts and usage totals.")
    @_query_options
    @_registry_options(reads_only=True)
    @_token_option
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
        registry = _open_registry(ctx, db, readonly, timeout, create=False)
        found = getattr(registry, get)(
            name, metadata=metadata, me=me, start=start, end=end, token=token
        )
        _emit(found)

    @group.command(
        name="list",
        help=f"List {subject} names: newest first, or by usage (largest first) over --from/--to.",
    )
    @click.option("--count", "count_", type=int, default=100, show_default=True, help="1 to 1000.")
    @click.option("--offset", type=int, default=0, show_default=True)
    @click.option("--sort", default="created", show_default=True, help=", ".join(SORTS) + ".")
    @_query_options
    @_registry_options(reads_only=True)
    @_token_option
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
        registry = _open_registry(ctx, db, readonly, timeout, create=False)
        names = getattr(registry, list_)(
            count=count_, offset=offset, sort=sort, me=me, start=start, end=end, token=token
        )
        _emit(names)

    @group.command(
        name="count", help=f"Print how many {subject}s are registered (with --me: the caller's)."
    )
    @click.option("--me", is_flag=True, help=f"Only the caller's {subject}s (needs --token).")
    @_registry_options(reads_only=True)
    @_token_option
    @click.pass_context
    def count_command(
        ctx: click.Context,
        me: bool,
        db: str | None,
        readonly: bool,
        timeout: float,
        token: str | None,
    ) -> None:
        registry = _open_registry(ctx, db, readonly, timeout, create=False)
        _emit(getattr(registry, count)(me=me, token=token))


_read_commands(cli, "Query LLM", "get", "list", "count")


@cli.group()
def usage() -> None:
    """Record usage events."""


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
@_registry_options()
@_token_option
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
    written = _open_registry(ctx, db, False, timeout).record_usage(
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
    _emit({"written": written})


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
@_registry_options(reads_only=True)
@_token_option
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
    db: str | None,
    readonly: bool,
    timeout: float,
    token: str | None,
) -> None:
    """Usage per time bucket over --from/--to, grouped by --group-by: JSON, a table or a chart."""
    registry = _open_registry(ctx, db, readonly, timeout)
    data = registry.usage_series(
        start,
        end,
        bucket=bucket,
        group_by=[key.strip() for keys in group_by for key in keys.split(",") if key.strip()],
        names=list(names) or None,
        query_model=query_model,
        me=me,
        token=token,
    )
    if format_ == "html":
        from registry.render import dashboard  # noqa: PLC0415 - only this format needs it

        # The dashboard shows everyone's usage, as the API does without a token.
        board = dashboard.gather(registry, start, end, bucket)
        if board.errors:
            raise ValidationError(board.errors)
        click.echo(dashboard.render(board), nl=False)
    elif format_ == "json":
        _emit({"data": data})
    elif format_ == "table":
        click.echo(text.table(data, bucket))
    else:
        # In a pipe this is $COLUMNS, else 80: the chart never wraps in a log.
        width = min(shutil.get_terminal_size((80, 24)).columns, 160)
        click.echo(text.chart(data, bucket, metric, width))


def _on_lines(exc: ValidationError, lines: EventLines) -> ValidationError:
    """A batch's problems named by line (``line 3: /at``), not by the event's index."""
    if exc.events is None:
        return exc
    return type(exc)(
        (f"line {lines.line_of(index)}" + (f": {path}" if path else ""), message)
        for index, path, message in exc.events
    )


@usage.command(name="import")
@click.argument("file", type=click.File("r"))
@_registry_options()
@_token_option
@click.pass_context
def usage_import(
    ctx: click.Context, file: IO[str], db: str | None, timeout: float, token: str | None
) -> None:
    """Record the events of a JSON Lines FILE (or -) all-or-nothing: one bad line rejects all."""
    registry = _open_registry(ctx, db, False, timeout)
    lines = EventLines(file)
    events: Any = lines
    size = _file_size(file)
    if size and sys.stderr.isatty():
        events = _with_progress(lines, file, size)
    try:
        written = registry.record_usage_many(events, token=token)
    except NotFoundError as exc:
        if exc.index is None:
            raise
        raise NotFoundError(f"{exc.name} (line {lines.line_of(exc.index)})") from None
    except ValidationError as exc:
        raise _on_lines(exc, lines) from None
    click.echo(
        f"read {lines.read} events from {file.name}: {written} new, "
        f"{lines.read - written} recorded before",
        err=True,
    )
    _emit({"read": lines.read, "written": written})


def _file_size(file: IO[str]) -> int:
    try:
        return os.fstat(file.fileno()).st_size
    except (OSError, ValueError):
        return 0


def _with_progress(events: EventLines, file: IO[str], size: int) -> Iterator[Any]:
    with click.progressbar(length=size, label="importing", file=sys.stderr) as bar:
        done = 0
        for event in events:
            yield event
            if events.read % 1000 == 0:
                position = os.lseek(file.fileno(), 0, os.SEEK_CUR)
                bar.update(position - done)
                done = position
        bar.update(size - done)


@cli.group()
def model() -> None:
    """Validate, register and query Query Models (ensembles of Query LLMs)."""


@model.command(name="validate")
@click.argument("file", type=click.File("r"))
def model_validate(file: IO[str]) -> None:
    """Validate and normalize a Query Model body (FILE, or -); print it with its names."""
    _emit(dump_model(validate_model(_read_json(file, file.name))))


@model.command(name="register")
@click.argument("file", type=click.File("r"))
@_registry_options()
@_token_option
@click.pass_context
def model_register(
    ctx: click.Context, file: IO[str], db: str | None, timeout: float, token: str | None
) -> None:
    """Register a Query Model body (FILE, or -) and its members, all or nothing."""
    body = _read_json(file, file.name)
    _emit(dump_model(_open_registry(ctx, db, False, timeout).register_model(body, token=token)))


_read_commands(model, "Query Model", "get_model", "list_models", "count_models")


@cli.group()
def token() -> None:
    """Create and revoke bearer tokens."""


@token.command(name="create")
@click.argument("user_id")
@_registry_options()
@click.pass_context
def token_create(ctx: click.Context, user_id: str, db: str | None, timeout: float) -> None:
    """Create a token for USER_ID. It is printed once: store it now."""
    secret = _open_registry(ctx, db, False, timeout).create_token(user_id)
    _emit({"user_id": user_id, "token": secret})


@token.command(name="revoke")
@click.argument("secret", metavar="TOKEN")
@_registry_options()
@click.pass_context
def token_revoke(ctx: click.Context, secret: str, db: str | None, timeout: float) -> None:
    """Revoke TOKEN: from now on it is refused everywhere."""
    _open_registry(ctx, db, False, timeout).revoke_token(secret)
    _emit({"revoked": True, "at": times.render(times.now())})


@cli.command(name="rebuild-rollups")
@_registry_options()
@click.pass_context
def rebuild_rollups(ctx: click.Context, db: str | None, timeout: float) -> None:
    """Recompute the hourly and all-time rollups from the usage events."""
    _emit(_open_registry(ctx, db, False, timeout).rebuild_rollups())


@cli.command(name="copy")
@click.argument("source", metavar="FROM", type=click.Path(dir_okay=False))
@click.argument("target", metavar="TO", type=click.Path(dir_okay=False))
@click.option(
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for another process's write lock.",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 1_000_000),
    default=BATCH,
    show_default=True,
    help="Usage events written per transaction.",
)
@click.option("--quiet", is_flag=True, help="No summary line on stderr.")
def copy_command(source: str, target: str, timeout: float, batch: int, quiet: bool) -> None:
    """Copy the registry FROM (a file, or a postgresql:// URL) to TO, then check the copy.

    TO must be new, or hold only an earlier (possibly interrupted) copy of FROM: running
    it again goes on where it stopped. Nothing must write to either meanwhile.
    """
    copied = copy_registry(source, target, timeout=timeout, batch=batch)
    if not quiet:
        click.echo(copied.summary(), err=True)
    _emit(
        {
            "users": copied.users,
            "tokens": copied.tokens,
            "query_llms": copied.query_llms,
            "query_models": copied.query_models,
            "events": copied.events,
            "new_events": copied.new_events,
            "seconds": round(copied.seconds, 3),
        }
    )


@cli.command()
@_registry_options()
def where(db: str | None, timeout: float) -> None:
    """Print the registry file (or PostgreSQL URL, without its password) that commands use."""
    location = location_of(db) if db else default_location()
    _emit({"db": str(location) if isinstance(location, Path) else describe(location)})


@cli.command()
@click.option(
    "--db",
    envvar="QLLM_DB",
    type=click.Path(dir_okay=False),
    help="Registry file [env QLLM_DB; default: in the user's data directory].",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback unless told otherwise).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes sharing the file.",
)
@click.option(
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for another process's write lock (then 503).",
)
def serve(db: str | None, host: str, port: int, workers: int, timeout: float) -> None:
    """Serve the HTTP API (needs the server extra); Ctrl-C or SIGTERM stops it cleanly."""
    try:
        import uvicorn  # noqa: PLC0415 - an optional extra

        from registry.http import create_app  # noqa: F401, PLC0415 - fails early, naming the extra
    except ImportError as exc:
        raise click.ClickException(
            f"{exc}; install it with: pip install 'query-llm-registry[server]'"
        ) from None
    location = location_of(db) if db else default_location()
    Registry(location, timeout=timeout).close()  # create and migrate once, before the workers
    # The workers find the registry in the environment: uvicorn imports the app factory anew.
    os.environ["QLLM_DB"] = str(location.resolve() if isinstance(location, Path) else location)
    os.environ["QLLM_TIMEOUT"] = str(timeout)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # handler it found: make that handler a clean exit, status 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit_cleanly)
    uvicorn.run(
        "registry.http.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # our own line per request leaves the query string out
        log_level="info",
        timeout_graceful_shutdown=30,
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a Query LLM body, generated from the validation rules."""
    from registry.schema import json_schema  # noqa: PLC0415 - only this command needs it

    _emit(json_schema())


def main() -> None:
    cli(prog_name="qllm")
