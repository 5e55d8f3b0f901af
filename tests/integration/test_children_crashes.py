"""A fan-out survives SIGKILL: the sum is right, each child exists once, no committed step
of the parent or of a child runs again, nothing is stranded.

Worker processes (``worker_child.py``) run ``fan_parent``: a step, 50 children of 3
steps each at once (``gather``), and a step that sums their outputs. Every step logs
``run <instance> <step> <pid> <time>``. A worker is killed at a random moment; right
after the kill, the steps committed so far are read from the store; after that moment
no log line may show one of them running again.

- SQLite: one worker, killed and restarted (twice per trial);
- PostgreSQL: two workers, one of them killed (the other goes on with everything).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durably.domain.status import Completed
from durably.engine import Engine
from tests.integration.processes import backend_url, trials
from tests.integration.support import ChildProcess, read_lines, spawn
from tests.integration.worker_child import LEASE, POLL, Fan, fan_child, fan_parent

pytestmark = pytest.mark.timeout(300)

CHILDREN = 50
STEPS = 3
EXPECTED = sum(sum(i * 10 + k for k in range(STEPS)) for i in range(CHILDREN))
WORKFLOWS = [fan_parent, fan_child]


def start_worker(url: str, folder: Path) -> ChildProcess:
    child = spawn("worker_child.py", [url], folder)
    child.expect("ready")
    return child


def runs(side: Path) -> list[tuple[str, str, int, float]]:
    """``(instance, step, pid, time)`` of every step run logged so far."""
    found = []
    for line in read_lines(side):
        _, instance, step, pid, at = line.split()
        found.append((instance, step, int(pid), float(at)))
    return found


async def committed(engine: Engine) -> dict[str, set[str]]:
    """Per instance, the steps committed in the store now."""
    done: dict[str, set[str]] = {}
    for row in (await engine.list(limit=1000)).unwrap():
        steps = (await engine.steps(row.id)).unwrap()
        done[row.id] = {s.name for s in steps if s.completed_at is not None}
    return done


async def kill_at_random(
    child: ChildProcess, side: Path, rng: random.Random, engine: Engine
) -> tuple[float, dict[str, set[str]]]:
    """Kill ``child`` once the log has a random number of runs; when the store was read
    right after, and what it had committed."""
    target = rng.randint(1, 1 + CHILDREN * STEPS)
    deadline = time.monotonic() + 60
    for _ in range(100_000):
        if len(runs(side)) >= target or time.monotonic() > deadline:
            break
        await asyncio.sleep(rng.uniform(0.0, 0.01))
    child.kill()
    read_at = time.time()
    return read_at, await committed(engine)


async def finish(engine: Engine, iid: str) -> None:
    deadline = time.monotonic() + LEASE.duration_ms / 1000 * 4 + 60
    while time.monotonic() < deadline:
        status = (await engine.status(iid)).unwrap().status
        if isinstance(status, Completed):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{iid} never completed: {(await engine.status(iid)).unwrap()}")


def check(side: Path, snapshots: list[tuple[float, dict[str, set[str]]]], rows: list[str]) -> None:
    """Nothing committed before a snapshot runs after it; each child exists once."""
    logged = runs(side)
    for read_at, done in snapshots:
        again = [
            (instance, step, pid)
            for instance, step, pid, at in logged
            if at > read_at and step in done.get(instance, set())
        ]
        assert again == [], f"committed steps ran again after the kill: {again[:5]}"
    children = sorted(r for r in rows if r != "fan")
    assert children == sorted(
        ["fan/fan_child", *(f"fan/fan_child#{i}" for i in range(2, CHILDREN + 1))]
    )


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> AsyncIterator[str]:
    async with backend_url("sqlite", tmp_path, "fan_crash") as url:
        yield url


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async with backend_url("postgres", tmp_path, "fan_crash") as url:
        yield url


async def ended(engine: Engine, side: Path) -> list[str]:
    assert (await engine.result("fan")).unwrap() == EXPECTED
    rows = [row.id for row in (await engine.list(limit=1000)).unwrap()]
    for iid in rows:
        assert isinstance((await engine.status(iid)).unwrap().status, Completed), iid
    totals = [r for r in runs(side) if r[0] == "fan" and r[1] == "total"]
    assert totals, "the parent's last step never ran"
    return rows


@pytest.mark.parametrize("trial", trials(2, 30))
async def test_sqlite_worker_killed_and_restarted(
    trial: int, sqlite_url: str, tmp_path: Path
) -> None:
    rng = random.Random(f"fan-sqlite-{trial}")
    side = tmp_path / "runs.log"
    async with Engine(WORKFLOWS, backend=sqlite_url, lease=LEASE, poll_interval=POLL) as engine:
        (await engine.queue(fan_parent, Fan(str(side), CHILDREN, STEPS), id="fan")).unwrap()
        child = start_worker(sqlite_url, tmp_path)
        snapshots = []
        try:
            for _ in range(2):
                snapshots.append(await kill_at_random(child, side, rng, engine))
                child = start_worker(sqlite_url, tmp_path)
            await finish(engine, "fan")
        finally:
            child.kill()
        check(side, snapshots, await ended(engine, side))


@pytest.mark.parametrize("trial", trials(1, 30))
async def test_postgres_two_workers_one_killed(trial: int, pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(f"fan-postgres-{trial}")
    side = tmp_path / "runs.log"
    async with Engine(WORKFLOWS, backend=pg_url, lease=LEASE, poll_interval=POLL) as engine:
        (await engine.queue(fan_parent, Fan(str(side), CHILDREN, STEPS), id="fan")).unwrap()
        children = [start_worker(pg_url, tmp_path) for _ in range(2)]
        try:
            snapshot = await kill_at_random(rng.choice(children), side, rng, engine)
            await finish(engine, "fan")
        finally:
            for child in children:
                child.kill()
        check(side, [snapshot], await ended(engine, side))
