"""Where each JSON text of a stream begins and ends, without parsing it: the lines of
JSON Lines, and the elements of a top-level JSON array, read from pieces of any size.

Both keep at most one text (and one piece) in memory, however long the stream, and
bound each text: one longer than ``limit`` bytes is skipped as it streams by, never
held, and stands in its place as an `Unreadable` event, so that the validation loop
reports it at its index like any other bad event. What each text means is left to
`registry.events` (`EventLines` reads lines and elements alike).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from registry.errors import ValidationError
from registry.events import Unreadable

MiB = 1024 * 1024
# One line of JSON Lines, or one element of an array: one usage event, which is a few
# hundred bytes (a few KB with long ids). Far above any event, far below a body.
MAX_TEXT = 1 * MiB

WHITESPACE = b" \t\r\n"  # JSON's whitespace (bytes.strip() would also take \v and \f)


def too_long(what: str, limit: int) -> Unreadable:
    return Unreadable((("", f"is over the limit of {_size(limit)} for one {what}"),))


def _size(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit} bytes"


def lines(pieces: Iterable[bytes], limit: int = MAX_TEXT) -> Iterator[bytes | Unreadable]:
    """The lines of JSON Lines text arriving in ``pieces`` (without their ``\\n``); a line
    over ``limit`` bytes is an `Unreadable`, skipped without being held."""
    rest = b""
    skipping = False  # inside a line over the limit: drop bytes up to its end
    for piece in pieces:
        text = piece
        if skipping:
            end = text.find(b"\n")
            if end < 0:
                continue
            skipping = False
            text = text[end + 1 :]
            yield too_long("line", limit)
        parts = (rest + text).split(b"\n") if rest else text.split(b"\n")
        rest = parts.pop()
        for line in parts:
            yield line if len(line) <= limit else too_long("line", limit)
        if len(rest) > limit:
            rest = b""
            skipping = True
    if skipping:
        yield too_long("line", limit)
    elif rest:  # never past the limit: the loop drops a rest that is
        yield rest


# The usual element, a flat object (no object or array inside), followed by its comma or
# the closing bracket: one match in C instead of a scan in Python. Possessive quantifiers
# keep it linear on any input (the two alternatives never start alike anyway).
_FLAT = re.compile(
    rb'[ \t\r\n]*+(\{(?:[^"{}\[\]]++|"(?:[^"\\]++|\\.)*+")*+\})[ \t\r\n]*+([,\]])', re.DOTALL
)
_OUTSIDE = re.compile(rb'["{}\[\],]')  # what changes the scan outside a string
_INSIDE = re.compile(rb'["\\]')  # and inside one


class _Scan:
    """Where the slow scan of one element stands, kept across pieces."""

    __slots__ = ("depth", "escaped", "in_string")

    def __init__(self) -> None:
        self.depth = 0  # brackets open inside the element
        self.in_string = False
        self.escaped = False  # the last byte seen was a backslash inside a string

    def end(self, data: bytes, at: int) -> int:
        """The position in ``data`` of the comma or bracket that ends the element, scanning
        from ``at``; -1 when ``data`` ends first (the state is kept for the next piece)."""
        while at < len(data):
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                    at += 1
                    continue
                found = _INSIDE.search(data, at)
                if found is None:
                    return -1
                at = found.end()
                if found[0] == b"\\":
                    self.escaped = True
                else:
                    self.in_string = False
                continue
            found = _OUTSIDE.search(data, at)
            if found is None:
                return -1
            char = found[0]
            if char == b'"':
                self.in_string = True
            elif char in b"{[":
                self.depth += 1
            elif self.depth == 0:  # a comma, or the array's own closing bracket
                return found.start()
            elif char != b",":
                self.depth -= 1
            at = found.end()
        return -1


def _invalid(message: str) -> ValidationError:
    return ValidationError.one("", f"is not valid JSON: {message}")


def elements(pieces: Iterable[bytes], limit: int = MAX_TEXT) -> Iterator[bytes | Unreadable]:
    """The elements of the JSON array arriving in ``pieces``, each as its JSON text; an
    element over ``limit`` bytes is an `Unreadable`, skipped without being held.

    Raises `ValidationError` (at ``""``) when the text around the elements is not one
    array: no ``[``, no closing ``]``, or anything but whitespace after it. An empty
    element (``[1,,2]``, ``[1,]``) is an `Unreadable` at its index. What an element holds
    is not checked here: its reader says what is wrong with it, at its index.
    """
    splitter = _Elements(limit)
    for piece in pieces:
        yield from splitter.feed(piece)
    splitter.finish()


class _Elements:
    """The state of `elements` between two pieces."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = b""  # the pieces not consumed yet: from `at`, the current element
        self.at = 0
        self.opened = self.closed = False
        self.first = True  # no element ended yet: a ']' now is the empty array's
        self.scan: _Scan | None = None  # a slow scan under way: data[at:scanned] is done
        self.scanned = 0
        self.skipped = 0  # bytes of an element over the limit, dropped as they arrived

    def feed(self, piece: bytes) -> Iterator[bytes | Unreadable]:
        if self.at < len(self.data):
            self.data = self.data[self.at :] + piece
            self.scanned -= self.at
        else:
            self.data, self.scanned = piece, 0
        self.at = 0
        if not self.opened and not self._open():
            return
        match, limit = _FLAT.match, self.limit
        while not self.closed:
            if self.scan is None:  # the usual elements, flat: one match each, inline
                data, at = self.data, self.at
                flat = match(data, at)
                while flat is not None:
                    self.first = False
                    at = flat.end()
                    text = flat[1]
                    yield text if len(text) <= limit else too_long("element", limit)
                    if flat[2] == b"]":
                        self.closed = True
                        break
                    flat = match(data, at)
                self.at = at
                if self.closed:
                    break
                self.scan, self.scanned = _Scan(), at
            element = self._scanned()
            if element is None:
                break
            if element is not _EMPTY_ARRAY:
                yield element
        if self.closed:
            if self.data[self.at :].strip(WHITESPACE):
                raise _invalid("more text after the array's closing ']'")
            self.data, self.at = b"", 0

    def _open(self) -> bool:
        """Past the array's ``[``; False while only whitespace has come."""
        self.data = self.data.lstrip(WHITESPACE)
        if not self.data:
            return False
        if self.data[:1] != b"[":
            raise _invalid("a batch must be one JSON array")
        self.opened, self.at = True, 1
        return True

    def _scanned(self) -> bytes | Unreadable | None:
        """The element under the slow scan; `_EMPTY_ARRAY` for the end of ``[]``; None
        when the element goes on in the next piece."""
        data, at = self.data, self.at
        assert self.scan is not None
        end = self.scan.end(data, self.scanned)
        if end < 0:
            if self.skipped or len(data) - at > self.limit:  # too long: drop what came
                self.skipped += len(data) - at
                self.data, self.at = b"", 0
            self.scanned = len(self.data)
            return None
        text = data[at:end].strip(WHITESPACE)
        self.closed = data[end : end + 1] == b"]"
        first, skipped = self.first, self.skipped
        self.scan, self.skipped, self.first = None, 0, False
        self.at = end + 1
        if skipped or len(text) > self.limit:
            return too_long("element", self.limit)
        if text:
            return text
        if self.closed and first:  # `[]`: the empty batch
            return _EMPTY_ARRAY
        return Unreadable((("", "is not valid JSON: no value before this ',' or ']'"),))

    def finish(self) -> None:
        if not self.opened:
            raise _invalid("the body is empty")
        if not self.closed:
            raise _invalid("the array is not closed: the body ended before its ']'")


_EMPTY_ARRAY = Unreadable(())  # a marker, never yielded
