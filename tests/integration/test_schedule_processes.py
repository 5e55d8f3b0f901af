"""A schedule fires once per tick across worker processes, even when one is SIGKILLed in
the middle (while it runs a tick's instance): ``every="1s"`` for 10 s of real time on
PostgreSQL (4 workers) and on one SQLite file (2 workers). The instances are read from
the database afterwards: one per tick, none missing between the first and the last, 10
or 11 in the 10 s window."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durably.engine import Engine
from tests.integration.processes import backend_url
from tests.integration.support import ChildProcess, spawn
from tests.integration.worker_child import WORKFLOWS

pytestmark = pytest.mark.timeout(180)

WINDOW_S = 10.0


@pytest.fixture(params=[("sqlite", 2), ("postgres", 4)], ids=["sqlite-2", "postgres-4"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    kind, count = request.param
    async with backend_url(kind, tmp_path, "schedules") as url:
        yield url, count


def tick_seconds(instance_ids: list[str]) -> list[int]:
    """The tick time (epoch s) of each ``sec@<ISO 8601>`` id, sorted."""
    found = []
    for iid in instance_ids:
        schedule, _, when = iid.partition("@")
        assert schedule == "sec", iid
        moment = datetime.datetime.fromisoformat(when)
        assert moment.tzinfo is not None, iid
        assert moment.microsecond == 0, iid
        found.append(int(moment.timestamp()))
    return sorted(found)


async def all_completed(engine: Engine, within: float) -> list[str]:
    """Wait until every instance of ``ticked`` is Completed; their ids."""
    deadline = time.monotonic() + within
    while True:
        rows = (await engine.list(workflow="ticked", limit=10_000)).unwrap()
        if rows and all(r.status == "Completed" for r in rows):
            return [r.id for r in rows]
        assert time.monotonic() < deadline, f"not all completed: {rows}"
        await asyncio.sleep(0.1)


async def kill_a_holder(engine: Engine, children: list[ChildProcess]) -> str:
    """SIGKILL a worker while it runs a tick's instance (its step takes 0.4 s); the id of
    that instance."""
    by_pid = {child.pid: child for child in children}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for summary in (await engine.list(status="Running", workflow="ticked")).unwrap():
            row = await engine.host.instance(summary.id)
            owner = None if row is None else row.lease_owner
            pid = None if owner is None else int(owner.split(":")[1])
            if pid in by_pid:
                by_pid[pid].kill()
                return summary.id
        await asyncio.sleep(0.02)
    raise AssertionError("no worker was seen running a tick's instance")


async def test_every_second_one_instance_per_tick_across_workers_and_a_kill(
    setup: tuple[str, int], tmp_path: Path
) -> None:
    url, count = setup
    declared = json.dumps([{"id": "sec", "every": "1s"}])
    children: list[ChildProcess] = [
        spawn("worker_child.py", [url, "[]", declared], tmp_path) for _ in range(count)
    ]
    try:
        for child in children:
            child.expect("ready")
        began = time.time()
        async with Engine(WORKFLOWS, backend=url) as engine:
            await asyncio.sleep(WINDOW_S / 2)
            killed = await kill_a_holder(engine, children)
            await asyncio.sleep(max(0.0, began + WINDOW_S - time.time()))
            ended = time.time()
            # The ticks of the window started, and the one the killed worker held ran
            # again elsewhere once its lease (2 s) expired.
            await asyncio.sleep(1.0)
            ids = await all_completed(engine, within=30)
    finally:
        for child in children:
            child.kill()
    seconds = tick_seconds(ids)
    assert len(seconds) == len(set(seconds)), "two instances for one tick"
    assert seconds == list(range(seconds[0], seconds[-1] + 1)), "a tick was missed"
    assert killed in ids
    in_window = [s for s in seconds if began < s <= ended]
    assert len(in_window) in (10, 11), (began, ended, in_window)
