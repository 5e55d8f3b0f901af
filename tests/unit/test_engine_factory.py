"""``EngineFactory`` (the ``durably_engine`` fixture): open engines with a worker each."""

from __future__ import annotations

from typing import Any

import pytest

import durably
from durably.engine import Engine
from durably.status import Completed
from durably.testing import EngineFactory, VirtualClock

made: dict[str, Engine] = {}
"""Engines a step reaches (a step that starts another workflow)."""


async def tag_of(engine: Engine, id: str) -> str | None:
    """The status tag of instance ``id``."""
    status = (await engine.status(id)).unwrap().status
    return None if status is None else status.tag


@durably.workflow
async def child(n: int) -> int:
    return await durably.step("double", lambda: n * 2)


async def _queue_children() -> list[str]:
    engine = made["parent"]
    ids = []
    for n in (1, 2):
        started = (await engine.queue(child, n, id=f"child-{n}")).unwrap()
        ids.append(started.id)
    return ids


@durably.workflow
async def parent(_: None) -> list[str]:
    return await durably.step("queue children", _queue_children)


async def test_a_queued_start_runs_without_any_call(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    engine = await durably_engine([child])
    await engine.queue(child, 21, id="c")
    await durably_clock.settle()  # the background worker ran it; nothing else was called
    status = (await engine.status("c")).unwrap()
    assert isinstance(status.status, Completed)
    assert status.completed_steps == ("double",)
    assert durably_clock.now() == start


async def test_what_a_workflow_queues_is_run_by_the_worker(
    durably_engine: EngineFactory,
) -> None:
    engine = made["parent"] = await durably_engine([parent, child])
    try:
        started = (await engine.start(parent, None, id="p")).unwrap()
        assert started.output == ["child-1", "child-2"]
        assert (await engine.result("child-1")).unwrap() == 2
        assert (await engine.result("child-2")).unwrap() == 4
    finally:
        made.clear()


async def test_engines_are_closed_and_workers_stopped_by_aclose() -> None:
    factory = EngineFactory()
    first = await factory([child])
    second = await factory([child])
    workers = [worker for _, worker in factory._workers.values()]
    assert not any(worker.done() for worker in workers)
    await factory.aclose()
    assert all(worker.done() and not worker.cancelled() for worker in workers)
    assert factory.engines == []
    for engine in (first, second):
        with pytest.raises(RuntimeError, match="not open"):
            await engine.run_until_idle()
    with pytest.raises(RuntimeError, match="durably_engine"):
        await factory.clock.settle(first)  # detached: the clock no longer moves it


async def _fail_with_an_engine_open(opened: list[Engine]) -> None:
    async with EngineFactory() as make:
        opened.append(await make([child]))
        raise ZeroDivisionError


async def test_engines_are_closed_when_the_block_fails() -> None:
    opened: list[Engine] = []
    with pytest.raises(ZeroDivisionError):
        await _fail_with_an_engine_open(opened)
    (engine,) = opened
    with pytest.raises(RuntimeError, match="not open"):
        await engine.queue(child, 1)


async def test_a_step_left_waiting_for_its_timeout_does_not_hold_the_close() -> None:
    @durably.step(timeout="1h")
    async def stuck() -> None:
        import asyncio

        await asyncio.get_running_loop().create_future()

    @durably.workflow
    async def waits(_: None) -> None:
        await stuck()

    factory = EngineFactory()
    engine = await factory([waits])
    await engine.queue(waits, None, id="w")
    await factory.clock.settle()
    assert engine.server.active == 1  # the step waits for the clock to pass its timeout
    await factory.aclose()
    assert engine.server.active == 0


@pytest.mark.parametrize("option", ["backend", "clock"])
async def test_backend_and_clock_are_the_factorys(option: str) -> None:
    async with EngineFactory() as make:
        options: dict[str, Any] = {option: "memory://" if option == "backend" else None}
        with pytest.raises(TypeError, match=f"sets {option}="):
            await make([child], **options)


async def test_engine_options_pass_through(durably_engine: EngineFactory) -> None:
    engine = await durably_engine([child], lease=durably.Lease(duration="5m", renew_every="1m"))
    assert engine.lease.duration_ms == 300_000
    assert engine.backend_url == "memory://"
