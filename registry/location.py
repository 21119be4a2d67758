"""Where a registry is: a SQLite file (the embedded default) or a PostgreSQL database.

A location is a path, ``sqlite:PATH``, or a ``postgresql://`` (``postgres://``)
URL. Without one, ``$QLLM_DB`` is used, else ``$XDG_DATA_HOME/qllm/registry.db``
(``~/.local/share/qllm/registry.db``). `describe` writes a location for
messages: a PostgreSQL URL never with its password.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from registry.errors import StorageError

SQLITE_SCHEME = "sqlite:"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(location: object) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a file."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def sqlite_path(location: str | os.PathLike[str]) -> Path:
    """The file of a SQLite location: a path, or ``sqlite:PATH`` (``sqlite:///abs`` too)."""
    text = os.fspath(location)
    if isinstance(text, str) and text.startswith(SQLITE_SCHEME):
        rest = text[len(SQLITE_SCHEME) :]
        if rest.startswith("//"):  # sqlite:///abs/path and sqlite://rel as in URLs
            rest = rest[2:]
        return Path(rest)
    return Path(text)


def default_path() -> Path:
    """``$QLLM_DB``, else ``$XDG_DATA_HOME/qllm/registry.db``, else ``~/.local/share/qllm/``."""
    if os.environ.get("QLLM_DB"):
        return Path(os.environ["QLLM_DB"])
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "qllm" / "registry.db"


def default_location() -> str | Path:
    """`default_path`, or the PostgreSQL URL that ``$QLLM_DB`` holds (kept as text: a
    `Path` would fold its ``//``)."""
    if is_postgres(os.environ.get("QLLM_DB")):
        return os.environ["QLLM_DB"]
    return default_path()


def location_of(location: str | os.PathLike[str] | None) -> str | Path:
    """A location as given (None: the default): a PostgreSQL URL stays text, anything else
    is a file's `Path`. A location that is not Unicode text (a file name of bytes that are
    not UTF-8, which Python holds as lone surrogates) is refused: SQLite and PostgreSQL
    take UTF-8 names, and no message could show it."""
    text = os.fspath(default_location() if location is None else location)
    if isinstance(text, str) and not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            shown = text.encode("utf-8", "backslashreplace").decode()
            raise StorageError(
                f"cannot use {shown}: the location is not UTF-8 text; rename the file"
            ) from None
    if location is None:
        return default_location()
    return str(location) if is_postgres(location) else sqlite_path(location)


def describe(location: str | os.PathLike[str]) -> str:
    """``location`` fit for a message: a file's path, or a URL without its password."""
    if not is_postgres(location):
        return str(sqlite_path(location))
    try:
        parts = urllib.parse.urlsplit(str(location))
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            netloc = user.partition(":")[0] + "@" + host
        query = urllib.parse.urlencode(
            [
                (key, value)
                for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
                if key != "password"
            ]
        )
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:  # not a URL we can take apart: say nothing of it
        return "the PostgreSQL database"
