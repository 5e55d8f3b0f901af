"""Events survive SIGKILL: each is consumed exactly once, in order, and no workflow is
stranded.

Worker processes (``worker_child.py``) run ``collector`` workflows, each waiting for 5
events ``item`` and recording each payload in a step; this test's process sends the
events (payload ``n`` is the ``n``-th event of its instance) while a worker is killed
at a random moment:

- SQLite: one worker, killed and restarted (twice per trial);
- PostgreSQL: two workers, one of them killed (its instances are recovered by the other).

Then every workflow must complete with ``[0, 1, 2, 3, 4]``, every event of its inbox
must be consumed once (5 messages, all consumed), and every record a step ever made
(also by an execution that was killed before its commit) must pair a wait with its own
event: wait ``n`` saw payload ``n``, never another one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durably.domain.status import Completed
from durably.engine import Engine
from tests.integration.processes import backend_url, trials, wait_until_terminal
from tests.integration.support import ChildProcess, read_lines, spawn
from tests.integration.worker_child import LEASE, POLL, Collect, collector

pytestmark = pytest.mark.timeout(300)

INSTANCES = 8
EVENTS = 5


def side_of(folder: Path, iid: str) -> Path:
    return folder / f"{iid}.log"


def start_worker(url: str, folder: Path) -> ChildProcess:
    child = spawn("worker_child.py", [url], folder)
    child.expect("ready")
    return child


async def send_all(engine: Engine, ids: list[str], rng: random.Random) -> None:
    """Event ``n`` to every instance, round after round, with random gaps."""
    for n in range(EVENTS):
        for iid in ids:
            sent = (await engine.send_event(iid, "item", n, event_id=f"{iid}/{n}")).unwrap()
            assert sent.delivered
            assert not sent.duplicate
        await asyncio.sleep(rng.uniform(0.0, 0.08))


async def check(engine: Engine, ids: list[str], folder: Path) -> None:
    for iid in ids:
        await wait_until_terminal(engine, iid, within=LEASE.duration_ms / 1000 * 3 + 30)
    for iid in ids:
        status = (await engine.status(iid)).unwrap().status
        assert isinstance(status, Completed), (iid, status)
        assert (await engine.result(iid)).unwrap() == list(range(EVENTS)), iid
        inbox = await engine.host.read_inbox(iid)
        assert [(m.name, m.payload, m.consumed) for m in inbox] == [
            ("item", n, True) for n in range(EVENTS)
        ], iid
        for line in read_lines(side_of(folder, iid)):
            _, index, payload, _ = line.split()
            assert index == payload, f"{iid}: wait {index} took event {payload}"


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> AsyncIterator[str]:
    async with backend_url("sqlite", tmp_path, "event_crash") as url:
        yield url


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async with backend_url("postgres", tmp_path, "event_crash") as url:
        yield url


async def queue_collectors(engine: Engine, folder: Path) -> list[str]:
    ids = [f"c{i}" for i in range(INSTANCES)]
    for iid in ids:
        job = Collect(str(side_of(folder, iid)), EVENTS)
        (await engine.queue(collector, job, id=iid)).unwrap()
    return ids


@pytest.mark.parametrize("trial", trials(2, 50))
async def test_sqlite_worker_killed_and_restarted(
    trial: int, sqlite_url: str, tmp_path: Path
) -> None:
    rng = random.Random(f"sqlite-{trial}")
    async with Engine([collector], backend=sqlite_url, lease=LEASE, poll_interval=POLL) as engine:
        ids = await queue_collectors(engine, tmp_path)
        child = start_worker(sqlite_url, tmp_path)
        try:
            sending = asyncio.get_running_loop().create_task(send_all(engine, ids, rng))
            for _ in range(2):
                await asyncio.sleep(rng.uniform(0.02, 0.5))
                child.kill()
                await asyncio.sleep(rng.uniform(0.0, 0.2))
                child = start_worker(sqlite_url, tmp_path)
            await sending
            await check(engine, ids, tmp_path)
        finally:
            child.kill()


@pytest.mark.parametrize("trial", trials(1, 50))
async def test_postgres_two_workers_one_killed(trial: int, pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(f"postgres-{trial}")
    async with Engine([collector], backend=pg_url, lease=LEASE, poll_interval=POLL) as engine:
        ids = await queue_collectors(engine, tmp_path)
        children = [start_worker(pg_url, tmp_path) for _ in range(2)]
        try:
            sending = asyncio.get_running_loop().create_task(send_all(engine, ids, rng))
            await asyncio.sleep(rng.uniform(0.02, 0.5))
            rng.choice(children).kill()
            await sending
            await check(engine, ids, tmp_path)
        finally:
            for child in children:
                child.kill()
