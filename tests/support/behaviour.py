"""The type of the behaviour suite's ``reg``: what a test may call on every surface."""

from __future__ import annotations

from typing import Any, Protocol

from registry.api import RegistryApi


class Reg(RegistryApi, Protocol):
    """`RegistryApi` (what `Registry` and `Client` both offer), plus what the suite needs on
    both to set a scene: tokens (library and command line only, never over HTTP; the HTTP
    surface's client makes them on the served file), the rollups' rebuild, and the tables."""

    @property
    def db(self) -> Any: ...

    def create_token(self, user_id: str) -> str: ...
    def revoke_token(self, token: str) -> None: ...
    def rebuild_rollups(self) -> dict[str, int]: ...
