"""The durably workflows of the comparison: trivial steps, and logged steps for recovery."""

from __future__ import annotations

import os
from collections.abc import Callable

import durably
from durably.domain.status import Completed, is_terminal
from durably.engine import Engine
from scenarios.common import append_line

RECOVERY_STEPS = 10


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


WORKFLOWS = [trivial_steps, logged_steps]


async def is_completed(engine: Engine, instance_id: str) -> bool:
    """Whether the instance completed (an instance that ended otherwise fails the run)."""
    status = (await engine.status(instance_id)).unwrap().status
    if status is not None and is_terminal(status) and not isinstance(status, Completed):
        raise RuntimeError(f"{instance_id} ended as {status}")
    return isinstance(status, Completed)
