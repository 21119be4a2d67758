"""`registry.framing`: JSON Lines lines and array elements found in pieces of any size,
each as the whole text would give it, each bounded without being held."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.errors import ValidationError
from registry.events import Unreadable
from registry.framing import elements, lines

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab,[]{}"\\:\n é'), max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='ab,]}"\\', max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)
CUTS = st.lists(st.integers(1, 40), min_size=1, max_size=30)


def cut(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` in pieces of the ``sizes`` given, over and over."""
    at, turn = 0, 0
    while at < len(data):
        size = sizes[turn % len(sizes)]
        yield data[at : at + size]
        at, turn = at + size, turn + 1


def texts(found: Iterator[bytes | Unreadable]) -> list[Any]:
    return [item if isinstance(item, Unreadable) else json.loads(item) for item in found]


@given(st.lists(VALUES, max_size=6), CUTS, st.sampled_from([None, 0, 2]))
def test_elements_are_the_arrays_elements(array: list[Any], sizes: list[int], indent: Any) -> None:
    data = json.dumps(array, indent=indent, ensure_ascii=False).encode()
    assert texts(elements(cut(data, sizes))) == array


@given(st.lists(VALUES, min_size=1, max_size=6), CUTS, st.integers(0, 5))
def test_an_element_over_the_limit_is_skipped_in_its_place(
    array: list[Any], sizes: list[int], which: int
) -> None:
    which %= len(array)
    array[which] = {"x": "y" * 200}  # 211 bytes of JSON: over the limit of 100
    data = json.dumps(array).encode()
    found = texts(elements(cut(data, sizes), limit=100))
    expected = [
        Unreadable((("", "is over the limit of 100 bytes for one element"),))
        if i == which or len(json.dumps(v)) > 100
        else v
        for i, v in enumerate(array)
    ]
    assert found == expected


@given(st.lists(st.text(alphabet='ab{}"\\é', max_size=30), max_size=8), CUTS)
def test_lines_are_the_texts_lines(rows: list[str], sizes: list[int]) -> None:
    data = "".join(row + "\n" for row in rows).encode()
    found = list(lines(cut(data, sizes), limit=20))
    expected = [
        row.encode()
        if len(row.encode()) <= 20
        else Unreadable((("", "is over the limit of 20 bytes for one line"),))
        for row in rows
    ]
    assert found == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the body is empty"),
        (b"  \n", "the body is empty"),
        (b'{"a": 1}', "a batch must be one JSON array"),
        (b"[1, 2", "the array is not closed"),
        (b"[1] [2]", "more text after the array"),
    ],
)
def test_text_around_the_elements_that_is_not_one_array(data: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        list(elements(cut(data, [3])))
    assert caught.value.errors[0][0] == ""
    assert message in caught.value.errors[0][1]


def test_an_empty_element_is_refused_in_its_place() -> None:
    found = list(elements([b"[1,,2,]"]))
    empty = Unreadable((("", "is not valid JSON: no value before this ',' or ']'"),))
    assert found == [b"1", empty, b"2", empty]
    assert list(elements([b"[ ]"])) == []
