"""``durably start --input`` is checked against the workflow's input annotation, every type.

A misfit is one line naming the field and the expected type, exit 2, and nothing is
stored (the database is not even created).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.cli_process import durably

APP = """
import dataclasses

import attrs

import durably


@attrs.frozen
class Line:
    sku: str
    qty: int


@attrs.frozen
class Order:
    id: str
    lines: list[Line]


@dataclasses.dataclass
class Point:
    x: float
    y: float


@durably.workflow
async def greet(name: str) -> str:
    return f"hello {name}"


@durably.workflow
async def count(n: int) -> int:
    return n + 1


@durably.workflow
async def half(x: float) -> float:
    return x / 2


@durably.workflow
async def toggle(on: bool) -> bool:
    return not on


@durably.workflow
async def maybe(name: str | None) -> str:
    return name or "nobody"


@durably.workflow
async def total(amounts: list[int]) -> int:
    return sum(amounts)


@durably.workflow
async def scores(by_name: dict[str, float]) -> float:
    return max(by_name.values())


@durably.workflow
async def place(order: Order) -> int:
    return sum(line.qty for line in order.lines)


@durably.workflow
async def norm(p: Point) -> float:
    return abs(p.x) + abs(p.y)


@durably.workflow
async def either(key: int | str) -> str:
    return repr(key)


workflows = [greet, count, half, toggle, maybe, total, scores, place, norm, either]
"""

REFUSED = [
    ("greet", "5", "name: expected str, got the number 5"),
    ("greet", "null", "name: expected str, got null"),
    ("count", "true", "n: expected int, got true"),
    ("count", "5.5", "n: expected int, got the number 5.5"),
    ("count", '"5"', 'n: expected int, got the string "5"'),
    ("half", '"1.5"', 'x: expected float, got the string "1.5"'),
    ("toggle", "1", "on: expected bool, got the number 1"),
    ("maybe", "5", "name: expected str | None, got the number 5"),
    ("total", '[1, "2"]', 'amounts[1]: expected int, got the string "2"'),
    ("total", '{"a": 1}', "amounts: expected list[int] (an array), got an object"),
    ("scores", '{"ada": "high"}', 'by_name["ada"]: expected float, got the string "high"'),
    (
        "place",
        '{"id": "o-1", "lines": [{"sku": "s", "qty": "2"}]}',
        'order.lines[0].qty: expected int, got the string "2"',
    ),
    ("place", '{"id": "o-1"}', "order.lines: missing (a field of Order)"),
    ("norm", '{"x": 1, "y": 2, "z": 3}', "p.z: not a field of Point"),
    ("either", "[1]", "key: expected int | str, got an array"),
]

ACCEPTED = [
    ("greet", '"Ada"', "hello Ada"),
    ("half", "3", 1.5),  # an integer is a float
    ("maybe", "null", "nobody"),
    ("total", "[1, 2, 3]", 6),
    ("scores", '{"ada": 2, "bo": 2.5}', 2.5),
    ("place", '{"id": "o-1", "lines": [{"sku": "s", "qty": 2}, {"sku": "t", "qty": 3}]}', 5),
    ("norm", '{"x": -1, "y": 2.5}', 3.5),
    ("either", '"k"', "'k'"),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "typed_app.py").write_text(APP, encoding="utf-8")
    return tmp_path


def start(folder: Path, name: str, *input_json: str) -> tuple[int, str, str]:
    given = ["--input", *input_json] if input_json else []
    ran = durably(
        "start", name, *given, "--app", "typed_app:workflows", "--backend", "sqlite:///typed.db",
        cwd=folder,
    )  # fmt: skip
    return ran.code, ran.out, ran.error_line() if ran.code else ran.err


@pytest.mark.parametrize(
    ("name", "given", "problem"), REFUSED, ids=[f"{n}:{g}" for n, g, _ in REFUSED]
)
def test_an_input_that_does_not_fit_is_refused_naming_field_and_type(
    folder: Path, name: str, given: str, problem: str
) -> None:
    code, out, line = start(folder, name, given)
    assert code == 2
    assert line == f"--input does not fit workflow {name!r}: {problem}"
    assert out == ""
    assert not (folder / "typed.db").exists()  # nothing was stored


def test_a_missing_input_is_null_and_says_so(folder: Path) -> None:
    code, _, line = start(folder, "greet")
    assert code == 2
    assert line == (
        "--input does not fit workflow 'greet': name: expected str, got null "
        "(no --input given: it is null)"
    )


@pytest.mark.parametrize(
    ("name", "given", "output"), ACCEPTED, ids=[f"{n}:{g}" for n, g, _ in ACCEPTED]
)
def test_an_input_that_fits_runs(folder: Path, name: str, given: str, output: object) -> None:
    code, out, err = start(folder, name, given)
    assert code == 0, err
    assert json.loads(out) == output
