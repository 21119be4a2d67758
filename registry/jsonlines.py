"""Usage events from a JSON Lines file, as `qllm usage import` and ``POST /usage`` read them.

Read lazily, one line at a time, so a file of any size is never whole in memory.
Blank lines are skipped, and remembered, so that an event's index in the batch
(which errors name) maps back to its line number. Each line is read straight
into typed fields where it can be (`registry._convert.usage_line`, the fast path of
an import); any other line is the surface's to parse as JSON, in its own words.
A JSON body of ``POST /usage`` (an event or an array) is read the same way (`usage_body`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Any

from registry._convert import usage_body, usage_line

__all__ = ["EventLines", "usage_body"]


class EventLines:
    """The events of JSON Lines ``source``; `parse` reads a line the typed reader could not
    (a subclass raises the surface's own error for one that is not JSON)."""

    def __init__(self, source: Iterable[bytes | str]) -> None:
        self.source = source
        self.read = 0  # events yielded so far
        self._blank_before: list[int] = []  # event indexes that had a blank line before them

    def parse(self, line: Any, number: int) -> Any:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        for number, line in enumerate(self.source, 1):
            if not line.strip():
                self._blank_before.append(self.read)
                continue
            event = usage_line(line)
            if event is None:
                event = self.parse(line, number)
            self.read += 1
            yield event

    def line_of(self, index: int) -> int:
        """The line number of the event at ``index`` (0-based) of the batch."""
        return index + 1 + bisect.bisect_right(self._blank_before, index)
