"""A run of fast steps on SQLite leaves the event loop its turns.

When nothing else is ready, a step's commit is made at once instead of waiting for a
turn of the loop to group it; but timers (the lease heartbeat, the worker's poll) only
run when the loop gets its turn, so a long run of fast synchronous steps must still
give it one regularly.
"""

from __future__ import annotations

import asyncio
import functools

import durably
from durably.engine import Engine

STEPS = 3000


async def test_a_long_run_of_fast_steps_lets_a_timer_fire() -> None:
    fired: list[int] = []
    seen: dict[int, int] = {}

    def done(i: int) -> int:
        if i in (100, STEPS - 1):
            seen[i] = len(fired)  # how often the timer fired before this step
        return i

    @durably.workflow
    async def fast(_: None) -> int:
        for i in range(STEPS):
            await durably.step(f"s{i}", functools.partial(done, i))
        return STEPS

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.001)  # a timer, like the lease heartbeat's
            fired.append(1)

    async with Engine([fast], backend="memory://") as engine:
        ticks = asyncio.create_task(ticker())
        await asyncio.sleep(0)  # the ticker is waiting on its timer
        result = (await engine.start(fast, None, id="fast")).unwrap()
        ticks.cancel()
    assert result.output == STEPS
    assert seen[STEPS - 1] > seen[100]  # the timer fired while the steps ran
