"""Child process of ``test_two_workers_sqlite.py``: one worker over a shared SQLite file.

Usage: ``python two_workers_child.py DB EXPECTED DEADLINE_SECONDS``

Says ``ready`` once its engine is open, waits for a ``go`` line on stdin, then runs
``engine.run_worker(concurrency=20)`` until ``EXPECTED`` instances are Completed or
the deadline passes, and says ``exit <fired>``.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs

import durably
from durably.engine import Engine, Lease
from tests.integration.support import append_line

__all__ = ["LEASE", "Job", "fan_out", "expected_output", "STEP_NAMES"]

LEASE = Lease(duration="5s", renew_every="1s")
STEP_NAMES = ("a", "b", "c")


@attrs.frozen
class Job:
    """The input of one instance: its number and the shared log file."""

    n: int
    log: str


def expected_output(n: int) -> str:
    """What instance number ``n`` returns."""
    return f"job-{n}:{n + 2 * n + 3 * n}"


def _logged(log: str, name: str, value: int) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        await asyncio.sleep(random.uniform(0.001, 0.005))
        info = durably.step_info()
        # One O_APPEND write per line: lines of concurrent processes never interleave.
        append_line(log, f"{info.workflow_id} {name} {os.getpid()}\n")
        return value

    return run


@durably.workflow(name="fan_out")
async def fan_out(job: Job) -> str:
    """Three steps, each logged with the pid that ran it."""
    a = await durably.step("a", _logged(job.log, "a", job.n))
    b = await durably.step("b", _logged(job.log, "b", 2 * job.n))
    c = await durably.step("c", _logged(job.log, "c", 3 * job.n))
    return f"job-{job.n}:{a + b + c}"


def _url_of(db: str) -> str:
    return "sqlite:///" + str(Path(db).resolve())


async def main(argv: list[str]) -> int:
    db, expected, seconds = argv[0], int(argv[1]), float(argv[2])
    url = _url_of(db)
    async with Engine([fan_out], backend=url, lease=LEASE) as engine:
        print("ready", flush=True)
        go = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if go.strip() != "go":
            return 3
        deadline = time.monotonic() + seconds
        stop = asyncio.Event()

        async def watch() -> None:
            while time.monotonic() < deadline:
                done = (await engine.list(status="Completed", limit=10_000)).unwrap()
                if len(done) >= expected:
                    break
                await asyncio.sleep(0.05)
            stop.set()

        watcher = asyncio.get_running_loop().create_task(watch())
        await engine.run_worker(concurrency=20, stop=stop)
        await watcher
        print(f"exit {time.monotonic() < deadline}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
