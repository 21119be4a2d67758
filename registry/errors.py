"""Every error a caller can cause is one of these; the CLI maps them to exit codes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Self


class RegistryError(Exception):
    """Base class of every error the registry raises on purpose."""


class ValidationError(RegistryError):
    """Input broke a rule; ``errors`` lists every problem as ``(path, message)``.

    Problems found in a batch of usage events also say which event each is in:
    ``events`` holds ``(index, path inside the event, message)``, and ``errors``
    puts the index in front of each path (``/3/chat_cost``). A surface that
    numbers the events otherwise (JSON Lines, by line) reads ``events``, or
    rewrites the paths with `located`.
    """

    def __init__(
        self,
        errors: Iterable[tuple[str, str]] = (),
        *,
        events: Iterable[tuple[int, str, str]] | None = None,
    ) -> None:
        self.events: list[tuple[int, str, str]] | None = None
        if events is not None:
            self.events = list(events)
            errors = [(f"/{index}{path}", message) for index, path, message in self.events]
        self.errors: list[tuple[str, str]] = list(errors)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One ``path: message`` line per problem; the whole input's path ``""`` shows as ``/``."""
        return [f"{path or '/'}: {message}" for path, message in self.errors]

    @classmethod
    def one(cls, path: str, message: str) -> Self:
        return cls([(path, message)])

    def of_event(self, index: int) -> Self:
        """These problems (of one event) as those of the event at ``index`` of a batch."""
        return type(self)(events=[(index, path, message) for path, message in self.errors])

    def located(self, where: Callable[[int], str]) -> Self:
        """The same problems, each event's index written by ``where`` (``/17`` for line 17
        of a JSON Lines body); unchanged when they are not a batch's."""
        if self.events is None:
            return self
        return type(self)((where(index) + path, message) for index, path, message in self.events)


class ConflictError(ValidationError):
    """A ``request_id`` was recorded before with different content."""


class NotFoundError(RegistryError):
    """Nothing is registered under that name; ``index`` is the event's, in a batch;
    ``kind`` says what was looked for (a Query LLM, or a Query Model)."""

    def __init__(
        self, name: str, index: int | None = None, kind: str = "Query LLM", *, where: str = ""
    ) -> None:
        self.name = name
        self.index = index
        self.kind = kind
        if where:  # a surface's own words for the event's place: "line 3: /name: ..."
            message = f"{where}: /name: no {kind} named {name}"
        else:
            message = ("" if index is None else f"event {index}: ") + f"no {kind} named {name}"
        super().__init__(message)

    def located(self, where: Callable[[int], str]) -> NotFoundError:
        """The same, its event's place written by ``where`` (``line 17``), as the other
        problems of a batch are (`ValidationError.located`); unchanged outside a batch."""
        if self.index is None:
            return self
        return NotFoundError(self.name, self.index, self.kind, where=where(self.index))


class AuthenticationError(RegistryError):
    """The token given is unknown or revoked."""


class AuthorizationError(RegistryError):
    """The call needs a token (``me``) and none was given."""


class SchemaTooNewError(RegistryError):
    """The file was migrated by a newer version of the registry; it is left untouched."""

    def __init__(self, path: str, unknown: Sequence[str]) -> None:
        self.unknown = list(unknown)
        super().__init__(
            f"{path} was written by a newer qllm (unknown migrations: "
            f"{', '.join(self.unknown)}); upgrade qllm to use it"
        )


class StorageError(RegistryError):
    """The database cannot be used: locked too long, disk full, read-only or damaged.

    `StorageBusyError` and `StorageFullError` are the kinds a caller may act on by type."""


class StorageBusyError(StorageError):
    """The database cannot do it now, and the same call may succeed later.

    Locked past the timeout, a statement timeout, conflicts with concurrent
    writers that outlasted the retries, or a server restarting or out of
    connections. Nothing of the call was committed, except where the
    connection was lost during COMMIT: retry with the same ``request_id``s.
    An HTTP surface answers 503 with Retry-After.
    """


class StorageFullError(StorageError):
    """The database has no room left (disk full, file too large): nothing of the call was
    written. An HTTP surface answers 507: retrying will not help until room is made."""


class NotARegistryError(StorageError):
    """The file is a database of something else (or no database): it is left untouched."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{path} is not a qllm registry ({reason}); it was left untouched")


class NoRegistryError(StorageError):
    """A command that only reads was given a path where no file exists: none is created."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"no registry at {path}: check the path (commands that only read never create one)"
        )


class CopyError(RegistryError):
    """`registry.copy` could not make the target a copy of the source."""


class CopyConflictError(CopyError):
    """The target already holds something the source does not (another body under a name,
    another token under a hash, usage events of its own): the copy is refused before it
    writes anything."""


class CopyMismatchError(CopyError):
    """The check after a copy found the two registries different (the source changed
    during the copy, or a writer used the target meanwhile): the copy cannot be trusted."""
