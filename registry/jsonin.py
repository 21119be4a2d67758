"""JSON input: the one reader of the JSON text callers send, whatever the surface.

Every surface that takes JSON (``qllm validate``/``register`` files and stdin,
``qllm usage import`` lines, every HTTP body, the library's JSON Lines reader)
reads it here, so that a rule of JSON holds on all of them or on none:

- Text is UTF-8, whatever the locale; a leading byte order mark is ignored.
- A key given twice in one object is an error at that key (``/provider/sort:
  duplicate key``), never "the last one wins".
- A key that is not Unicode text (a lone surrogate, ``"\\ud800"``) is an error
  at its place, written printably.
- A number with a fraction or an exponent is a `JsonFloat`: the float it reads
  as, keeping its text, so that a cost is read from the text exactly and never
  rounded twice (``0.12345678949999999999`` is not first made the float
  ``0.1234567895``). An integer too long for ``int()`` to read (Python refuses
  more than a few thousand digits) is a `JsonFloat` too: the field's own rule
  then says it is out of range, at the field's path.
- NaN and Infinity are read as floats, so that the fields' rules refuse them at
  their own paths.

Problems are `ValidationError`s whose paths are JSON pointers (`pointer`) with
every character that does not print escaped, so that a message can always be
written to a terminal, a log or an HTTP answer.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from registry.errors import ValidationError

BOM = "\ufeff"
# The fewest digits Python may be set to refuse in int() (sys.set_int_max_str_digits):
# integers up to this long are read as ints whatever the setting.
INT_DIGITS = 640


class JsonFloat(float):
    """A JSON number read with a fraction or an exponent (or too long for an int): the
    float it reads as, and ``text``, as written. Costs are read from ``text``. Made by
    `json_float` (readers call it once per number: no ``__new__`` of ours to run)."""

    __slots__ = ("text",)
    text: str

    def __reduce__(self) -> tuple[Any, ...]:
        return (json_float, (self.text,))


def json_float(text: str) -> JsonFloat:
    """The `JsonFloat` of a JSON number's text."""
    number = JsonFloat(text)
    number.text = text
    return number


def _int(text: str) -> int | JsonFloat:
    return int(text) if len(text) <= INT_DIGITS else json_float(text)


def text_of(data: bytes | bytearray | memoryview | str, path: str = "") -> str:
    """JSON input as text: bytes are UTF-8 (whatever the locale); a leading BOM is dropped."""
    if not isinstance(data, str):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError.one(
                path, f"is not UTF-8 text: {exc.reason} at byte {exc.start}"
            ) from None
    return data[1:] if data.startswith(BOM) else data


def loads(data: bytes | bytearray | memoryview | str, path: str = "") -> Any:
    """JSON text (or UTF-8 bytes) as Python values, by the rules above; `ValidationError`
    with every problem, each at its path under ``path``, when it cannot be read."""
    text = text_of(data, path)
    flawed: list[tuple[dict[str, Any], list[tuple[str, str]]]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) == len(items) and all(key.isascii() for key in obj):
            return obj  # the usual object: nothing more to look at
        flaws = [(key, "duplicate key") for key, n in Counter(k for k, _ in items).items() if n > 1]
        flaws.extend((key, _NOT_UNICODE) for key in obj if not _is_unicode(key))
        if flaws:
            flawed.append((obj, flaws))
        return obj

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_float=json_float, parse_int=_int)
    except RecursionError:
        raise ValidationError.one(path, "is JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError
        raise ValidationError.one(path, f"is not valid JSON: {exc}") from None
    if flawed:
        raise ValidationError(sorted(_located(value, flawed, path)))
    return value


_NOT_UNICODE = "key is not Unicode text (it holds a lone surrogate)"


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _located(
    value: Any, flawed: list[tuple[dict[str, Any], list[tuple[str, str]]]], path: str
) -> list[tuple[str, str]]:
    """The flaws found in objects as ``(path, message)``: where each flawed object is in
    ``value``, found by identity (only once something is wrong, so the usual read pays
    nothing). Iterative: the value may be nested as deeply as the parser allowed."""
    wanted = {id(obj): flaws for obj, flaws in flawed}
    problems: list[tuple[str, str]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, at = stack.pop()
        if isinstance(item, dict):
            for key, message in wanted.get(id(item), ()):
                problems.append((path + pointer((*at, key)), message))
            stack.extend((child, (*at, key)) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, (*at, index)) for index, child in enumerate(item))
    return problems


# --- paths ------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """``text`` with each character that does not print (controls, format characters such
    as U+202E, lone surrogates, separators other than the space) escaped as Python
    writes it (``\\n``, ``\\u202e``, ``\\ud800``)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def pointer(path: tuple[str | int, ...]) -> str:
    """A JSON pointer (RFC 6901) for ``path``, printable; the empty string is the whole
    document."""
    return "".join(
        "/" + printable(str(part).replace("~", "~0").replace("/", "~1")) for part in path
    )


# --- the typed reader's check ---------------------------------------------------------------


def flat_keys(text: bytes | str, strings: int) -> int:
    """How many keys JSON objects whose values are all scalars (one, or an array of them)
    have in all, ``strings`` of their values being strings, counted on their text, which
    a parser has read already; never fewer than they have.

    A reader that keeps the last of repeated keys (msgspec) compares this with the keys
    it found. Every string is two quotes, the keys' and the string values', plus one for
    each escaped quote (``\\"``) inside it: so the count is exact for text without
    escaped quotes, and too high (never too low) for text with them, which the caller
    then leaves to the reference reader, as it does a repeat.
    """
    quotes = text.count('"') if isinstance(text, str) else text.count(b'"')
    return quotes // 2 - strings
