"""Query LLM Registry: validate, name, store and count Query LLMs in one SQLite file."""

from registry._convert import dump, validate
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    NoRegistryError,
    NotARegistryError,
    NotFoundError,
    RegistryError,
    SchemaTooNewError,
    StorageError,
    ValidationError,
)
from registry.model import (
    Provider,
    QueryLlm,
    Reasoning,
    StaticWeight,
    TrainingTableWeight,
)
from registry.storage import Registry, default_path

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "ConflictError",
    "NoRegistryError",
    "NotARegistryError",
    "NotFoundError",
    "Provider",
    "QueryLlm",
    "Reasoning",
    "Registry",
    "RegistryError",
    "SchemaTooNewError",
    "StaticWeight",
    "StorageError",
    "TrainingTableWeight",
    "ValidationError",
    "default_path",
    "dump",
    "validate",
]
