"""`RegistryApi`: the public methods `Registry` and `Client` share, checked by mypy."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from registry.model import QueryLlm, QueryModel


class RegistryApi(Protocol):
    """What code written against the registry may call, on a file or over HTTP."""

    def register(self, body: Any, token: str | None = None) -> QueryLlm: ...

    def get(
        self,
        name: str,
        metadata: bool = False,
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> dict[str, Any]: ...

    def list(
        self,
        count: int = 100,
        offset: int = 0,
        sort: str = "created",
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> list[str]: ...

    def count(self, me: bool = False, token: str | None = None) -> int: ...

    def record_usage(
        self,
        name: str,
        token: str | None = None,
        at: str | datetime | None = None,
        request_id: str | None = None,
        chat_prompt_tokens: int = 0,
        chat_completion_tokens: int = 0,
        chat_cost: int | float | str | Decimal = 0,
        embedding_prompt_tokens: int = 0,
        embedding_completion_tokens: int = 0,
        embedding_cost: int | float | str | Decimal = 0,
        query_model: str | None = None,
    ) -> int: ...

    def record_usage_many(
        self, events: Iterable[Mapping[str, Any]], token: str | None = None
    ) -> int: ...

    def register_model(self, body: Any, token: str | None = None) -> QueryModel: ...

    def get_model(
        self,
        name: str,
        metadata: bool = False,
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> dict[str, Any]: ...

    def list_models(
        self,
        count: int = 100,
        offset: int = 0,
        sort: str = "created",
        me: bool = False,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        token: str | None = None,
    ) -> builtins.list[str]: ...

    def count_models(self, me: bool = False, token: str | None = None) -> int: ...

    def usage_series(
        self,
        start: str | datetime,
        end: str | datetime | None = None,
        bucket: str = "day",
        group_by: Iterable[str] = (),
        names: Iterable[str] | None = None,
        query_model: str | None = None,
        me: bool = False,
        token: str | None = None,
    ) -> builtins.list[dict[str, Any]]: ...

    def record_completion(
        self,
        id: str,
        query_model: str,
        embedding: Any,
        votes: Any,
        response_format_hash: str = "",
        at: str | datetime | None = None,
        token: str | None = None,
    ) -> int: ...

    def record_completions(
        self, completions: Iterable[Mapping[str, Any]], token: str | None = None
    ) -> int: ...

    def get_completion(
        self, id: str, embedding: bool = False, token: str | None = None
    ) -> dict[str, Any]: ...

    def mark(self, id: str, correct_confidence_id: str, token: str | None = None) -> None: ...

    def unmark(self, id: str, token: str | None = None) -> None: ...

    def weights(
        self,
        query_model: str,
        embedding: Any,
        response_format_hash: str | None = "",
        token: str | None = None,
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...
