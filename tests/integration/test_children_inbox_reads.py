"""A parent gathering many children reads its inbox a few times, not once per branch: the
branches that ask at the same time share one read (``ExecutionScope.read_inbox``); and
``engine.result`` of such a parent reads its status, not its list of children.

Every branch's ``result()`` takes its child's message from the inbox; before the reads
were shared, each of the N branches read the whole inbox (N reads of up to N messages:
about a million decodes for 1 000 children on PostgreSQL). The host's reads are counted
through a wrapper that also yields to the loop, so that the branches really overlap on
every backend (an in-memory read would otherwise never suspend).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import durably
from durably.engine import Engine, Lease
from durably.testing import ManualClock
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database

pytestmark = pytest.mark.timeout(90)

T0 = 1_767_225_600_000
CHILDREN = 50


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "memory":
        yield "memory://"
        return
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reads.db'}"
        return
    dsn = acquire_database()
    schema = f"inbox_reads_{abs(hash(request.node.name)) % 10**10}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


@durably.workflow
async def one_step(i: int) -> int:
    return await durably.step("s", lambda: i * 2)


@durably.workflow
async def fans_out(n: int) -> int:
    outputs = await durably.gather(*(durably.child(one_step, i) for i in range(n)))
    return sum(outputs)


async def test_a_gather_of_many_children_shares_its_inbox_reads(url: str) -> None:
    clock = ManualClock(T0)
    lease = Lease(duration="30s", renew_every="10s")
    async with Engine([one_step, fans_out], backend=url, clock=clock, lease=lease) as engine:
        host: Any = engine.host
        reads: list[str] = []
        read = host.pending_inbox

        async def counted(instance_id: str) -> Any:
            reads.append(instance_id)
            await asyncio.sleep(0.001)
            return await read(instance_id)

        host.pending_inbox = counted
        (await engine.start(fans_out, CHILDREN, id="parent")).unwrap()
        await engine.run_until_idle()
        assert (await engine.result("parent")).unwrap() == sum(2 * i for i in range(CHILDREN))
        # One read per execution of the parent (here 2), a few more at most; one per
        # branch (51 before the reads were shared) fails.
        assert 1 <= reads.count("parent") <= 5, reads.count("parent")


async def test_result_of_a_fan_out_waits_on_the_status_alone(url: str) -> None:
    """``engine.result`` wakes at every commit of its process; each wake-up reads the
    parent's status, not its whole report (which lists every child record)."""
    async with Engine([one_step, fans_out], backend=url) as engine:
        host: Any = engine.host
        listed: list[str] = []
        read_prefix = host.read_prefix

        async def counted(instance_id: str, prefix: str) -> Any:
            if prefix.startswith("child:"):
                listed.append(instance_id)
            return await read_prefix(instance_id, prefix)

        host.read_prefix = counted
        stop = asyncio.Event()
        worker = asyncio.create_task(engine.run_worker(stop=stop))
        (await engine.queue(fans_out, CHILDREN, id="parent")).unwrap()
        output = (await asyncio.wait_for(engine.result("parent"), 60)).unwrap()
        stop.set()
        await worker
        assert output == sum(2 * i for i in range(CHILDREN))
        assert listed == []
        # The report still names the children (it is what lists them).
        assert len((await engine.status("parent")).unwrap().children) == CHILDREN
        assert listed == ["parent"]
