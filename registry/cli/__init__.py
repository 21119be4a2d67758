"""``qllm``: the command line, a thin layer over `registry.Registry` (spec section 11).

JSON goes to stdout. Errors go to stderr, one line per problem, and set the
exit status: 1 invalid input (a malformed command line included), 3 not
found, 4 authentication or authorization, 5 the database cannot be used, 6 a
copy could not be made or checked, 130 interrupted (Ctrl-C): a transaction
under way is rolled back, so an interrupted import writes nothing. The
commands live in one module per subject (``bodies``, ``usage``, ``tokens``,
``admin``); this one assembles them under one group, and turns the
registry's errors into those lines and statuses in one place.
"""

from __future__ import annotations

from typing import Any

import click

from registry.cli import admin, bodies, completions, tokens, usage
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
        except KeyboardInterrupt:
            click.echo("interrupted: the write under way, if any, was rolled back", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group)
@click.version_option(package_name="query-llm-registry")
def cli() -> None:
    """Query LLM Registry: validate, name, store and count Query LLMs in one SQLite file."""


for _command in (
    bodies.validate_command,
    bodies.register,
    *bodies.LLM_READS,
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
    cli(prog_name="qllm")
