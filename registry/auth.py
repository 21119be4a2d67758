"""Bearer tokens (spec section 8): made here, stored only as a hash, compared in constant time.

A token is ``qllm_`` plus 32 random bytes from `secrets` (256 bits) in
URL-safe base64. The database keeps its SHA-256; a stolen database file gives
no usable token. The SQL that stores and finds hashes is in `registry.store`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from registry.errors import AuthenticationError, ValidationError
from registry.ids import identifier_problem

PREFIX = "qllm_"
_RANDOM_BYTES = 32


def new_token() -> str:
    """A fresh secret; it is shown to its owner once and never stored."""
    return PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


# What `new_token` makes: the prefix, then URL-safe base64. Anything else was never a token.
_SHAPE = re.compile(r"qllm_[A-Za-z0-9_-]{1,195}")


def checked(token: Any) -> str:
    """``token`` if it is shaped like a token; an unknown token (`AuthenticationError`) if
    not. Checked before a token is hashed, or sent in a header (`registry.Client`): a
    header cannot carry ``qllm_é``, and no token holds it."""
    if token.__class__ is not str or not _SHAPE.fullmatch(token):
        raise AuthenticationError("unknown token")
    return str(token)


def token_hash(token: Any) -> str:
    """The stored form of ``token``: SHA-256, hex. Anything not shaped like a token is unknown."""
    return hashlib.sha256(checked(token).encode()).hexdigest()


def matches(stored_hash: str, token_hash: str) -> bool:
    """Constant-time comparison, so timing tells nothing about a stored hash."""
    return hmac.compare_digest(stored_hash, token_hash)


def check_user_id(user_id: Any) -> str:
    """A user id follows the identifier rule (1 to 256 characters, no white space)."""
    problem = identifier_problem(user_id)
    if problem:
        raise ValidationError.one("/user_id", problem)
    return str(user_id)
