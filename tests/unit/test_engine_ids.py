"""The ids ``Engine.start`` and ``Engine.queue`` give instances started without one."""

from __future__ import annotations

import asyncio
import uuid

import durably
from durably.engine import Engine


@durably.workflow
async def one_step(_: None) -> int:
    return await durably.step("s", lambda: 1)


async def test_default_ids_are_time_ordered_uuids() -> None:
    """UUID version 7: a new instance's rows go at the end of the tables' b-trees."""
    ids = []
    async with Engine([one_step], backend="memory://") as engine:
        for call in ("start", "queue", "start"):
            method = engine.start if call == "start" else engine.queue
            ids.append((await method(one_step, None)).unwrap().id)
            await asyncio.sleep(0.002)  # the next id falls in a later millisecond
    parsed = [uuid.UUID(i) for i in ids]
    assert [str(u) for u in parsed] == ids
    assert [u.version for u in parsed] == [7, 7, 7]
    assert sorted(ids) == ids
    assert len(set(ids)) == 3
