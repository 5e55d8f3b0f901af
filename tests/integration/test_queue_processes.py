"""Queue limits hold across worker processes: SQLite (2 processes on one file) and
PostgreSQL (4 worker processes). Each workflow's one step logs its start and end
(``worker_child.slotted``); the log and the database are checked afterwards.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import attrs
import psycopg
import pytest

from durably import Queue
from durably.domain.status import Completed
from durably.engine import Engine
from tests.integration.processes import backend_url
from tests.integration.support import ChildProcess, read_lines, spawn
from tests.integration.worker_child import LEASE, POLL, WORKFLOWS, Slot, slotted

pytestmark = pytest.mark.timeout(180)


@attrs.frozen
class Run:
    """One execution of a step, from the side log."""

    instance: str
    partition: str
    pid: int
    start: float
    end: float


def runs(side: Path) -> list[Run]:
    """Every step execution that ended, paired start with end."""
    open_: dict[tuple[str, int], tuple[str, float]] = {}
    done: list[Run] = []
    for line in read_lines(side):
        what, instance, partition, pid, at = line.split()
        if what == "start":
            open_[(instance, int(pid))] = (partition, float(at))
        else:
            part, began = open_.pop((instance, int(pid)))
            done.append(Run(instance, part, int(pid), began, float(at)))
    return done


def most_at_once(intervals: list[Run]) -> int:
    """The largest number of intervals open at one moment."""
    edges = sorted([(r.start, 1) for r in intervals] + [(r.end, -1) for r in intervals])
    current = highest = 0
    for _, change in edges:  # an end sorts before a start at the same instant
        current += change
        highest = max(highest, current)
    return highest


@contextmanager
def workers(url: str, folder: Path, count: int, queues: list[Queue]) -> Iterator[None]:
    declared = json.dumps([attrs.asdict(q) for q in queues])
    children: list[ChildProcess] = [
        spawn("worker_child.py", [url, declared], folder) for _ in range(count)
    ]
    try:
        for child in children:
            child.expect("ready")
        yield
    finally:
        for child in children:
            child.kill()


async def all_completed(engine: Engine, ids: list[str], within: float) -> None:
    deadline = time.monotonic() + within
    for iid in ids:
        while True:
            status = (await engine.status(iid)).unwrap().status
            if isinstance(status, Completed):
                break
            assert time.monotonic() < deadline, f"{iid} did not complete: {status}"
            await asyncio.sleep(0.05)


@pytest.fixture(params=[("sqlite", 2), ("postgres", 4)], ids=["sqlite-2", "postgres-4"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    kind, count = request.param
    async with backend_url(kind, tmp_path, "queues") as url:
        yield url, count


def slot_times(url: str, queue: str) -> list[int]:
    """When each instance of ``queue`` took its slot (epoch ms), from the database."""
    query = "SELECT slot_at FROM {}instances WHERE queue = %s AND slot_at IS NOT NULL"
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(query.format("").replace("%s", "?"), (queue,)).fetchall()
    else:
        parts = urlsplit(url)
        schema = parse_qs(parts.query)["schema"][0]
        with psycopg.connect(parts._replace(query="").geturl()) as conn:
            rows = conn.execute(query.format(f"{schema}."), (queue,)).fetchall()
    return sorted(int(r[0]) for r in rows)


async def test_concurrency_caps_the_instances_running_at_once(
    setup: tuple[str, int], tmp_path: Path
) -> None:
    url, count = setup
    side = tmp_path / "side.log"
    # Two at most per worker: reaching three at once takes two workers, each counting the
    # slots the other holds.
    queues = [Queue("jobs", concurrency=3, worker_concurrency=2)]
    async with Engine(
        WORKFLOWS, backend=url, lease=LEASE, poll_interval=POLL, queues=queues
    ) as engine:
        ids = [f"j{i}" for i in range(200)]
        for iid in ids:
            (await engine.queue(slotted, Slot(str(side), 0.02), id=iid, queue="jobs")).unwrap()
        with workers(url, tmp_path, count, queues):
            await all_completed(engine, ids, within=120)
    done = runs(side)
    assert {r.instance for r in done} == set(ids)
    assert (
        most_at_once(done) == 3
    )  # never more, and the slots were used (a cap, not a queue of one)
    assert len({r.pid for r in done}) > 1, "every run was in one worker"


async def test_partition_concurrency_one_key_at_a_time_keys_at_once(
    setup: tuple[str, int], tmp_path: Path
) -> None:
    url, count = setup
    side = tmp_path / "side.log"
    queues = [Queue("orders", partition_concurrency=1)]
    async with Engine(
        WORKFLOWS, backend=url, lease=LEASE, poll_interval=POLL, queues=queues
    ) as engine:
        ids = []
        for i in range(60):
            key = f"customer-{i % 6}"
            job = Slot(str(side), 0.02, partition=key)
            iid = f"o{i}"
            ids.append(iid)
            (await engine.queue(slotted, job, id=iid, queue="orders", partition_key=key)).unwrap()
        with workers(url, tmp_path, count, queues):
            await all_completed(engine, ids, within=120)
    done = runs(side)
    for key in {r.partition for r in done}:
        assert most_at_once([r for r in done if r.partition == key]) == 1, key
    assert most_at_once(done) > 1, "different keys never ran at once"


async def test_rate_limits_the_starts_in_any_window(setup: tuple[str, int], tmp_path: Path) -> None:
    url, count = setup
    side = tmp_path / "side.log"
    queues = [Queue("emails", rate="20/1s")]
    async with Engine(
        WORKFLOWS, backend=url, lease=LEASE, poll_interval=POLL, queues=queues
    ) as engine:
        ids = [f"e{i}" for i in range(50)]
        for iid in ids:
            (await engine.queue(slotted, Slot(str(side), 0.001), id=iid, queue="emails")).unwrap()
        with workers(url, tmp_path, count, queues):
            await all_completed(engine, ids, within=120)
    starts = slot_times(url, "emails")
    assert len(starts) == 50
    for i, at in enumerate(starts):
        in_window = [t for t in starts[: i + 1] if t > at - 1000]
        assert len(in_window) <= 20, f"{len(in_window)} starts in the second up to {at}"
    assert starts[-1] - starts[0] >= 2000  # 50 starts at 20 per second take 2 s at least
