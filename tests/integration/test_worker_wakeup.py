"""A worker that is reading the store when work arrives in its own process is not put to
sleep for a whole poll interval: the change it missed while reading wakes its wait.

The worker loop reads what is due, then waits for a change (``Signal``) or the poll
interval. A commit that lands during the read fired the signal before the wait began;
the wait now starts from the count of fires taken before the read, and returns at once.
With a poll interval of 60 s, losing that wake-up stalls each instance for a minute.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import durably
from durably.engine import Engine
from durably.engine.server import Signal

pytestmark = pytest.mark.timeout(120)


@durably.workflow
async def one_step(i: int) -> int:
    return await durably.step("s", lambda: i + 1)


async def test_a_fire_since_the_count_seen_ends_the_wait_at_once() -> None:
    signal = Signal()
    seen = signal.fired
    signal.fire()  # while the waiter was looking elsewhere
    await asyncio.wait_for(signal.wait(60, seen), 5)
    # Without a count, or with the current one, it waits for the next fire.
    waiting = asyncio.create_task(signal.wait(60, signal.fired))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    signal.fire()
    await asyncio.wait_for(waiting, 5)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_work_queued_just_after_the_worker_started_runs_at_once(
    backend: str, tmp_path: Path
) -> None:
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'wake.db'}"
    async with Engine([one_step], backend=url, poll_interval="60s") as engine:
        for round_ in range(3):
            stop = asyncio.Event()
            worker = asyncio.create_task(engine.run_worker(stop=stop))
            instance = f"w-{round_}"
            (await engine.queue(one_step, round_, id=instance)).unwrap()
            # Expected in milliseconds; a lost wake-up waits for the 60 s poll.
            output = (await asyncio.wait_for(engine.result(instance), 10)).unwrap()
            assert output == round_ + 1
            stop.set()
            await worker
