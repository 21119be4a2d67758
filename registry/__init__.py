"""Query LLM Registry: validate, name, store and count Query LLMs and Query Models
in one SQLite file."""

from typing import TYPE_CHECKING

from registry._convert import dump, dump_model, validate, validate_model
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NoRegistryError,
    NotARegistryError,
    NotFoundError,
    RegistryError,
    SchemaTooNewError,
    StorageBusyError,
    StorageError,
    StorageFullError,
    ValidationError,
)
from registry.location import default_path
from registry.model import (
    Provider,
    QueryLlm,
    QueryModel,
    Reasoning,
    StaticStrategy,
    StaticWeight,
    TrainingTableStrategy,
    TrainingTableWeight,
)
from registry.registry import Registry

if TYPE_CHECKING:
    from registry.client import Client

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "Client",
    "ConflictError",
    "NoRegistryError",
    "NotARegistryError",
    "NotFoundError",
    "Provider",
    "QueryLlm",
    "QueryModel",
    "Reasoning",
    "Registry",
    "RegistryError",
    "SchemaTooNewError",
    "StaticStrategy",
    "StaticWeight",
    "StorageBusyError",
    "StorageError",
    "StorageFullError",
    "TrainingTableStrategy",
    "TrainingTableWeight",
    "ValidationError",
    "default_path",
    "dump",
    "dump_model",
    "validate",
    "validate_model",
]


def __getattr__(name: str) -> object:
    # Client needs httpx (the `client` extra): imported on first use, so that
    # `import registry` works without it.
    if name == "Client":
        from registry.extras import missing  # noqa: PLC0415 - only this error needs it

        try:
            from registry.client import Client  # noqa: PLC0415 - lazy on purpose
        except ImportError as exc:
            raise ImportError(missing("registry.Client", exc.name, "client")) from exc
        return Client
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
