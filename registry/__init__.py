"""Query LLM Registry: validate, name, store and count Query LLMs and Query Models
in one SQLite file."""

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
    StorageError,
    ValidationError,
)
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
    "QueryModel",
    "Reasoning",
    "Registry",
    "RegistryError",
    "SchemaTooNewError",
    "StaticStrategy",
    "StaticWeight",
    "StorageError",
    "TrainingTableStrategy",
    "TrainingTableWeight",
    "ValidationError",
    "default_path",
    "dump",
    "dump_model",
    "validate",
    "validate_model",
]
