"""``crash_after``: an execution dies right after a step's commit; recovery replays it."""

from __future__ import annotations

import pytest
from returns.result import Failure

import durably
from durably.adapters.memory import MemoryBackend
from durably.domain.errors import ExecutionStopped, OrchestratorError
from durably.engine import Engine
from durably.status import Running
from durably.testing import EngineFactory, VirtualClock, crash_after

ran: list[str] = []
"""The step functions that ran, in order."""


async def tag_of(engine: Engine, id: str) -> str | None:
    """The status tag of instance ``id``."""
    status = (await engine.status(id)).unwrap().status
    return None if status is None else status.tag


@pytest.fixture(autouse=True)
def _forget() -> None:
    ran.clear()


def run(name: str) -> str:
    ran.append(name)
    return name.upper()


@durably.workflow
async def three(_: None) -> str:
    a = await durably.step("a", lambda: run("a"))
    b = await durably.step("b", lambda: run("b"))
    again = await durably.step("b", lambda: run("b again"))  # its key is "b#2"
    return a + b + again


def cause(outcome: object) -> object:
    """The innermost cause of an ``OrchestratorError`` failure."""
    assert isinstance(outcome, Failure)
    error = outcome.failure()
    while isinstance(error, OrchestratorError):
        error = error.cause
    return error


async def test_the_execution_dies_right_after_the_commit(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    engine = await durably_engine([three])
    with crash_after("a") as crash:
        outcome = await engine.start(three, None, id="t")
    assert crash.crashed == "t"
    stopped = cause(outcome)
    assert isinstance(stopped, ExecutionStopped)
    assert "crashed right after step 'a'" in stopped.reason
    assert ran == ["a"]  # nothing ran after the commit...
    status = (await engine.status("t")).unwrap()
    assert isinstance(status.status, Running)  # ...and nothing was written after it
    assert status.completed_steps == ("a",)
    assert [step.name for step in (await engine.steps("t")).unwrap()] == ["a"]
    backend = engine.host
    assert isinstance(backend, MemoryBackend)
    row = backend.rows["t"]
    assert row.lease_owner is not None
    assert row.lease_owner != engine.owner  # held by a process that no longer renews it
    assert row.lease_expires_at == durably_clock.now() + engine.lease.duration_ms


async def test_recovery_replays_without_running_the_committed_step_again(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    start = durably_clock.now()
    engine = await durably_engine([three])
    with crash_after("b"):
        await engine.start(three, None, id="t")
    assert ran == ["a", "b"]
    assert (await engine.result("t")).unwrap() == "ABB AGAIN"
    assert ran == ["a", "b", "b again"]
    assert durably_clock.now() == start + engine.lease.duration_ms  # when the lease expired


async def test_the_instance_waits_for_its_lease_to_expire(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    engine = await durably_engine([three], lease=durably.Lease(duration="5m", renew_every="1m"))
    with crash_after("a"):
        await engine.start(three, None, id="t")
    await durably_clock.advance("299s")
    assert await tag_of(engine, "t") == "Running"
    assert ran == ["a"]
    await durably_clock.advance("1s")
    assert await tag_of(engine, "t") == "Completed"
    assert ran == ["a", "b", "b again"]


async def test_a_repeated_step_is_named_by_its_key(durably_engine: EngineFactory) -> None:
    engine = await durably_engine([three])
    with crash_after("b#2"):
        await engine.start(three, None, id="t")
    assert ran == ["a", "b", "b again"]
    assert await tag_of(engine, "t") == "Running"
    assert (await engine.result("t")).unwrap() == "ABB AGAIN"
    assert ran == ["a", "b", "b again"]


async def test_an_execution_run_by_the_worker_crashes_too(
    durably_engine: EngineFactory, durably_clock: VirtualClock
) -> None:
    engine = await durably_engine([three])
    with crash_after("a", id="second") as crash:
        await engine.queue(three, None, id="first")
        await engine.queue(three, None, id="second")
        await durably_clock.settle()
    assert crash.crashed == "second"
    assert await tag_of(engine, "first") == "Completed"
    assert await tag_of(engine, "second") == "Running"
    assert (await engine.result("second")).unwrap() == "ABB AGAIN"
    assert ran.count("a") == 2  # once per instance, never again after the crash


async def test_it_fires_once(durably_engine: EngineFactory) -> None:
    engine = await durably_engine([three])
    with crash_after("a") as crash:
        await engine.start(three, None, id="one")
        await engine.start(three, None, id="two")
    assert crash.crashed == "one"
    assert await tag_of(engine, "two") == "Completed"


async def test_a_crash_point_that_never_fires_fails_the_test(
    durably_engine: EngineFactory,
) -> None:
    engine = await durably_engine([three])
    with pytest.raises(AssertionError, match=r"crash_after\('c'\) never fired"), crash_after("c"):
        await engine.start(three, None, id="t")
    assert await tag_of(engine, "t") == "Completed"
    await engine.start(three, None, id="later")  # disarmed at the end of its block
    assert await tag_of(engine, "later") == "Completed"


async def test_an_error_in_the_block_is_not_hidden(durably_engine: EngineFactory) -> None:
    await durably_engine([three])
    with pytest.raises(KeyError), crash_after("a"):
        raise KeyError("the test's own error")
