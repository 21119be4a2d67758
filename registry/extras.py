"""The optional parts of qllm (extras) and how to install one, said the same way by every
message that needs one. qllm is installed from a clone of its repository (it is not
published), so the command names the clone (``.``), for pip and for a pipx install."""

from __future__ import annotations

# extra -> what it brings (the modules a message may find missing)
EXTRAS = {
    "server": "starlette and uvicorn",
    "client": "httpx",
    "postgres": "psycopg and psycopg_pool",
}


def install(extra: str) -> str:
    """The commands that add ``extra`` to an installed qllm, run in a clone of it."""
    return (
        f"in a clone of the qllm repository, pip install '.[{extra}]' "
        f"(installed with pipx: pipx install --force '.[{extra}]')"
    )


def missing(what: str, module: str | None, extra: str) -> str:
    """``what`` cannot work without ``module``, which the ``extra`` extra brings."""
    return f"{what} needs {module or EXTRAS[extra]} (the {extra} extra): {install(extra)}"
