"""``json_misfit``: JSON data against a type annotation, strictly, naming the field."""

from __future__ import annotations

import dataclasses
import datetime
import doctest
import enum
import importlib
import uuid
from typing import Any, Literal, NewType, Optional, Union

import attrs
import pytest

from durably.domain.json_fit import json_misfit, type_label


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Line:
    sku: str
    qty: int
    note: str | None = None


@attrs.frozen
class Order:
    id: str
    lines: list[Line]


@dataclasses.dataclass
class Point:
    x: float
    y: float
    label: str = ""


OrderId = NewType("OrderId", str)

FITS: list[tuple[object, Any]] = [
    ("Ada", str),
    (5, int),
    (5, float),
    (5.5, float),
    (True, bool),
    (None, None),
    (None, type(None)),
    (None, Optional[str]),  # noqa: UP045 - the spelling users still write
    (None, str | None),
    ("x", Union[int, str]),  # noqa: UP007 - the spelling users still write
    ([1, 2], list[int]),
    ([1, "a"], tuple[int, str]),
    ([1, 2, 3], tuple[int, ...]),
    ([1, 2], set[int]),
    ({"a": 1.5, "b": 2}, dict[str, float]),
    ({"any": [1, {"x": None}]}, dict[str, Any]),
    ({"id": "o", "lines": [{"sku": "s", "qty": 2}]}, Order),
    ({"x": 1, "y": 2.5}, Point),
    ("red", Colour),
    ("a", Literal["a", "b"]),
    ("o-1", OrderId),
    ("2025-01-01T00:00:00", datetime.datetime),
    (str(uuid.uuid4()), uuid.UUID),
    ({"whatever": 1}, Any),
    ([1, "x"], object),
    ([1, 2], list),
    ({"k": "v"}, dict),
]

MISFITS: list[tuple[object, Any, str]] = [
    (5, str, "input: expected str, got the number 5"),
    (None, str, "input: expected str, got null"),
    (True, int, "input: expected int, got true"),
    (5.0, int, "input: expected int, got the number 5.0"),
    ("5", int, 'input: expected int, got the string "5"'),
    (1, bool, "input: expected bool, got the number 1"),
    (False, float, "input: expected float, got false"),
    ("x", None, 'input: expected None (null), got the string "x"'),
    (5, str | None, "input: expected str | None, got the number 5"),
    ([1, "2"], list[int], 'input[1]: expected int, got the string "2"'),
    ({"a": 1}, list[int], "input: expected list[int] (an array), got an object"),
    ([1], tuple[int, str], "input: expected tuple[int, str] (2 items), got an array of 1"),
    ({"a": "x"}, dict[str, float], 'input["a"]: expected float, got the string "x"'),
    (
        {"id": "o", "lines": [{"sku": "s", "qty": "2"}]},
        Order,
        'input.lines[0].qty: expected int, got the string "2"',
    ),
    ({"id": "o"}, Order, "input.lines: missing (a field of Order)"),
    ({"id": "o", "lines": [], "extra": 1}, Order, "input.extra: not a field of Order"),
    ("o", Order, 'input: expected Order (an object), got the string "o"'),
    ({"x": "1", "y": 2}, Point, 'input.x: expected float, got the string "1"'),
    ("green", Colour, 'input: expected Colour (one of "red", "blue"), got the string "green"'),
    ("c", Literal["a", "b"], 'input: expected "a" | "b", got the string "c"'),
    (5, OrderId, "input: expected str, got the number 5"),
    (5, datetime.date, "input: expected date (a string), got the number 5"),
    (
        {"id": 1, "lines": []},
        Order | None,
        "input.id: expected str, got the number 1",
    ),
]


@pytest.mark.parametrize(("data", "annotation"), FITS, ids=[repr(f) for f in FITS])
def test_data_that_fits(data: object, annotation: Any) -> None:
    assert json_misfit(data, annotation) is None


@pytest.mark.parametrize(
    ("data", "annotation", "problem"), MISFITS, ids=[m[2][:40] for m in MISFITS]
)
def test_data_that_does_not_fit_names_the_field_and_the_type(
    data: object, annotation: Any, problem: str
) -> None:
    assert json_misfit(data, annotation) == problem


def test_the_root_of_the_path_is_the_parameters_name() -> None:
    assert json_misfit([1, None], list[int], path="ids") == "ids[1]: expected int, got null"


def test_labels() -> None:
    assert type_label(dict[str, list[Line]]) == "dict[str, list[Line]]"
    assert type_label(Optional[int]) == "int | None"  # noqa: UP045
    assert type_label(tuple[int, ...]) == "tuple[int, ...]"


def test_docstring_examples() -> None:
    result = doctest.testmod(importlib.import_module("durably.domain.json_fit"))
    assert result.attempted >= 3
    assert result.failed == 0
