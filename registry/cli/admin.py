"""Running a registry: rebuild its rollups, copy it, say where it is, serve it, its schema."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import click

from registry.cli.options import emit, open_registry, registry_options
from registry.copy import BATCH, copy_registry
from registry.location import default_location, describe, location_of
from registry.registry import DEFAULT_TIMEOUT, Registry


@click.command(name="rebuild-rollups")
@registry_options()
@click.pass_context
def rebuild_rollups(ctx: click.Context, db: str | None, timeout: float) -> None:
    """Recompute the hourly and all-time rollups from the usage events."""
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
def where(db: str | None, timeout: float) -> None:
    """Print the registry file (or PostgreSQL URL, without its password) that commands use."""
    location = location_of(db) if db else default_location()
    emit({"db": str(location) if isinstance(location, Path) else describe(location)})


@click.command()
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


@click.command()
def schema() -> None:
    """Print the JSON Schema of a Query LLM body, generated from the validation rules."""
    from registry.schema import json_schema  # noqa: PLC0415 - only this command needs it

    emit(json_schema())
