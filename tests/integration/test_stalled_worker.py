"""A worker stalled past its lease never runs a step on waking (semantics.md section 7).

A child worker runs a workflow whose steps are followed by a pause (a plain
``asyncio.sleep``, as a slow computation or a GC pause would be). Right after a step
committed, the worker is stopped (SIGSTOP) for longer than its lease; the test's own
engine takes the instance over once the lease has expired and runs it to the end. Then
the stalled worker is woken (SIGCONT): it must not run its next step, which the new
owner has committed already. Every step runs exactly once (the side log says who ran
what); before this check, the woken worker ran its next step a second time, and only its
commit was refused.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durably.domain.results import ok
from durably.domain.status import Completed
from durably.engine import Engine
from tests.integration.processes import (
    backend_url,
    step_lines,
    trials,
    wait_for_line_count,
    wait_until_terminal,
    workers,
)
from tests.integration.worker_child import LEASE, POLL, Job, paced

pytestmark = pytest.mark.timeout(120)

STEPS = 6
GAP_S = 0.6  # after each step: the window in which the worker is stopped


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with backend_url(request.param, tmp_path, "stall") as found:
        yield found


@pytest.mark.parametrize("trial", trials(1, 5))
async def test_a_worker_stopped_past_its_lease_never_runs_the_next_step(
    url: str, tmp_path: Path, trial: int
) -> None:
    side = tmp_path / f"side-{trial}.log"
    job = Job(str(side), STEPS, step_s=0.02, gap_s=GAP_S)
    async with Engine([paced], backend=url, lease=LEASE, poll_interval=POLL) as engine:
        ok(await engine.queue(paced, job, id="stalled"))
        with workers(url, tmp_path) as (child,):
            stopped_after = 1 + trial % 3
            await wait_for_line_count(side, "end", child.pid, stopped_after + 1)
            await asyncio.sleep(0.15)  # its commit is done: it waits in the gap
            child.signal(signal.SIGSTOP)
            try:
                # The lease expires; this engine takes the instance over and ends it.
                stop = asyncio.Event()
                worker = asyncio.create_task(engine.run_worker(stop=stop))
                await wait_until_terminal(engine, "stalled", within=LEASE.duration_ms / 1000 + 20)
                stop.set()
                await worker
            finally:
                child.signal(signal.SIGCONT)
            await asyncio.sleep(GAP_S + 1.0)  # the woken worker had time to go on
        status = ok(await engine.status("stalled")).status
    assert isinstance(status, Completed), status
    starts = Counter(index for index, _, _ in step_lines(side))
    assert starts == Counter(range(STEPS)), f"steps started more than once: {starts}"
    mine = {index for index, pid, _ in step_lines(side) if pid == os.getpid()}
    assert mine == set(range(stopped_after + 1, STEPS)), "the new owner ran the rest"
