"""The durably workflows of the comparison: trivial steps, logged steps for recovery, and a
wait for an event followed by a step for the event scenarios."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import durably
from durably.domain.status import Completed, Paused, is_terminal
from durably.engine import Engine
from scenarios.common import append_line, mark_stepped

RECOVERY_STEPS = 10
EVENT = "go"


def _constant(i: int) -> Callable[[], int]:
    return lambda: i


def _logged(key: str, i: int) -> Callable[[], int]:
    def body() -> int:
        append_line(os.environ["BENCH_SIDE_LOG"], f"{key} {i} {os.getpid()}")
        return i

    return body


@durably.workflow
async def trivial_steps(n: int) -> int:
    """``n`` steps that return their index; the workflow returns their sum."""
    total = 0
    for i in range(n):
        total += await durably.step(f"s{i}", _constant(i))
    return total


@durably.workflow
async def logged_steps(key: str) -> int:
    """``RECOVERY_STEPS`` steps, each noting its execution in the side log first."""
    total = 0
    for i in range(RECOVERY_STEPS):
        total += await durably.step(f"s{i}", _logged(key, i))
    return total


@durably.workflow
async def awaits_event(key: str) -> list[int]:
    """Wait for event ``EVENT``, then one step that notes when it ran (``mark_stepped``):
    ``[payload, the step's clock_ns]``."""
    payload = await durably.wait_for_event(EVENT)
    stepped = await durably.step("stepped", lambda: mark_stepped(key))
    return [payload, stepped]


@durably.workflow
async def one_step(i: int) -> int:
    """One step that returns ``i`` (a child of ``fan_out``)."""
    return await durably.step("s", _constant(i))


@durably.workflow
async def fan_out(n: int) -> int:
    """``n`` children of one step each, run at once; the sum of their outputs."""
    outputs = await durably.gather(*(durably.child(one_step, i) for i in range(n)))
    return sum(outputs)


def _nap(i: int, seconds: float) -> Callable[[], Any]:
    async def body() -> int:
        await asyncio.sleep(seconds)
        return i

    return body


@durably.workflow
async def parallel_naps(args: list[float]) -> int:
    """``args = [n, seconds]``: ``n`` steps at once, each awaiting ``seconds``; the sum of
    their indexes."""
    n, seconds = int(args[0]), args[1]
    outputs = await durably.gather(*(durably.step("nap", _nap(i, seconds)) for i in range(n)))
    return sum(outputs)


WORKFLOWS = [trivial_steps, logged_steps, awaits_event, one_step, fan_out, parallel_naps]


async def is_completed(engine: Engine, instance_id: str) -> bool:
    """Whether the instance completed (an instance that ended otherwise fails the run)."""
    status = (await engine.status(instance_id)).unwrap().status
    if status is not None and is_terminal(status) and not isinstance(status, Completed):
        raise RuntimeError(f"{instance_id} ended as {status}")
    return isinstance(status, Completed)


async def is_waiting(engine: Engine, instance_id: str) -> bool:
    """Whether the instance is paused on its wait for an event (its pause committed)."""
    status = (await engine.status(instance_id)).unwrap().status
    if status is not None and is_terminal(status):
        raise RuntimeError(f"{instance_id} ended as {status} before its event")
    return isinstance(status, Paused) and status.reason == "event"
