"""Events (coordination.md section 1), row by row, on memory, SQLite and PostgreSQL.

The engines run on a ``ManualClock`` and are driven by ``run_until_idle``, so every
timeout and every wake-up is decided by the test, not by the machine's speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from returns.result import Failure, Success

import durably
from durably.domain.errors import InstanceNotFoundError
from durably.domain.status import Cancelled, Completed, Failed, Paused
from durably.engine import Engine, Lease
from durably.testing import ManualClock
from durably.trackers import InMemoryTracker
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database

pytestmark = pytest.mark.timeout(60)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
LEASE = Lease(duration="30s", renew_every="10s")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A backend URL (one store per test)."""
    if request.param == "memory":
        yield "memory://"
        return
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
        return
    dsn = acquire_database()
    schema = f"events_{abs(hash(request.node.name)) % 10**10}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


ran: list[str] = []


@durably.workflow
async def expense(claim: str) -> str:
    await durably.set_event("stage", "waiting for approval")
    try:
        decision = await durably.wait_for_event("approval", timeout="3 days")
    except durably.EventTimeoutError:
        await durably.set_event("stage", "expired")
        return "expired"
    await durably.set_event("stage", "decided")
    return await durably.step("settle", lambda: "paid" if decision["ok"] else "rejected")


@durably.workflow
async def three_xs(n: int) -> list[Any]:
    got = []
    for _ in range(3):
        got.append(await durably.wait_for_event("x"))
    got.append(await durably.wait_for_event("y"))
    return got


@durably.workflow
async def catches_then_sleeps(n: int) -> str:
    try:
        await durably.wait_for_event("ping", timeout="1h")
        outcome = "pinged"
    except durably.EventTimeoutError as e:
        outcome = f"timed out after {e.timeout_ms} ms"
    ran.append(outcome)
    await durably.sleep("1h", name="nap")  # the resume replays the wait
    late = await durably.wait_for_event("ping")  # the late ping was kept for this one
    return f"{outcome}; then {late}"


@durably.workflow
async def strict_wait(n: int) -> Any:
    return await durably.wait_for_event("answer", timeout="1m")


@durably.workflow
async def waits_in_a_step(n: int) -> Any:
    async def inner() -> Any:
        return await durably.wait_for_event("never")

    return await durably.step("inner", inner)


@durably.workflow
async def publishes_in_a_step(n: int) -> Any:
    async def inner() -> None:
        await durably.set_event("k", 1)

    return await durably.step("inner", inner)


@durably.workflow
async def sleeper(n: int) -> Any:
    await durably.sleep("1h", name="nap")
    return await durably.wait_for_event("go")


@durably.workflow
async def publisher(n: int) -> int:
    await durably.set_event("count", 1)
    await durably.step("between", lambda: None)
    await durably.set_event("count", 2)
    await durably.sleep("1m")
    return n


