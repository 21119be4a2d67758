"""The rules of the text a caller names things with, once for every field that takes one.

An identifier (a Query LLM's ``id``, a fallback model, an embeddings model, a
user id) is 1 to 256 characters with no white space and no control
characters. A text (a ``request_id``) is 1 to 256 characters. Each rule is a
function that says what is wrong with a value, or None: the field hooks
(`registry.hooks`), tokens (`registry.auth`) and every other reader of ids
call these, so a rule cannot hold on one surface and not on another.
"""

from __future__ import annotations

import re
from typing import Any

MAX_LENGTH = 256

_NOT_IN_IDENTIFIER = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def text_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable non-empty string, or None if it is."""
    if value.__class__ is not str or not value:
        return "must be a non-empty string"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "must be valid Unicode (no lone surrogates)"
    return None


def identifier_problem(value: Any) -> str | None:
    """Why ``value`` is not an identifier (model or user id), or None if it is."""
    problem = text_problem(value)
    if problem:
        return problem
    if len(value) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if _NOT_IN_IDENTIFIER.search(value):
        return "must not contain white space or control characters"
    return None


def bounded_text_problem(value: Any) -> str | None:
    """Why ``value`` is not a text of 1 to 256 characters (a ``request_id``), or None."""
    problem = text_problem(value)
    if problem:
        return problem
    if len(value) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    return None
