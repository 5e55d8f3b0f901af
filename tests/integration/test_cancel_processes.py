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

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.integration.inbox_child import LEASE, POLL, STEP_S, paced
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database
from tests.integration.support import ChildProcess, db_url, read_lines, spawn

from durably.domain.results import ok
from durably.domain.status import Cancelled, is_terminal
from durably.engine import Engine

pytestmark = pytest.mark.timeout(90)

STEPS = 200


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield db_url(tmp_path / "inbox.db")
        return
    dsn = acquire_database()
    schema = f"inbox_{int(time.time() * 1000) % 10**9}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


@contextmanager
def workers(url: str, folder: Path, count: int = 2) -> Iterator[list[ChildProcess]]:
    children = [spawn("inbox_child.py", [url], folder) for _ in range(count)]
    try:
        for child in children:
            child.expect("ready")
        yield children
    finally:
        for child in children:
            child.kill()


def starts(side: Path) -> list[tuple[int, int, float]]:
    """``(step, pid, wall time)`` of every step start in the side file."""
    found = []
    for line in read_lines(side):
        kind, index, pid, at = line.split()
        if kind == "start":
            found.append((int(index), int(pid), float(at)))
    return found


async def wait_for_step(side: Path, index: int, within: float = 30) -> tuple[int, int, float]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for start in starts(side):
            if start[0] >= index:
                return start
        await asyncio.sleep(0.01)
    raise AssertionError(f"step {index} never started; side file: {read_lines(side)}")


async def wait_for_end(engine: Engine, iid: str, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        status = ok(await engine.status(iid)).status
        if status is not None and is_terminal(status):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"{iid} did not end within {within}s: {ok(await engine.status(iid))}")


async def test_a_cancel_stops_a_run_in_another_process_at_its_next_step(
    url: str, tmp_path: Path
) -> None:
    side = tmp_path / "side.log"
    async with Engine([paced], backend=url, lease=LEASE, poll_interval=POLL) as engine:
        with workers(url, tmp_path):
            ok(await engine.queue(paced, [str(side), STEPS], id="run"))
            await wait_for_step(side, 3)
            asked = time.monotonic()
            result = ok(await engine.cancel("run", reason="enough"))
            answered_at = time.time()
            assert time.monotonic() - asked < 1.0, "the cancel waited"
            assert (result.cancelled, result.previous_status) == (True, "Running")
            took = await wait_for_end(engine, "run", within=10)
        status = ok(await engine.status("run")).status
    assert isinstance(status, Cancelled)
    assert status.reason == "enough"
    late = [s for s in starts(side) if s[2] > answered_at]
    assert len(late) <= 1, f"steps started after the cancel was answered: {late}"
    # The step in flight, its commit, and at worst one poll interval to see the end.
    assert took < 2 * STEP_S + 1.0, f"cancelled {took:.2f}s after the answer"


async def test_a_cancel_sent_while_the_owner_lies_dead_is_acted_on_by_its_recoverer(
    url: str, tmp_path: Path
) -> None:
    side = tmp_path / "side.log"
    async with Engine([paced], backend=url, lease=LEASE, poll_interval=POLL) as engine:
        with workers(url, tmp_path) as children:
            ok(await engine.queue(paced, [str(side), STEPS], id="dead"))
            _, owner_pid, _ = await wait_for_step(side, 3)
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
            await wait_for_end(engine, "dead", within=LEASE.duration_ms / 1000 + 10)
        status = ok(await engine.status("dead")).status
        steps = ok(await engine.steps("dead"))
    assert isinstance(status, Cancelled)
    assert status.reason == "owner gone"
    after = [s for s in starts(side) if s[2] > killed_at]
    assert after == [], f"steps ran after the kill: {after}"  # cancelled, not replayed
    started = {s[0] for s in starts(side)}
    assert {r.name for r in steps} <= {f"s{i}" for i in started}
