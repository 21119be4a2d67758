"""``qllm``: the command line, a thin layer over `registry.Registry` (spec section 11).

JSON goes to stdout (tables and CSV where a command offers ``--format``). Errors go to
stderr, one line per problem, and set the exit status: 1 invalid input (a malformed
command line included), 3 not found, 4 authentication or authorization, 5 the database
cannot be used, 6 a copy could not be made or checked, 130 interrupted (Ctrl-C): a
transaction under way is rolled back, so an interrupted import writes nothing. The
commands live in one module per subject (``bodies``, ``ranking``, ``usage``, ``tokens``,
``completions``, ``admin``); this one assembles them under one group, and turns the
registry's errors into those lines and statuses in one place: in the command line's own
words, where a problem's path is one of the command's options (``/group_by`` is
``--group-by``, ``me=true`` is ``--me``).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from registry.cli import admin, bodies, completions, ranking, tokens, usage
from registry.cli.options import Group
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    CopyError,
    NotFoundError,
    RegistryError,
    ValidationError,
)

EXIT_INVALID, EXIT_NOT_FOUND, EXIT_AUTH, EXIT_STORAGE, EXIT_COPY = 1, 3, 4, 5, 6
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a process that Ctrl-C ended


# Words of the wire in the library's messages, and what the command line calls them: each
# applies when the command has the option (key: the option's parameter name).
_WIRE_WORDS = (
    ("me", re.compile(r"\bme=true needs a token\b"), "--me needs a token (QLLM_TOKEN or --token)"),
    ("bucket", re.compile(r"\bbucket=(\w+)"), r"--bucket \1"),
    ("end", re.compile(r"\bthan to\b"), "than --to"),
)


def _option_of(command: click.Command | None, path: str) -> str | None:
    """The option (or argument) of ``command`` that a problem's path names: ``/group_by``
    is ``--group-by``, ``/name`` the NAME argument. None for a path inside a body (a
    FILE's, or a nested one), which stays the body's path."""
    if command is None or not path.startswith("/") or "/" in path[1:]:
        return None
    field = path[1:]
    flag = "--" + field.replace("_", "-")
    for param in command.params:
        if isinstance(param.type, click.File):
            continue  # its paths are the file's
        if isinstance(param, click.Option) and flag in param.opts:
            return flag
        if isinstance(param, click.Argument) and param.name == field:
            return param.human_readable_name
    return None


def _words(command: click.Command | None, message: str) -> str:
    names = {param.name for param in command.params} if command is not None else set()
    for name, wire, ours in _WIRE_WORDS:
        if name in names:
            message = wire.sub(ours, message)
    return message


def in_our_words(command: click.Command | None, exc: ValidationError) -> list[str]:
    """The lines of ``exc`` for the command line: options named as typed."""
    return [
        f"{_option_of(command, path) or path or '/'}: {_words(command, message)}"
        for path, message in exc.errors
    ]


class _Group(Group):
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
            for line in in_our_words(ctx.meta.get(Group.LEAF), exc):
                click.echo(line, err=True)
            ctx.exit(EXIT_INVALID)
        except NotFoundError as exc:
            click.echo(str(exc), err=True)
            ctx.exit(EXIT_NOT_FOUND)
        except (AuthenticationError, AuthorizationError) as exc:
            click.echo(_words(ctx.meta.get(Group.LEAF), str(exc)), err=True)
            ctx.exit(EXIT_AUTH)
        except CopyError as exc:
            click.echo(str(exc), err=True)
            ctx.exit(EXIT_COPY)
        except RegistryError as exc:
            click.echo(str(exc), err=True)
            ctx.exit(EXIT_STORAGE)
        except KeyboardInterrupt:
            click.echo("interrupted: the write under way, if any, was rolled back", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="query-llm-registry", prog_name="qllm")
def cli() -> None:
    """Query LLM Registry: validate, name and store Query LLMs and Query Models, record
    their usage, and ask who spent what, in one SQLite file or PostgreSQL database.

    Every command has -h. Times (--from, --to) take RFC 3339, dates, today, yesterday,
    now, -7d, 2026-W47 or 2026-11, all in UTC.

    Example:

    \b
      qllm register examples/query-llms/*.json
      qllm top --by cost --last 7d
    """


for _command in (
    bodies.validate_command,
    bodies.register,
    *bodies.LLM_READS,
    ranking.top,
    bodies.model,
    usage.usage,
    completions.completion,
    tokens.token,
    admin.rebuild_rollups,
    admin.copy_command,
    admin.where,
    admin.serve,
    admin.schema,
):
    cli.add_command(_command)


def main() -> None:
    _sqlite_utils_without_numpy()
    cli(prog_name="qllm")


def _sqlite_utils_without_numpy() -> None:
    """Import sqlite-utils as if numpy were absent.

    sqlite-utils imports numpy whenever it is installed, only to map numpy values' column
    types in inserts of its own, which qllm never makes. numpy is installed for the
    training tables, and loading it costs every command about 11 MB and a tenth of a
    second. The command line owns its process and has no other thread yet, so it can
    hide numpy for that one import; a library process (another thread may import numpy
    at any moment) imports sqlite-utils as it is. A command that weighs a training
    table imports numpy afterwards, as usual."""
    if "numpy" in sys.modules or "sqlite_utils" in sys.modules:
        return
    modules: dict[str, Any] = sys.modules
    modules["numpy"] = None  # `import numpy` raises ImportError while this is set
    try:
        import sqlite_utils  # noqa: F401, PLC0415
    finally:
        del modules["numpy"]
