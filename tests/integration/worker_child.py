"""Child process of the multi-process tests: a worker over a shared backend.

Usage: ``python worker_child.py URL [QUEUES [SCHEDULES]]`` (``QUEUES``: a JSON list of the
keyword arguments of ``durably.Queue``, the engine's queues; ``SCHEDULES``: a JSON list of
the keyword arguments of ``durably.Schedule`` but the workflow, which is ``ticked``)

Opens an engine on ``URL`` (a short lease, a 100 ms poll interval), says ``ready``, and
runs a worker until killed or told ``stop`` on stdin. The workflow ``paced`` takes
``Job(side, steps, step_s, gap_s)``: ``steps`` steps of ``step_s`` seconds, with a pause
of ``gap_s`` seconds (a plain ``asyncio.sleep``, not durable) after each; each step
appends ``"start <index> <pid> <wall time>"`` to the side file (fsync'ed) when it
begins, and ``"end <index> <pid> <wall time>"`` when it returns. The workflow returns
the sum of the step indexes.

The workflow ``collector`` takes ``Collect(side, count)``: ``count`` times, it waits for
an event ``item`` and records its payload in a step (which appends ``"got <index>
<payload> <pid>"`` to the side file); it returns the payloads in the order it got them.

The workflow ``fixable`` takes ``Fixable(side, steps, bug)``: ``steps`` logged steps
(``run <instance> s<k> <pid> <wall time>``); ``s2`` fails while the file ``bug`` exists.

The workflow ``fan_parent`` takes ``Fan(side, children, steps)``: a step ``prepare``,
then ``children`` children ``fan_child`` at once (``gather``), each of ``steps`` steps,
then a step ``total`` that sums their outputs. Every step appends ``"run <instance>
<step> <pid> <wall time>"`` to the side file when it runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

import durably
from durably import Queue
from durably.engine import Engine, Lease
from tests.integration.support import append_line

__all__ = [
    "LEASE",
    "POLL",
    "Job",
    "paced",
    "Collect",
    "collector",
    "Fan",
    "fan_parent",
    "fan_child",
    "Slot",
    "slotted",
    "Fixable",
    "fixable",
    "ticked",
    "WORKFLOWS",
]

LEASE = Lease(duration="2s", renew_every="500ms")
POLL = "100ms"


@attrs.frozen
class Job:
    """What ``paced`` runs: its side file, how many steps, how long each, the gaps."""

    side: str
    steps: int
    step_s: float = 0.05
    gap_s: float = 0.0


def _paced_step(job: Job, index: int) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        append_line(job.side, f"start {index} {os.getpid()} {time.time()}\n")
        await asyncio.sleep(job.step_s)
        append_line(job.side, f"end {index} {os.getpid()} {time.time()}\n")
        return index

    return run


@durably.workflow
async def paced(job: Job) -> int:
    """``job.steps`` logged steps, with ``job.gap_s`` after each."""
    total = 0
    for i in range(job.steps):
        total += await durably.step(f"s{i}", _paced_step(job, i))
        if job.gap_s:
            await asyncio.sleep(job.gap_s)
    return total


@attrs.frozen
class Collect:
    """What ``collector`` runs: its side file, and how many events it waits for."""

    side: str
    count: int


def _record(job: Collect, index: int, payload: int) -> Callable[[], int]:
    def run() -> int:
        append_line(job.side, f"got {index} {payload} {os.getpid()}\n")
        return payload

    return run


@durably.workflow
async def collector(job: Collect) -> list[int]:
    """``job.count`` events ``item``, each recorded by a step; their payloads in order."""
    got = []
    for i in range(job.count):
        payload = await durably.wait_for_event("item")
        got.append(await durably.step(f"record{i}", _record(job, i, int(payload))))
    return got


@attrs.frozen
class Fan:
    """What ``fan_parent`` runs: its side file, how many children, steps per child."""

    side: str
    children: int
    steps: int = 3
    index: int = 0
    """For a child: its place among its siblings."""


def _logged(side: str, step: str, value: int) -> Callable[[], int]:
    def run() -> int:
        me = durably.context().workflow_id
        append_line(side, f"run {me} {step} {os.getpid()} {time.time()}\n")
        return value

    return run


@durably.workflow
async def fan_child(job: Fan) -> int:
    """``job.steps`` logged steps; step ``k`` returns ``job.index * 10 + k``."""
    total = 0
    for k in range(job.steps):
        total += await durably.step(f"s{k}", _logged(job.side, f"s{k}", job.index * 10 + k))
    return total


@durably.workflow
async def fan_parent(job: Fan) -> int:
    """``prepare``, ``job.children`` children at once, then ``total`` (their sum)."""
    count = await durably.step("prepare", _logged(job.side, "prepare", job.children))
    outputs = await durably.gather(
        *(durably.child(fan_child, attrs.evolve(job, index=i)) for i in range(count))
    )
    return await durably.step("total", _logged(job.side, "total", sum(outputs)))


@attrs.frozen
class Slot:
    """What ``slotted`` runs: its side file, how long its one step awaits, its partition."""

    side: str
    step_s: float = 0.02
    partition: str = "-"


@durably.workflow
async def slotted(job: Slot) -> str:
    """One step that logs ``start``/``end <instance> <partition> <pid> <wall time>``."""

    async def work() -> str:
        me = durably.context().workflow_id
        append_line(job.side, f"start {me} {job.partition} {os.getpid()} {time.time()}\n")
        await asyncio.sleep(job.step_s)
        append_line(job.side, f"end {me} {job.partition} {os.getpid()} {time.time()}\n")
        return me

    return await durably.step("work", work)


@attrs.frozen
class Fixable:
    """What ``fixable`` runs: its side file, how many steps, and the file of its bug."""

    side: str
    steps: int
    bug: str
    """While this file exists, step ``s2`` fails (no retry): the workflow fails there."""


def _bug_present(job: Fixable) -> bool:
    return os.path.exists(job.bug)  # a stat of a local file: too short to matter


def _fixable_step(job: Fixable, k: int) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        me = durably.context().workflow_id
        append_line(job.side, f"run {me} s{k} {os.getpid()} {time.time()}\n")
        if k == 2 and _bug_present(job):
            raise ValueError("the bug in s2")
        await asyncio.sleep(0.02)
        return k

    return run


@durably.workflow
async def fixable(job: Fixable) -> int:
    """``job.steps`` logged steps ``s<k>`` returning ``k``; ``s2`` fails while the bug is."""
    total = 0
    for k in range(job.steps):
        total += await durably.step(f"s{k}", _fixable_step(job, k))
    return total


@durably.workflow
async def ticked(tick: durably.Tick) -> str:
    """What the schedules of the multi-process tests start: one step of 0.4 s that
    returns the tick's time."""

    async def work() -> str:
        await asyncio.sleep(0.4)
        return tick.scheduled_at.isoformat()

    return await durably.step("at", work)


WORKFLOWS: list[durably.WorkflowDefinition[Any, Any]] = [
    paced,
    collector,
    fan_parent,
    fan_child,
    slotted,
    fixable,
    ticked,
]


async def main(
    url: str, queues: list[Queue], schedules: list[durably.Schedule] | None = None
) -> int:
    async with Engine(
        WORKFLOWS,
        backend=url,
        lease=LEASE,
        poll_interval=POLL,
        queues=queues,
        schedules=schedules or [],
    ) as engine:
        stop = asyncio.Event()
        worker = asyncio.get_running_loop().create_task(engine.run_worker(stop=stop))
        print("ready", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stop.set()
        await worker
        print(f"stopped {line.strip()}", flush=True)
    return 0


if __name__ == "__main__":
    declared = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
    scheduled = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
    sys.exit(
        asyncio.run(
            main(
                sys.argv[1],
                [Queue(**q) for q in declared],
                [durably.Schedule(workflow=ticked, **s) for s in scheduled],
            )
        )
    )
