"""Running ``qllm`` in-process (click's runner) the way the command-line tests do."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from click.testing import CliRunner, Result

from registry.cli import cli


def run(
    args: Sequence[str],
    *,
    input: str | bytes | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """Run ``qllm args``; whatever happens, no exception other than a clean exit escapes."""
    result = CliRunner().invoke(cli, list(args), input=input, env=env, prog_name="qllm")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"qllm {' '.join(args)} raised {result.exception!r}")
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    return result


def ok(args: Sequence[str], **kwargs: Any) -> Any:
    """Run a command that must succeed; its stdout parsed as JSON, numbers with a point exact."""
    result = run(args, **kwargs)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout, parse_float=Decimal)


def fails(args: Sequence[str], code: int, **kwargs: Any) -> list[str]:
    """Run a command that must fail with exit status ``code``; its stderr lines."""
    result = run(args, **kwargs)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines
    return lines
