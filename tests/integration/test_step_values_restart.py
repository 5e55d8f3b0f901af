"""A step's value is the same (type and value) on the first run and after a real restart.

Each value is returned by two steps of one workflow: an unannotated lambda and a step
function annotated with the value's type. The workflow records what it got, sleeps,
and the engine is closed; a new engine on the same SQLite file resumes it (a replay:
both steps come from storage). Before, the first run saw a ``datetime`` and the replay
its ISO string, a tuple came back as a list, bytes as base85 text.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest

import durably
from durably.adapters.clock import ManualClock
from durably.domain.results import ok
from durably.domain.status import Failed
from durably.engine import Engine

pytestmark = pytest.mark.timeout(30)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Parcel:
    weight: decimal.Decimal
    sent: datetime.datetime
    tags: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Receipt:
    number: int
    paid_on: datetime.date


UTC = datetime.UTC
VALUES: dict[str, Any] = {
    "datetime": datetime.datetime(2025, 1, 1, 12, 30, tzinfo=UTC),
    "naive_datetime": datetime.datetime(2025, 1, 1, 12, 30, 5, 123456),
    "date": datetime.date(2025, 1, 1),
    "time": datetime.time(23, 59, 1, 5),
    "timedelta": datetime.timedelta(days=2, seconds=5, microseconds=7),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": decimal.Decimal("10.10"),
    "bytes": b"\x00\xffXlV",
    "tuple": (1, "two", (3, 4)),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "enum": Color.BLUE,
    "attrs": Parcel(decimal.Decimal("1.5"), datetime.datetime(2025, 2, 3, tzinfo=UTC), ("x",)),
    "dataclass": Receipt(7, datetime.date(2025, 3, 4)),
    "nested": {"when": [datetime.date(2025, 1, 2)], "pair": (1, 2), "plain": [1, "a", None]},
}

SEEN: list[tuple[str, Any, Any]] = []  # (run, unannotated value, annotated value)


def _annotated(name: str) -> Any:
    """A step function annotated with the value's type (a code object of its own: durably
    caches a function's return type per code object)."""
    declared = dict[str, Any] if name == "nested" else type(VALUES[name])
    namespace: dict[str, Any] = {"VALUES": VALUES, "T": declared}
    exec(f"async def give() -> T:\n    return VALUES[{name!r}]\n", namespace)
    return namespace["give"]


@durably.workflow
async def keep(name: str) -> str:
    plain = await durably.step("plain", lambda: VALUES[name])
    typed = await durably.step("typed", _annotated(name))
    SEEN.append(("run", plain, typed))
    await durably.sleep("1h")
    return "done"


@pytest.mark.parametrize("name", sorted(VALUES))
async def test_the_value_of_a_step_survives_a_restart_unchanged(name: str, tmp_path: Path) -> None:
    SEEN.clear()
    url = f"sqlite:///{tmp_path / 'values.db'}"
    clock = ManualClock(1_000_000)
    async with Engine([keep], backend=url, clock=clock) as first:
        ok(await first.start(keep, name, id="v"))
    clock.time_ms += 3_600_000
    async with Engine([keep], backend=url, clock=clock) as second:
        assert await second.run_until_idle() == 1
        assert ok(await second.result("v", timeout="1s")) == "done"
    (_, first_plain, first_typed), (_, again_plain, again_typed) = SEEN
    expected = VALUES[name]
    for got in (first_plain, again_plain, first_typed, again_typed):
        assert got == expected
        assert type(got) is type(expected)
    if name == "nested":
        assert type(again_plain["pair"]) is tuple
        assert type(again_plain["when"][0]) is datetime.date


async def test_a_value_that_could_not_come_back_the_same_fails_the_step_at_once(
    tmp_path: Path,
) -> None:
    class Local:  # defined in a function: a replay could not find the class
        pass

    @durably.workflow
    async def odd(_: None) -> None:
        await durably.step("local", lambda: Local())

    async with Engine([odd], backend=f"sqlite:///{tmp_path / 'odd.db'}") as engine:
        result = ok(await engine.start(odd, None, id="odd"))
        status = ok(await engine.status("odd")).status
    assert not result.completed
    assert isinstance(status, Failed)
    error = status.error
    assert error.type == "SerializationError"
    assert error.step_name == "local"
    assert "Local" in error.message
