"""Child process of ``test_cancel_processes.py``: a worker over a shared backend.

Usage: ``python inbox_child.py URL``

Opens an engine on ``URL`` (a short lease, a 100 ms poll interval), says ``ready``, and
runs a worker until killed or told ``stop`` on stdin. The workflow ``paced`` runs
``n`` steps of 50 ms; each step appends ``"start <index> <pid> <wall time>"`` to the
side file (fsync'ed) when it begins, and ``"end <index> <pid> <wall time>"`` when it
returns.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable

from tests.integration.support import append_line

import durably
from durably.engine import Engine, Lease

__all__ = ["LEASE", "POLL", "STEP_S", "paced"]

LEASE = Lease(duration="2s", renew_every="500ms")
POLL = "100ms"
STEP_S = 0.05


def _paced_step(side: str, index: int) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        append_line(side, f"start {index} {os.getpid()} {time.time()}\n")
        await asyncio.sleep(STEP_S)
        append_line(side, f"end {index} {os.getpid()} {time.time()}\n")
        return index

    return run


@durably.workflow
async def paced(job: list[str | int]) -> int:
    """``job`` is ``[side file, number of steps]``."""
    side, steps = str(job[0]), int(job[1])
    total = 0
    for i in range(steps):
        total += await durably.step(f"s{i}", _paced_step(side, i))
    return total


async def main(url: str) -> int:
    async with Engine([paced], backend=url, lease=LEASE, poll_interval=POLL) as engine:
        stop = asyncio.Event()
        worker = asyncio.get_running_loop().create_task(engine.run_worker(stop=stop))
        print("ready", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stop.set()
        await worker
        print(f"stopped {line.strip()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
