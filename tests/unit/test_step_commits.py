"""Steps and durability (architecture.md, "Durability points"): one commit per step.

A completed step is exactly one commit, and the storage work per step does not grow
with the number of steps already done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest
from returns.result import Result

import durably
from durably.domain.records import JsonValue
from durably.ports import StorageAdapter
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory
from tests.support.steps import logged

T0 = 1_000


def steps_workflow(n: int, calls: list[int]) -> durably.WorkflowDefinition[Any, Any]:
    @durably.workflow(name=f"steps{n}")
    async def many(_: Any) -> int:
        for i in range(n):
            await durably.step("s", logged(calls, i))
        return n

    return many


@pytest.mark.parametrize("n", [1, 5, 20])
async def test_each_completed_step_is_exactly_one_commit(runtimes: RuntimeFactory, n: int) -> None:
    h = Harness(runtimes("i1", T0), steps_workflow(n, []))
    assert h.handle.commits == 0
    result = await h.start()
    assert result.completed
    assert h.handle.commits == n + 2  # start, one per step, the final commit


@attrs.define
class CountingStorage:
    """A storage that counts the operations it is asked for."""

    inner: StorageAdapter
    calls: int = 0

    async def get(self, key: str) -> Result[JsonValue | None, durably.StorageError]:
        self.calls += 1
        return await self.inner.get(key)

    async def get_many(
        self, keys: Sequence[str]
    ) -> Result[dict[str, JsonValue], durably.StorageError]:
        self.calls += 1
        return await self.inner.get_many(keys)

    async def put(self, key: str, value: JsonValue) -> Result[None, durably.StorageError]:
        self.calls += 1
        return await self.inner.put(key, value)

    async def put_batch(self, entries: Mapping[str, JsonValue]) -> Result[None, Any]:
        self.calls += 1
        return await self.inner.put_batch(entries)

    async def delete(self, key: str) -> Result[bool, durably.StorageError]:
        self.calls += 1
        return await self.inner.delete(key)

    async def delete_all(self) -> Result[None, durably.StorageError]:
        self.calls += 1
        return await self.inner.delete_all()

    async def list(self, prefix: str) -> Result[dict[str, JsonValue], durably.StorageError]:
        self.calls += 1
        return await self.inner.list(prefix)

    def transaction(self) -> Any:
        return self.inner.transaction()


async def storage_calls(runtimes: RuntimeFactory, n: int) -> int:
    calls: list[int] = []
    rt, handle = runtimes(f"scale-{n}", T0)
    counting = CountingStorage(rt.storage)
    runtime = attrs.evolve(rt, storage=counting)
    h = Harness((runtime, handle), steps_workflow(n, calls))
    result = await h.start()
    assert result.completed
    assert len(calls) == n
    assert len(await h.completed_steps()) == n
    return counting.calls


async def test_a_thousand_steps_complete_with_constant_storage_work_per_step(
    runtimes: RuntimeFactory,
) -> None:
    small, medium, large = [await storage_calls(runtimes, n) for n in (10, 100, 1_000)]
    per_step = (medium - small) / 90
    assert per_step == (large - medium) / 900
    assert per_step <= 6
