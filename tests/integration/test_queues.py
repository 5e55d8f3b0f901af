"""Queues in one process (coordination.md section 3), on memory, SQLite and PostgreSQL:
priority and FIFO, dedupe, delay and start_at, which queues a worker serves, its
``worker_concurrency``, and children on a queue. The engines run on a ``ManualClock``
and are driven by ``run_until_idle`` unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from returns.result import Failure

import durably
from durably import Queue
from durably.domain.status import Completed, Queued
from durably.engine import Engine, Lease
from durably.testing import EngineFactory, ManualClock, VirtualClock
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database

pytestmark = pytest.mark.timeout(90)

T0 = 1_767_225_600_000
LEASE = Lease(duration="30s", renew_every="10s")
order: list[str] = []


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "memory":
        yield "memory://"
        return
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queues.db'}"
        return
    dsn = acquire_database()
    schema = f"queues_{abs(hash(request.node.name)) % 10**10}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


def noted(tag: str) -> str:
    order.append(tag)
    return tag


@durably.workflow
async def note(tag: str) -> str:
    return await durably.step("note", lambda: noted(tag))


@durably.workflow
async def holds(tag: str) -> str:
    await durably.step("started", lambda: order.append(f"start {tag}"))
    await durably.sleep("1h")  # a sleeping instance keeps its slot
    return tag


@durably.workflow
async def parent_on_queue(n: int) -> int:
    said: str = await durably.child(note, f"child {n}", queue="serial")
    return len(said)


WORKFLOWS: list[durably.WorkflowDefinition[Any, Any]] = [note, holds, parent_on_queue]
QUEUES = [Queue("serial", concurrency=1), Queue("local", worker_concurrency=2)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def engine(url: str, clock: ManualClock) -> AsyncIterator[Engine]:
    order.clear()
    async with Engine(WORKFLOWS, backend=url, clock=clock, lease=LEASE, queues=QUEUES) as opened:
        yield opened


async def test_lower_priority_first_then_first_in_first_out(engine: Engine) -> None:
    # One millisecond for all (a manual clock), and ids in the reverse order of creation:
    # first in first out is the order of creation, not of time or id.
    tags = [("a", 5), ("b", 1), ("c", 3), ("d", 1), ("e", 5), ("f", 0)]
    for n, (tag, priority) in enumerate(tags):
        instance_id = f"{len(tags) - n}-{tag}"
        (await engine.queue(note, tag, id=instance_id, queue="serial", priority=priority)).unwrap()
    while await engine.run_until_idle(concurrency=1):
        pass
    assert order == ["f", "b", "d", "c", "a", "e"]


async def test_a_slot_is_held_while_sleeping_and_freed_by_the_end(
    engine: Engine, clock: ManualClock
) -> None:
    (await engine.queue(holds, "first", id="h1", queue="serial")).unwrap()
    (await engine.queue(holds, "second", id="h2", queue="serial")).unwrap()
    await engine.run_until_idle()
    assert order == ["start first"]  # the sleeper keeps the one slot
    assert isinstance((await engine.status("h2")).unwrap().status, Queued)
    stats = {s.name: s for s in (await engine.queue_stats()).unwrap()}
    assert (stats["serial"].waiting, stats["serial"].running) == (1, 1)
    assert stats["serial"].queue == Queue("serial", concurrency=1)
    clock.time_ms += 3_600_000
    await engine.run_until_idle()  # h1 ends: its slot goes to h2
    assert order == ["start first", "start second"]


async def test_a_dedupe_id_is_refused_while_held_and_free_after(engine: Engine) -> None:
    first = await engine.queue(note, "x", id="d1", queue="serial", dedupe_id="order-7")
    assert first.unwrap().status == Queued(T0)
    again = await engine.queue(note, "y", id="d2", queue="serial", dedupe_id="order-7")
    assert isinstance(again, Failure)
    error = again.failure()
    assert error.operation == "queue"
    cause = error.cause
    assert isinstance(cause, durably.DuplicateWorkflowError)
    assert (cause.queue, cause.dedupe_id, cause.existing_id) == ("serial", "order-7", "d1")
    assert (await engine.status("d2")).unwrap().status is None  # nothing was queued
    other = await engine.queue(note, "z", id="d3", queue="local", dedupe_id="order-7")
    assert other.unwrap().status == Queued(T0)  # dedupe ids are per queue
    await engine.run_until_idle()
    assert isinstance((await engine.status("d1")).unwrap().status, Completed)
    after = await engine.queue(note, "w", id="d4", queue="serial", dedupe_id="order-7")
    assert after.unwrap().status == Queued(T0)


async def test_delay_and_start_at_are_not_started_early(engine: Engine, clock: ManualClock) -> None:
    (await engine.queue(note, "later", id="l1", delay="10m")).unwrap()
    at = datetime.datetime.fromtimestamp((T0 + 3_600_000) / 1000, tz=datetime.UTC)
    (await engine.queue(note, "at", id="l2", start_at=at)).unwrap()
    assert await engine.run_until_idle() == 0
    clock.time_ms = T0 + 600_000 - 1
    assert await engine.run_until_idle() == 0
    clock.time_ms = T0 + 600_000
    assert await engine.run_until_idle() == 1
    assert order == ["later"]
    clock.time_ms = T0 + 3_600_000
    await engine.run_until_idle()
    assert order == ["later", "at"]


async def test_a_worker_serves_only_its_queues(engine: Engine) -> None:
    (await engine.queue(note, "serial", id="s1", queue="serial")).unwrap()
    (await engine.queue(note, "default", id="s2")).unwrap()
    assert await engine.run_until_idle(queues=["serial"]) == 1
    assert order == ["serial"]
    assert await engine.run_until_idle(queues=["default"]) == 1
    assert order == ["serial", "default"]


async def test_worker_concurrency_caps_what_one_worker_runs(engine: Engine) -> None:
    for i in range(5):
        (await engine.queue(holds, f"l{i}", id=f"l{i}", queue="local")).unwrap()
    stop = asyncio.Event()
    worker = asyncio.get_running_loop().create_task(engine.run_worker(stop=stop))
    # The sleeps end their executions at once: the cap is on executions at once, so
    # every instance runs, two at a time (a bound far above what it takes: no stall).
    for _ in range(1000):
        if len(order) == 5:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await worker
    assert sorted(order) == [f"start l{i}" for i in range(5)]


async def test_unknown_queues_are_refused_where_they_are_named(engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown queue 'emials'"):
        await engine.queue(note, "x", queue="emials")
    with pytest.raises(ValueError, match="unknown queue 'emials'"):
        await engine.run_until_idle(queues=["emials"])
    with pytest.raises(ValueError, match="two queues are named 'a'"):
        Engine(WORKFLOWS, backend="memory://", queues=[Queue("a"), Queue("a", concurrency=1)])


async def test_a_child_runs_on_the_queue_it_is_given(engine: Engine) -> None:
    (await engine.start(parent_on_queue, 1, id="p")).unwrap()
    await engine.run_until_idle(queues=["default"])  # the child waits on its queue
    assert order == []
    await engine.run_until_idle()
    assert (await engine.result("p")).unwrap() == len("child 1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency must be a positive int"),
        ({"rate": "many"}, "rate must be 'N/period'"),
        ({"rate": "0/1s"}, "at least 1 start"),
        ({"partition_concurrency": True}, "partition_concurrency must be a positive int"),
    ],
)
def test_bad_limits_are_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Queue("q", **kwargs)


async def test_the_virtual_clock_skips_a_delay(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    order.clear()
    engine = await durably_engine([note])
    start = durably_clock.now()
    (await engine.queue(note, "in a week", id="w", delay="7 days")).unwrap()
    assert (await engine.result("w")).unwrap() == "in a week"
    assert durably_clock.now() == start + 7 * 86_400_000
