"""Child process of ``test_crash_sqlite.py``: runs workflows on a SQLite file until killed.

Usage: ``python crash_child.py MODE DB SIDE ID [N]``

- ``run``: start a 20-step ``crash_twenty`` instance ``ID`` here (says ``ready`` first);
- ``pause``: start ``crash_sleeper`` ``ID``, which pauses in a sleep (says ``paused``);
- ``queue``: queue ``N`` ``crash_twenty`` instances ``ID-k`` (says ``queued``);
- ``worker``: queue ``N`` instances ``ID-k`` and work on them (says ``ready``);
- ``fenced``: start the slow ``crash_slow`` ``ID``, print its result and exit.

Every mode except ``fenced`` then waits to be killed. Each step appends
``"<step index> <pid>"`` to its side file (fsync'ed) before it returns.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import durably
from durably.engine import Engine, Lease
from tests.integration.support import append_line

__all__ = [
    "STEPS",
    "LEASE",
    "step_value",
    "expected_total",
    "twenty_steps",
    "sleeper",
    "slow",
    "WORKFLOWS",
]

STEPS = 20
SLEEPER_STEPS = 6
SLOW_STEPS = 6
SLOW_STEP_SECONDS = 0.25
LEASE = Lease(duration="2s", renew_every="500ms")


def step_value(index: int) -> int:
    """What step ``index`` returns."""
    return index * index + 1


def expected_total(steps: int) -> int:
    """The output of a workflow made of ``steps`` steps."""
    return sum(step_value(i) for i in range(steps))


def _recorder(side: str, index: int) -> Callable[[], Awaitable[int]]:
    async def record() -> int:
        await asyncio.sleep(random.uniform(0.001, 0.02))
        append_line(side, f"{index} {os.getpid()}\n")
        return step_value(index)

    return record


def _slow_recorder(side: str, index: int) -> Callable[[], Awaitable[int]]:
    async def record() -> int:
        append_line(side + ".begin", f"{index} {os.getpid()}\n")
        await asyncio.sleep(SLOW_STEP_SECONDS)
        append_line(side, f"{index} {os.getpid()}\n")
        return step_value(index)

    return record


@durably.workflow(name="crash_twenty")
async def twenty_steps(side: str) -> int:
    """20 steps, each recorded in the side file ``side``."""
    total = 0
    for i in range(STEPS):
        total += await durably.step(f"s{i}", _recorder(side, i))
    return total


@durably.workflow(name="crash_sleeper")
async def sleeper(side: str) -> int:
    """Three steps, a 300 ms durable sleep, three more steps."""
    total = 0
    for i in range(SLEEPER_STEPS):
        if i == SLEEPER_STEPS // 2:
            await durably.sleep("300ms")
        total += await durably.step(f"s{i}", _recorder(side, i))
    return total


@durably.workflow(name="crash_slow")
async def slow(side: str) -> int:
    """Six slow steps (250 ms each), recorded when they begin and when they end."""
    total = 0
    for i in range(SLOW_STEPS):
        total += await durably.step(f"s{i}", _slow_recorder(side, i))
    return total


WORKFLOWS: list[durably.WorkflowDefinition[Any, Any]] = [twenty_steps, sleeper, slow]


async def _forever() -> None:
    await asyncio.Event().wait()


def url_of(db: str) -> str:
    """The engine URL of the database file ``db``."""
    return "sqlite:///" + str(Path(db).resolve())


async def main(argv: list[str]) -> int:
    mode, db, side, instance_id = argv[:4]
    count = int(argv[4]) if len(argv) > 4 else 1
    url = url_of(db)
    async with Engine(WORKFLOWS, backend=url, lease=LEASE) as engine:
        if mode == "run":
            print("ready", flush=True)
            result = await engine.start(twenty_steps, side, id=instance_id)
            print(f"done {result}", flush=True)
        elif mode == "pause":
            result = await engine.start(sleeper, side, id=instance_id)
            print(f"paused {result}", flush=True)
        elif mode in ("queue", "worker"):
            for k in range(count):
                queued = await engine.queue(twenty_steps, f"{side}.{k}", id=f"{instance_id}-{k}")
                queued.unwrap()
            if mode == "queue":
                print("queued", flush=True)
            else:
                print("ready", flush=True)
                await engine.run_worker(concurrency=count)
        elif mode == "fenced":
            result = await engine.start(slow, side, id=instance_id)
            print(f"result {result}", flush=True)
            return 0
        else:
            print(f"unknown mode {mode!r}", file=sys.stderr)
            return 2
        await _forever()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
