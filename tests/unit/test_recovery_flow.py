"""Recovery through the orchestrator (semantics.md section 7): bounded, reset per segment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import durably
from durably.domain import keys
from durably.domain.events import WorkflowFailed, WorkflowRecovered
from durably.domain.serialization import encode
from durably.domain.status import Completed, Failed, Paused
from durably.services import (
    PurgeConfig,
    RecoveryConfig,
    WorkflowOrchestrator,
    WorkflowStateMachine,
)
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory

pytestmark = pytest.mark.timeout(10)

Body = Callable[[Any], Awaitable[Any]]


class Crash(BaseException):
    """The process dies (not an ``Exception``: never a step or workflow failure)."""


def harness(runtimes: RuntimeFactory, body: Body) -> Harness:
    """Instance ``r1`` of workflow ``wf`` running ``body``; at most 3 recoveries."""
    return Harness(
        runtimes("r1", 1000),
        durably.make(body, name="wf"),
        recovery=RecoveryConfig(max_recovery_attempts=3),
    )


async def crashing(h: Harness, operation: Callable[[WorkflowOrchestrator], Awaitable[Any]]) -> None:
    """Run ``operation`` on a new orchestrator; the process crashes in it."""
    with pytest.raises(Crash):
        await operation(h.orchestrator())


def stored_status(h: Harness) -> Any:
    """The instance's status as stored."""
    return h.snapshot()["workflow:status"]


def start(o: WorkflowOrchestrator) -> Awaitable[Any]:
    return o.start(durably.WorkflowCall("wf", None))


def alarm(o: WorkflowOrchestrator) -> Awaitable[Any]:
    return o.handle_alarm()


async def test_a_workflow_that_commits_a_step_in_every_run_survives_any_number_of_crashes(
    runtimes: RuntimeFactory,
) -> None:
    """semantics.md section 7 (changed after measurement): a committed step is progress,
    so the counter counts recoveries without progress. Six crashes, each right after a
    step committed, with a limit of 3: the workflow completes."""
    state = {"crashes": 6, "ran": False}

    def run(i: int) -> Callable[[], int]:
        def body() -> int:
            state["ran"] = True
            return i

        return body

    async def body(_: Any) -> int:
        total = 0
        for i in range(8):
            total += await durably.step(f"s{i}", run(i))
            if state["ran"] and state["crashes"]:  # this run committed a step: die now
                state["crashes"] -= 1
                state["ran"] = False
                raise Crash
        return total

    h = harness(runtimes, body)
    await crashing(h, start)
    counts = []
    for n in range(1, 7):
        h.handle.set_time(1000 + n * 1000)
        if state["crashes"]:
            await crashing(h, alarm)
        else:
            await h.alarm()
        counts.append((await h.recovery_manager().get_stats()).unwrap().attempts)
    status = (await h.orchestrator().get_status()).unwrap()
    assert isinstance(status.status, Completed), status
    assert (await h.orchestrator().start(durably.WorkflowCall("wf", None))).unwrap().output == 28
    assert counts[:-1] == [0] * 5  # each recovered run reset the count with its first step
    assert len(h.tracker.of_type(WorkflowRecovered)) == 6  # twice the limit of 3


async def test_a_workflow_that_crashes_on_every_replay_fails_after_the_limit(
    runtimes: RuntimeFactory,
) -> None:
    runs: list[int] = []

    def boom() -> None:
        runs.append(1)
        raise Crash

    async def body(_: Any) -> None:
        await durably.step("a", lambda: "A")
        await durably.step("boom", boom)

    h = harness(runtimes, body)
    await crashing(h, start)
    assert stored_status(h) == {"tag": "Running", "running_at": 1000}
    for attempt in (1, 2, 3):
        h.handle.set_time(1000 + attempt * 1000)
        await crashing(h, alarm)
        assert stored_status(h)["tag"] == "Running"
        stats = (await h.recovery_manager().get_stats()).unwrap()
        assert (stats.attempts, stats.last_attempt_at) == (attempt, 1000 + attempt * 1000)
    assert len(runs) == 4
    assert [e.attempt for e in h.tracker.of_type(WorkflowRecovered)] == [1, 2, 3]

    h.handle.set_time(10_000)
    (await h.runtime.scheduler.schedule(10_000)).unwrap()  # the alarm being handled
    await h.alarm()  # the fourth recovery is refused: the instance fails instead
    assert len(runs) == 4
    status = (await h.orchestrator().get_status()).unwrap()
    assert isinstance(status.status, Failed)
    assert status.status.failed_at == 10_000
    assert status.status.error.type == "RecoveryError"
    assert "max_attempts_exceeded" in status.status.error.message
    assert status.completed_steps == ("a",)
    (event,) = h.tracker.of_type(WorkflowFailed)
    assert event.error == status.status.error
    assert event.completed_steps == ("a",)
    assert h.handle.scheduled_time() is None
    assert (await h.recovery_manager().get_stats()).unwrap().max_exceeded is True
    await h.alarm()  # terminal: nothing more happens
    assert len(runs) == 4
    assert len(h.tracker.of_type(WorkflowFailed)) == 1


