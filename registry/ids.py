"""The rules of the text a caller names things with, once for every field that takes one.

An identifier (a Query LLM's ``id``, a fallback model, an embeddings model, a
user id) is 1 to 256 characters with no white space, no control characters and
no Unicode format characters (category Cf: the invisible ones such as U+200B
and U+FEFF, and those that change the direction of text such as U+202E). A
bounded text (a ``request_id``) is 1 to 256 characters with no control or
format characters; spaces are allowed. Neither is normalized (NFC or
otherwise): text is compared, stored and hashed as given, code point for code
point, as RFC 8785 does. Each rule is a function that says what is wrong with a
value, or None: the field hooks (`registry.hooks`), tokens and user ids
(`registry.auth`), `qllm copy` and every other reader of ids call these, so a
rule cannot hold on one surface and not on another.
"""

from __future__ import annotations

import unicodedata
from typing import Any

MAX_LENGTH = 256

_WHITE_OR_CONTROL = "must not contain white space or control characters"
_CONTROL = "must not contain control characters"


def _format(ch: str) -> str:
    return (
        f"must not contain format characters such as U+{ord(ch):04X}"
        " (invisible, or changing the direction of the text around it)"
    )


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


def _hidden(value: str, *, spaces: bool) -> str | None:
    """What is wrong with the characters of ``value`` that do not print, or None.

    Called only for text that does not print whole (`str.isprintable`, a fast test
    in C): a control (Cc) or format (Cf) character is refused, and white space
    unless ``spaces``; other characters that do not print (private use, unassigned
    code points, separators when ``spaces``) are allowed."""
    for ch in value:
        if not spaces and ch.isspace():
            return _WHITE_OR_CONTROL
        category = unicodedata.category(ch)
        if category == "Cc":
            return _CONTROL if spaces else _WHITE_OR_CONTROL
        if category == "Cf":
            return _format(ch)
    return None


def identifier_problem(value: Any) -> str | None:
    """Why ``value`` is not an identifier (model or user id), or None if it is."""
    problem = text_problem(value)
    if problem:
        return problem
    if len(value) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if value.isprintable() and " " not in value:  # the usual id: one test in C
        return None
    return _hidden(value, spaces=False)


def bounded_text_problem(value: Any) -> str | None:
    """Why ``value`` is not a text of 1 to 256 characters without control or format
    characters (a ``request_id``), or None."""
    problem = text_problem(value)
    if problem:
        return problem
    if len(value) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    if value.isprintable():
        return None
    return _hidden(value, spaces=True)
