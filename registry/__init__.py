"""Query LLM Registry: validate, name, store and count Query LLMs in one SQLite file."""

from registry._convert import dump, validate
from registry.errors import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
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

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "ConflictError",
    "NotFoundError",
    "Provider",
    "QueryLlm",
    "Reasoning",
    "RegistryError",
    "SchemaTooNewError",
    "StaticWeight",
    "StorageError",
    "TrainingTableWeight",
    "ValidationError",
    "dump",
    "validate",
]