async def test_giving_up_schedules_the_purge_when_enabled(runtimes: RuntimeFactory) -> None:
    async def body(_: Any) -> None:
        raise Crash

    h = harness(runtimes, body)
    h.purge = PurgeConfig(enabled=True, delay_ms=1000)
    await crashing(h, start)
    for _ in range(3):
        await crashing(h, alarm)
    h.handle.set_time(5000)
    await h.alarm()
    assert stored_status(h)["tag"] == "Failed"
    assert h.handle.storage_snapshot().get("workflow:purgeAt") == 6000
    assert h.handle.scheduled_time() == 6000


async def test_a_pause_resets_the_counter_so_a_later_crash_gets_the_full_budget(
    runtimes: RuntimeFactory,
) -> None:
    calls = {"a": 0, "b": 0}

    def a() -> str:
        calls["a"] += 1
        if calls["a"] == 1:
            raise Crash
        return "A"

    def b() -> str:
        calls["b"] += 1
        if calls["b"] <= 3:  # the resume, and the first two recoveries
            raise Crash
        return "B"

    async def body(_: Any) -> str:
        await durably.step("a", a)
        await durably.sleep("5s")
        await durably.step("b", b)
        return "done"

    h = harness(runtimes, body)
    await crashing(h, start)
    h.handle.set_time(2000)
    await h.alarm()  # recovery 1: a runs, then the sleep pauses the workflow
    assert stored_status(h)["tag"] == "Paused"
    assert (await h.recovery_manager().get_stats()).unwrap().attempts == 0  # reset by the pause
    assert "workflow:recoveryAttempts" not in h.handle.storage_snapshot()

    h.handle.set_time(7000)
    await crashing(h, alarm)  # the resume crashes in b
    for _ in range(2):
        await crashing(h, alarm)  # recoveries 1 and 2 crash too
    await h.alarm()  # recovery 3 of this segment: still within the budget
    status = (await h.orchestrator().get_status()).unwrap()
    assert status.status == Completed(7000)
    assert calls == {"a": 2, "b": 4}
    assert [e.attempt for e in h.tracker.of_type(WorkflowRecovered)] == [1, 1, 2, 3]
    assert (await h.recovery_manager().get_stats()).unwrap().attempts == 0


async def test_check_and_schedule_recovery_of_a_paused_instance_waits_for_resume_at(
    runtimes: RuntimeFactory,
) -> None:
    async def body(_: Any) -> None:
        await durably.sleep("1 hour")

    h = harness(runtimes, body)
    (await start(h.orchestrator())).unwrap()
    h.handle.clear_alarm()  # the alarm was lost, e.g. with the host
    h.handle.set_time(2000)
    result = (await h.recovery_manager().check_and_schedule_recovery()).unwrap()
    assert result.scheduled is True
    assert result.current_status == "Paused"
    resume_at = 1000 + 3_600_000
    assert h.handle.scheduled_time() == resume_at  # fix: not now + recovery_delay_ms
    assert stored_status(h)["tag"] == "Paused"
    h.handle.set_time(resume_at)
    await h.alarm()
    assert stored_status(h) == {"tag": "Completed", "completed_at": resume_at}


async def test_check_and_schedule_recovery_of_an_overdue_pause_uses_the_delay(
    runtimes: RuntimeFactory,
) -> None:
    async def body(_: Any) -> None:
        await durably.sleep("5s")

    h = harness(runtimes, body)
    runtime, handle = h.runtime, h.handle
    sm = WorkflowStateMachine(runtime.storage, runtime.runtime)
    (await sm.initialize("wf", None)).unwrap()
    (await runtime.storage.put(keys.STATUS, encode(Paused("sleep", 1500)))).unwrap()
    handle.set_time(9000)
    result = (await h.recovery_manager().check_and_schedule_recovery()).unwrap()
    assert result.scheduled is True
    assert handle.scheduled_time() == 9100  # max(resume_at, now + 100)


async def test_a_stale_running_instance_is_scheduled_then_recovered(
    runtimes: RuntimeFactory,
) -> None:
    runs: list[int] = []

    def once() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise Crash
        return "ok"

    async def body(_: Any) -> str:
        return await durably.step("s", once)

    h = harness(runtimes, body)
    await crashing(h, start)
    h.handle.set_time(1000 + 29_999)
    early = (await h.recovery_manager().check_and_schedule_recovery()).unwrap()
    assert (early.scheduled, early.reason) == (False, "running_not_stale")
    h.handle.set_time(1000 + 30_000)
    due = (await h.recovery_manager().check_and_schedule_recovery()).unwrap()
    assert (due.scheduled, due.attempt) == (True, 1)
    assert h.handle.scheduled_time() == 31_100
    h.handle.set_time(31_100)
    await h.alarm()
    assert stored_status(h) == {"tag": "Completed", "completed_at": 31_100}
    assert runs == [1, 1]
