"""What a step function may return (semantics.md section 3): values, awaitables, results.

Each is unwrapped, stored as JSON and comes back as the step's declared type, on the
first run and on replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from returns.result import Result, Success

import durably
from durably.status import Completed
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory
from tests.support.steps import logged

T0 = 1_000
V = TypeVar("V")


@attrs.frozen
class Point:
    """A declared step return type (an attrs class stored as JSON)."""

    x: int
    y: int


async def async_value() -> int:
    return 7


async def async_point() -> Point:
    return Point(1, 2)


async def async_success() -> Result[Point, ValueError]:
    return Success(Point(3, 4))


def sync_point() -> Point:
    return Point(5, 6)


@durably.step
async def make_point(x: int) -> Point:
    return Point(x, x * 10)


async def test_values_awaitables_and_results_are_unwrapped_and_stored(
    runtimes: RuntimeFactory,
) -> None:
    @durably.workflow
    async def values(_: Any) -> list[Any]:
        return [
            await durably.step("plain", lambda: 1),
            await durably.step("async", async_value),
            await durably.step("coroutine", lambda: async_value()),
            await durably.step("success", lambda: Success({"a": 1})),
            await durably.step("none", lambda: None),
        ]

    h = Harness(runtimes("i1", T0), values)
    result = await h.start()
    assert result.completed
    assert result.output == [1, 7, 7, {"a": 1}, None]
    snapshot = h.snapshot()
    assert snapshot["step:success:result"]["value"] == {"a": 1}
    assert snapshot["step:coroutine:result"]["value"] == 7
    assert snapshot["step:none:result"]["value"] is None
    assert await h.completed_steps() == ("plain", "async", "coroutine", "success", "none")


async def test_step_values_are_the_same_objects_on_the_first_run_and_on_replay(
    runtimes: RuntimeFactory,
) -> None:
    seen: list[list[Any]] = []

    @durably.workflow
    async def typed(_: Any) -> str:
        values = [
            await durably.step("async_point", async_point),
            await durably.step("result_point", async_success),
            await durably.step("sync_point", sync_point),
            await make_point(7),
            await durably.step("lambda_point", lambda: Point(8, 9)),
        ]
        seen.append(values)
        await durably.sleep("1s")
        return "done"

    h = Harness(runtimes("i1", T0), typed)
    await h.start()
    assert isinstance(await h.resume(), Completed)
    first, replayed = seen
    expected = [Point(1, 2), Point(3, 4), Point(5, 6), Point(7, 70), Point(8, 9)]
    assert first == expected
    assert replayed == expected
    # Declared or not (the lambda's Point is stored tagged with its class), the same type.
    assert all(type(v) is Point for v in first + replayed)


async def test_a_generic_return_annotation_replays_the_stored_json(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[list[int]] = []

    def boxed(value: V) -> Callable[[], list[V]]:
        def fn() -> list[V]:  # a type variable: nothing concrete to convert into
            return [value]

        return fn

    @durably.workflow
    async def generic(_: Any) -> list[Any]:
        calls.append(await durably.step("boxed", boxed(3)))
        await durably.sleep("1s")
        return [await durably.step("counted", logged(calls, [4]))]

    h = Harness(runtimes("i1", T0), generic)
    await h.start()
    assert isinstance(await h.resume(), Completed)
    assert calls == [[3], [3], [4]]
    assert await h.output() == [[4]]


async def test_a_step_declared_to_return_none_replays(runtimes: RuntimeFactory) -> None:
    sent: list[str] = []

    @durably.step
    async def notify(to: str) -> None:
        sent.append(to)

    @durably.workflow
    async def notifying(_: Any) -> str:
        await notify("ann")
        await durably.sleep("1s")
        return "done"

    h = Harness(runtimes("i1", T0), notifying)
    await h.start()
    assert isinstance(await h.resume(), Completed)
    assert sent == ["ann"]
