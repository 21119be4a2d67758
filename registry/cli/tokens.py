"""Bearer tokens: create and revoke."""

from __future__ import annotations

import sys

import click

from registry import times
from registry.cli.options import Group, emit, open_registry, registry_options

STDIN = "-"  # the usual name of standard input, for a value as for a FILE


@click.group(cls=Group)
def token() -> None:
    """Create and revoke bearer tokens (a token names its user on every call).

    Example:

    \b
      export QLLM_TOKEN="$(qllm token create alice | jq -r .token)"
    """


@token.command(name="create")
@click.argument("user_id")
@registry_options()
@click.pass_context
def token_create(ctx: click.Context, user_id: str, db: str | None, timeout: float) -> None:
    """Create a token for USER_ID. It is printed once (only its hash is kept): store it now,
    in QLLM_TOKEN rather than on command lines, which other users can read.

    Example:

    \b
      qllm token create alice
    """
    secret = open_registry(ctx, db, False, timeout).create_token(user_id)
    emit({"user_id": user_id, "token": secret})


@token.command(name="revoke")
@click.argument("given", metavar="[TOKEN]", required=False, envvar="QLLM_TOKEN")
@registry_options()
@click.pass_context
def token_revoke(ctx: click.Context, given: str | None, db: str | None, timeout: float) -> None:
    """Revoke TOKEN (- reads it from stdin; none: $QLLM_TOKEN): from now on it is refused
    everywhere. A token given on the command line is visible to other users in ps.

    Example:

    \b
      qllm token revoke          # revokes $QLLM_TOKEN
    """
    secret = sys.stdin.readline().strip() if given == STDIN else given
    if not secret:
        raise click.UsageError("give the token to revoke: TOKEN, - for stdin, or $QLLM_TOKEN")
    open_registry(ctx, db, False, timeout).revoke_token(secret)
    emit({"revoked": True, "at": times.render(times.now())})
