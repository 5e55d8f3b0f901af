"""A cancel from another process, through the inbox: SQLite (processes on one file) and
PostgreSQL (worker processes), each with two child workers and the test's own engine.

- The cancel is answered at once, while a worker runs the instance; that execution
  stops at its next step: at most one step starts after the answer (the one whose
  commit brings the news back), and the instance ends ``Cancelled`` with the reason.
- A cancel sent while the worker that ran the instance lies dead (SIGKILL) is acted on
  by the worker that recovers it once the lease expires: ``Cancelled``, with no step
  run again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durably.domain.results import ok
from durably.domain.status import Cancelled
from durably.engine import Engine
from tests.integration.processes import (
    backend_url,
    step_lines,
    wait_for_line_count,
    wait_until_terminal,
    workers,
)
from tests.integration.worker_child import LEASE, POLL, Job, paced

pytestmark = pytest.mark.timeout(90)

STEPS = 200


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with backend_url(request.param, tmp_path, "inbox") as found:
        yield found


async def test_a_cancel_stops_a_run_in_another_process_at_its_next_step(
    url: str, tmp_path: Path
) -> None:
    side = tmp_path / "side.log"
    async with Engine([paced], backend=url, lease=LEASE, poll_interval=POLL) as engine:
        with workers(url, tmp_path, 2):
            ok(await engine.queue(paced, Job(str(side), STEPS), id="run"))
            await wait_for_line_count(side, "start", None, 4)
            asked = time.monotonic()
            result = ok(await engine.cancel("run", reason="enough"))
            answered_at = time.time()
            assert time.monotonic() - asked < 1.0, "the cancel waited"
            assert (result.cancelled, result.previous_status) == (True, "Running")
            took = await wait_until_terminal(engine, "run", within=10)
        status = ok(await engine.status("run")).status
    assert isinstance(status, Cancelled)
    assert status.reason == "enough"
    late = [s for s in step_lines(side) if s[2] > answered_at]
    assert len(late) <= 1, f"steps started after the cancel was answered: {late}"
    # The step in flight, its commit, and at worst one poll interval to see the end.
    assert took < 2 * Job("", 0).step_s + 1.0, f"cancelled {took:.2f}s after the answer"


async def test_a_cancel_sent_while_the_owner_lies_dead_is_acted_on_by_its_recoverer(
    url: str, tmp_path: Path
) -> None:
    side = tmp_path / "side.log"
    async with Engine([paced], backend=url, lease=LEASE, poll_interval=POLL) as engine:
        with workers(url, tmp_path, 2) as children:
            ok(await engine.queue(paced, Job(str(side), STEPS), id="dead"))
            (_, owner_pid, _), *_ = await wait_for_line_count(side, "start", None, 4)
            owner = next(c for c in children if c.pid == owner_pid)
            owner.kill()
            killed_at = time.time()
            asked = time.monotonic()
            result = ok(await engine.cancel("dead", reason="owner gone"))
            assert time.monotonic() - asked < 1.0, "the cancel waited for the lease"
            assert (result.cancelled, result.previous_status) == (True, "Running")
            row = await engine.host.instance("dead")
            assert row is not None
            assert row.lease_owner is not None  # still the dead owner's, until it expires
            await wait_until_terminal(engine, "dead", within=LEASE.duration_ms / 1000 + 10)
        status = ok(await engine.status("dead")).status
        steps = ok(await engine.steps("dead"))
    assert isinstance(status, Cancelled)
    assert status.reason == "owner gone"
    after = [s for s in step_lines(side) if s[2] > killed_at]
    assert after == [], f"steps ran after the kill: {after}"  # cancelled, not replayed
    started = {s[0] for s in step_lines(side)}
    assert {r.name for r in steps} <= {f"s{i}" for i in started}
