"""Running a registry: rebuild its rollups, copy it, say where it is, serve it, its schema."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from registry.cli.options import DB_HELP, emit, open_registry, registry_options
from registry.copy import BATCH, copy_registry
from registry.extras import missing
from registry.http.limits import REQUEST_TIMEOUT, SHUTDOWN_TIMEOUT
from registry.location import default_location, describe, location_of
from registry.registry import DEFAULT_TIMEOUT, Registry


@click.command(name="rebuild-rollups")
@registry_options()
@click.pass_context
def rebuild_rollups(ctx: click.Context, db: str | None, timeout: float) -> None:
    """Recompute the hourly and all-time rollups from the usage events (they are kept in
    step on every write: this is for a file edited by hand).

    Example:

    \b
      qllm rebuild-rollups --db registry.db
    """
    emit(open_registry(ctx, db, False, timeout).rebuild_rollups())


@click.command(name="copy")
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

    Example:

    \b
      qllm copy registry.db postgresql://qllm@db.example/qllm
    """
    copied = copy_registry(source, target, timeout=timeout, batch=batch)
    if not quiet:
        click.echo(copied.summary(), err=True)
    emit(
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


@click.command()
@registry_options()
@click.option("--json", "as_json", is_flag=True, help='Print {"db": ...} instead.')
def where(db: str | None, timeout: float, as_json: bool) -> None:
    """Print the registry file that commands use (--db, else QLLM_DB, else the default in
    the user's data directory), as a plain path a shell can use; a PostgreSQL URL is
    printed without its password.

    Example:

    \b
      sqlite3 "$(qllm where)" 'SELECT * FROM usage_daily LIMIT 5'
    """
    location = location_of(db) if db else default_location()
    shown = str(location) if isinstance(location, Path) else describe(location)
    if as_json:
        emit({"db": shown})
    else:
        click.echo(shown)


@click.command()
@click.option("--db", envvar="QLLM_DB", type=click.Path(dir_okay=False), help=DB_HELP)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback unless told otherwise).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (0: any free port, printed at start).",
)
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
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=REQUEST_TIMEOUT,
    show_default=True,
    help="Seconds a request's head may take to arrive, and its body before it must keep"
    " up 16 KiB/s (then 408).",
)
@click.option(
    "--shutdown-timeout",
    type=click.IntRange(min=1),
    default=SHUTDOWN_TIMEOUT,
    show_default=True,
    help="Seconds a stop (SIGTERM, Ctrl-C) waits for the requests under way; then 503.",
)
def serve(
    db: str | None,
    host: str,
    port: int,
    workers: int,
    timeout: float,
    request_timeout: float,
    shutdown_timeout: int,
) -> None:
    """Serve the HTTP API and the dashboard (needs the server extra); Ctrl-C or SIGTERM
    stops it cleanly, answering the requests under way.

    Example:

    \b
      qllm serve --port 8000     # then open http://127.0.0.1:8000/
    """
    try:
        from registry.http import server  # noqa: PLC0415 - an optional extra
    except ImportError as exc:
        raise click.ClickException(missing("the HTTP server", exc.name, "server")) from None
    location = location_of(db) if db else default_location()
    sock = server.bind(host, port)  # a port in use is said before anything else is done
    try:
        Registry(location, timeout=timeout).close()  # create and migrate once, before workers
    except BaseException:
        sock.close()
        raise
    # The workers find their settings in the environment: uvicorn imports the app anew.
    os.environ["QLLM_DB"] = str(location.resolve() if isinstance(location, Path) else location)
    os.environ["QLLM_TIMEOUT"] = str(timeout)
    os.environ["QLLM_REQUEST_TIMEOUT"] = str(request_timeout)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # handler it found: make that handler a clean exit, status 0.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit_cleanly)
    server.serve(sock, workers, shutdown_timeout)


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


@click.command()
def schema() -> None:
    """Print the JSON Schema of a Query LLM body, generated from the validation rules.

    Example:

    \b
      qllm schema > query-llm.schema.json
    """
    from registry.schema import json_schema  # noqa: PLC0415 - only this command needs it

    emit(json_schema())
