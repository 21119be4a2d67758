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
    if location is None:
        location = default_location()
    text = os.fspath(location)
    if isinstance(text, str) and not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            shown = text.encode("utf-8", "backslashreplace").decode()
            raise StorageError(
                f"cannot use {shown}: the location is not UTF-8 text; rename the file"
            ) from None
    return str(location) if is_postgres(location) else sqlite_path(location)


# --- PostgreSQL URLs: read strictly, described without their password -----------------------
#
# libpq reads a URL its own way (user and password end at the FIRST "@", the host at ":",
# "/", "?" or ","), and its errors quote what it read: a password with a raw "%" comes back
# whole ("invalid percent-encoded token"), a raw "@" or "/" in a password leaves a piece of
# it in the host or the database name, which connection errors quote. So a URL is read
# here first, and refused unless libpq can read it only one way (every "@" but the one
# ending the password, every "%" not followed by two hex digits, every parameter
# without exactly one "="...), with a reason that quotes nothing of it. A URL that passes
# is described from its parts, without the password; `redact` then takes the password out
# of any text that comes back from libpq all the same.

_HEX = frozenset("0123456789abcdefABCDEF")
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


class BadLocation(ValueError):
    """A PostgreSQL URL that libpq could read wrongly; the message quotes none of it."""


class PostgresUrl:
    """The parts of a PostgreSQL URL, as libpq reads them, raw (still percent-encoded)."""

    def __init__(self, location: str) -> None:
        if any(c.isspace() or not c.isprintable() for c in location):
            raise BadLocation("a space or a control character (write a space as %20)")
        scheme, _, rest = location.partition("://")
        self.scheme = scheme + "://"
        self.user: str | None = None
        self.password: str | None = None
        self.parameters: list[tuple[str, str]] = []
        head, question, query = rest.partition("?")
        hosts, slash, database = head.partition("/")
        if "@" in hosts:
            credentials, _, hosts = hosts.partition("@")
            user, colon, password = credentials.partition(":")
            self.user, self.password = user, password if colon else None
        if "@" in hosts or "@" in database or "@" in query:
            raise BadLocation(
                "an @ other than the one that ends the password (write @ as %40, and / as"
                " %2F, in a user name or password)"
            )
        self.hosts = hosts
        self.database = database if slash else None
        for part in (self.user, self.password, hosts, database, query):
            if part:
                _check_escapes(part)
        for host in hosts.split(","):
            _check_host(host)
        if question:
            for parameter in query.split("&"):
                if parameter.count("=") != 1:
                    raise BadLocation("each parameter after ? must be one key=value")
                key, _, value = parameter.partition("=")
                self.parameters.append((key, value))

    @property
    def secrets(self) -> set[str]:
        """The password(s) given, as written and percent-decoded."""
        given = [self.password or ""]
        given += [value for key, value in self.parameters if key in _SECRET_PARAMETERS]
        return {text for raw in given if raw for text in (raw, urllib.parse.unquote(raw))}

    def described(self) -> str:
        user = "" if self.user is None else self.user + "@"
        database = "" if self.database is None else "/" + self.database
        kept = [f"{k}={v}" for k, v in self.parameters if k not in _SECRET_PARAMETERS]
        query = "?" + "&".join(kept) if kept else ""
        return f"{self.scheme}{user}{self.hosts}{database}{query}"


def _check_escapes(part: str) -> None:
    at = part.find("%")
    while at != -1:
        code = part[at + 1 : at + 3]
        if len(code) != 2 or not set(code) <= _HEX:
            raise BadLocation("a % not followed by two hex digits (write % itself as %25)")
        if code == "00":
            raise BadLocation("%00 (a NUL character) in a part of it")
        at = part.find("%", at + 3)


def _check_host(host: str) -> None:
    name, port = host, ""
    if host.startswith("["):
        address, bracket, after = host[1:].partition("]")
        if not bracket or not address or not set(address) <= _HEX | set(":."):
            raise BadLocation("an IPv6 host must be written [address], with its brackets")
        if after and not after.startswith(":"):
            raise BadLocation("a host's port must follow its name, after a colon")
        port = after[1:]
    else:
        name, colon, port = host.partition(":")
        if "[" in name or "]" in name:
            raise BadLocation("a bracket outside an IPv6 host")
        if colon and not port:
            raise BadLocation("a host's port must be a number")
    if port and not (port.isascii() and port.isdigit()):
        raise BadLocation("a host's port must be a number")


def postgres_url(location: str) -> PostgresUrl:
    """``location`` read as libpq will read it; `BadLocation` if it could be read wrongly."""
    return PostgresUrl(location)


def describe(location: str | os.PathLike[str]) -> str:
    """``location`` fit for a message: a file's path, or a URL without its password (one
    that cannot be read for sure is not shown at all)."""
    if not is_postgres(location):
        return str(sqlite_path(location))
    try:
        return postgres_url(str(location)).described()
    except BadLocation:
        return "the PostgreSQL URL given"


def redact(text: str, location: str | os.PathLike[str]) -> str:
    """``text`` (a message that came back from libpq) without the password of ``location``."""
    if not is_postgres(location):
        return text
    try:
        secrets = postgres_url(str(location)).secrets
    except BadLocation:
        return text  # never passed to libpq: nothing of it can come back
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