WORKFLOWS: list[durably.WorkflowDefinition[Any, Any]] = [
    expense,
    three_xs,
    catches_then_sleeps,
    strict_wait,
    waits_in_a_step,
    publishes_in_a_step,
    sleeper,
    publisher,
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def engine(url: str, clock: ManualClock) -> AsyncIterator[Engine]:
    ran.clear()
    async with Engine(
        WORKFLOWS, backend=url, clock=clock, lease=LEASE, tracker=InMemoryTracker()
    ) as opened:
        yield opened


async def status_of(engine: Engine, instance_id: str) -> Any:
    return (await engine.status(instance_id)).unwrap().status


async def send(engine: Engine, instance_id: str, name: str, payload: Any = None, **kw: Any) -> Any:
    return (await engine.send_event(instance_id, name, payload, **kw)).unwrap()


# -- wait_for_event -------------------------------------------------------------------------


async def test_a_wait_pauses_until_the_event_and_returns_its_payload(
    engine: Engine, clock: ManualClock
) -> None:
    started = (await engine.start(expense, "c-7", id="c-7")).unwrap()
    assert started.status == Paused(
        reason="event",
        resume_at=T0 + 3 * DAY,
        step_name="approval",
        waits=("event:approval",),
    )
    assert await engine.run_until_idle() == 0  # nothing is due before the event
    clock.time_ms += 60_000
    answer = await send(engine, "c-7", "approval", {"ok": True}, event_id="mail-991")
    assert answer == durably.SendResult(True)
    assert await engine.run_until_idle() == 1  # the delivery made it due at once
    assert await status_of(engine, "c-7") == Completed(clock.time_ms)
    assert (await engine.result("c-7")).unwrap() == "paid"
    assert (await engine.get_event("c-7", "stage")).unwrap() == "decided"


async def test_an_event_sent_before_the_wait_even_before_the_start_is_kept(
    engine: Engine,
) -> None:
    (await engine.queue(expense, "c-8", id="c-8")).unwrap()
    assert (await send(engine, "c-8", "approval", {"ok": False})).delivered
    assert await engine.run_until_idle() == 1  # started, and the wait took the event
    assert (await engine.result("c-8")).unwrap() == "rejected"


async def test_events_of_one_name_are_taken_in_delivery_order(engine: Engine) -> None:
    (await engine.queue(three_xs, 0, id="fifo")).unwrap()
    for payload in ("first", "second"):
        await send(engine, "fifo", "x", payload)
    await send(engine, "fifo", "y", "the y")
    await engine.run_until_idle()
    assert isinstance(await status_of(engine, "fifo"), Paused)  # waits for the third x
    await send(engine, "fifo", "x", "third")
    await engine.run_until_idle()
    assert (await engine.result("fifo")).unwrap() == ["first", "second", "third", "the y"]


async def test_a_timeout_raises_is_caught_and_is_the_same_on_replay(
    engine: Engine, clock: ManualClock
) -> None:
    paused = (await engine.start(catches_then_sleeps, 1, id="t")).unwrap().status
    assert isinstance(paused, Paused)
    assert paused.resume_at == T0 + 3_600_000
    clock.time_ms = T0 + 3_600_000
    await engine.run_until_idle()
    assert ran == ["timed out after 3600000 ms"]
    # A ping after the timeout does not change what the first wait was: the replay at
    # the end of the nap raises the same timeout; the ping goes to the next wait.
    assert (await send(engine, "t", "ping", "late")).delivered
    assert await engine.run_until_idle() == 1  # woken by the ping: still asleep, re-armed
    assert isinstance(await status_of(engine, "t"), Paused)
    clock.time_ms += 3_600_000
    await engine.run_until_idle()
    assert ran == ["timed out after 3600000 ms"] * 2
    assert (await engine.result("t")).unwrap() == "timed out after 3600000 ms; then late"


async def test_an_uncaught_timeout_fails_the_workflow(engine: Engine, clock: ManualClock) -> None:
    (await engine.start(strict_wait, 1, id="s")).unwrap()
    clock.time_ms += 60_000
    await engine.run_until_idle()
    status = await status_of(engine, "s")
    assert isinstance(status, Failed)
    assert status.error.type == "EventTimeoutError"
    assert "'answer'" in status.error.message
    assert "60000 ms" in status.error.message


async def test_an_event_sent_after_the_deadline_does_not_count(
    engine: Engine, clock: ManualClock
) -> None:
    (await engine.start(strict_wait, 1, id="late")).unwrap()
    clock.time_ms += 60_001  # past the deadline, and no worker has looked yet
    await send(engine, "late", "answer", 42)
    await engine.run_until_idle()
    status = await status_of(engine, "late")
    assert isinstance(status, Failed)
    assert status.error.type == "EventTimeoutError"


async def test_a_duplicate_event_id_delivers_nothing_and_is_remembered_after_consumption(
    engine: Engine,
) -> None:
    (await engine.start(three_xs, 0, id="dup")).unwrap()
    assert await send(engine, "dup", "x", 1, event_id="e-1") == durably.SendResult(True)
    again = await send(engine, "dup", "x", 2, event_id="e-1")
    assert again == durably.SendResult(True, None, duplicate=True)
    await engine.run_until_idle()  # the first wait consumes e-1
    third = await send(engine, "dup", "x", 3, event_id="e-1")
    assert third.duplicate
    messages = await engine.host.read_inbox("dup")
    assert [(m.name, m.payload, m.consumed) for m in messages] == [("x", 1, True)]


async def test_a_send_to_an_unknown_or_finished_instance_is_not_delivered(
    engine: Engine,
) -> None:
    assert await send(engine, "ghost", "approval") == durably.SendResult(False, "not_found")
    (await engine.start(expense, "c-9", id="c-9")).unwrap()
    await send(engine, "c-9", "approval", {"ok": True})
    await engine.run_until_idle()
    late = await send(engine, "c-9", "approval", {"ok": False})
    assert late == durably.SendResult(False, "already_terminal")
    assert [m.payload for m in await engine.host.read_inbox("c-9")] == [{"ok": True}]


async def test_waits_and_publishing_inside_a_step_are_refused(engine: Engine) -> None:
    for workflow, primitive in (
        (waits_in_a_step, "wait_for_event"),
        (publishes_in_a_step, "set_event"),
    ):
        status = (await engine.start(workflow, 1)).unwrap().status
        assert isinstance(status, Failed)
        assert status.error.type == "StepScopeError"
        assert f"{primitive}()" in status.error.message


async def test_outside_a_workflow_the_primitives_are_refused() -> None:
    with pytest.raises(durably.WorkflowScopeError, match="wait_for_event"):
        await durably.wait_for_event("x")
    with pytest.raises(durably.WorkflowScopeError, match="set_event"):
        await durably.set_event("k", 1)


async def test_a_workflow_called_directly_cannot_wait(engine: Engine) -> None:
    with pytest.raises(durably.WorkflowScopeError, match="called directly has no inbox"):
        await strict_wait.execute(1)


async def test_a_cancel_while_waiting_ends_cancelled(engine: Engine) -> None:
    (await engine.start(expense, "c-10", id="c-10")).unwrap()
    assert (await engine.cancel("c-10", reason="withdrawn")).unwrap().cancelled
    await engine.run_until_idle()
    status = await status_of(engine, "c-10")
    assert isinstance(status, Cancelled)
    assert status.reason == "withdrawn"
    assert (await send(engine, "c-10", "approval", {"ok": True})).reason == "already_terminal"


async def test_a_payload_that_cannot_be_stored_fails_the_send_and_stores_nothing(
    engine: Engine,
) -> None:
    (await engine.start(expense, "c-11", id="c-11")).unwrap()
    for bad in ({"when": object()}, {1: "not a str key"}, "nul \x00 inside"):
        sent = await engine.send_event("c-11", "approval", bad)
        assert isinstance(sent, Failure)
        error = sent.failure()
        assert isinstance(error, durably.OrchestratorError)
        assert isinstance(error.cause, durably.SerializationError)
    assert await engine.host.read_inbox("c-11") == []
    assert isinstance(await status_of(engine, "c-11"), Paused)


async def test_an_event_never_ends_a_sleep_early(engine: Engine, clock: ManualClock) -> None:
    (await engine.start(sleeper, 1, id="zz")).unwrap()
    await send(engine, "zz", "go", "now")
    await engine.run_until_idle()
    status = await status_of(engine, "zz")
    assert isinstance(status, Paused)
    assert status.reason == "sleep"
    assert status.resume_at == T0 + 3_600_000
    clock.time_ms = T0 + 3_600_000
    await engine.run_until_idle()  # the sleep ends, and the wait finds the kept event
    assert (await engine.result("zz")).unwrap() == "now"


async def test_events_are_tracked(engine: Engine) -> None:
    tracker = engine.tracker
    assert isinstance(tracker, InMemoryTracker)
    (await engine.start(three_xs, 0, id="tr")).unwrap()
    await send(engine, "tr", "x", 1, event_id="m-1")
    await engine.run_until_idle()
    (sent,) = tracker.of_type("event.sent")
    assert (sent.workflow_name, sent.event_name, sent.seq, sent.delivery_id) == (
        "three_xs",
        "x",
        1,
        "m-1",
    )
    received = tracker.of_type("event.received")
    assert [(e.event_name, e.wait, e.seq) for e in received] == [("x", "x", 1)]


async def test_a_timeout_is_tracked(engine: Engine, clock: ManualClock) -> None:
    tracker = engine.tracker
    assert isinstance(tracker, InMemoryTracker)
    (await engine.start(strict_wait, 1, id="to")).unwrap()
    clock.time_ms += 60_000
    await engine.run_until_idle()
    (timed_out,) = tracker.of_type("event.timed_out")
    assert (timed_out.event_name, timed_out.wait, timed_out.timeout_ms) == (
        "answer",
        "answer",
        60_000,
    )


# -- set_event / get_event ------------------------------------------------------------------


async def test_the_latest_published_value_wins_and_a_replay_never_writes_an_older_one(
    engine: Engine, clock: ManualClock
) -> None:
    (await engine.start(publisher, 5, id="pub")).unwrap()
    assert (await engine.get_event("pub", "count")).unwrap() == 2
    clock.time_ms += 60_000
    await engine.run_until_idle()  # the resume replays both set_event calls
    assert (await engine.get_event("pub", "count")).unwrap() == 2
    assert (await engine.result("pub")).unwrap() == 5


async def test_get_event_names_an_unknown_instance_or_an_unset_key(engine: Engine) -> None:
    unknown = await engine.get_event("ghost", "stage")
    assert isinstance(unknown, Failure)
    assert isinstance(unknown.failure().cause, InstanceNotFoundError)
    (await engine.start(strict_wait, 1, id="quiet")).unwrap()
    unset = await engine.get_event("quiet", "stage", timeout="50ms")
    assert isinstance(unset, Failure)
    error = unset.failure().cause
    assert isinstance(error, durably.EventNotPublishedError)
    assert "'stage'" in str(error)
    assert "50 ms" in str(error)


async def test_get_event_with_a_timeout_waits_for_the_value(engine: Engine) -> None:
    (await engine.queue(expense, "c-12", id="c-12")).unwrap()
    waiting = asyncio.create_task(engine.get_event("c-12", "stage", timeout="30s"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await engine.run_until_idle()  # runs the workflow: it publishes its stage
    assert await asyncio.wait_for(waiting, 10) == Success("waiting for approval")
