"""``sleep`` and ``sleep_until`` (semantics.md section 4), through the orchestrator."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import durably
from durably.domain.errors import InvalidDurationError, StepScopeError, WorkflowScopeError
from durably.domain.events import SleepCompleted, SleepStarted
from durably.domain.status import Cancelled, Completed, Failed, Paused
from durably.services import (
    ExecutionContext,
    ExecutionPaused,
    WorkflowExecutor,
    WorkflowOrchestrator,
)
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory

pytestmark = pytest.mark.timeout(10)

Body = Callable[[Any], Awaitable[Any]]
UTC = datetime.UTC


def harness(runtimes: RuntimeFactory, body: Body) -> Harness:
    return Harness(runtimes("s1", 1000), durably.make(body, name="wf"))


def sleep_record(h: Harness, key: str) -> Any:
    return h.handle.storage_snapshot().get(f"sleep:{key}")


# --- scope ----------------------------------------------------------------------------------------


async def test_sleep_outside_a_workflow_is_a_workflow_scope_error() -> None:
    with pytest.raises(WorkflowScopeError):
        await durably.sleep("1s")
    with pytest.raises(WorkflowScopeError):
        await durably.sleep_until(5000)


async def test_sleep_inside_a_step_is_a_step_scope_error(runtimes: RuntimeFactory) -> None:
    caught: list[StepScopeError] = []

    async def inner() -> None:
        try:
            await durably.sleep("1s")
        except StepScopeError as e:
            caught.append(e)
            raise

    async def body(_: Any) -> None:
        await durably.step("s", inner)

    h = harness(runtimes, body)
    result = await h.start()
    assert [(e.operation, e.step_name) for e in caught] == [("sleep", "s")]
    assert isinstance(result.status, Failed)
    assert result.status.error.type == "StepScopeError"
    assert result.status.error.step_name == "s"
    assert h.handle.scheduled_time() is None


async def test_sleep_until_inside_a_step_is_a_step_scope_error(runtimes: RuntimeFactory) -> None:
    async def inner() -> None:
        await durably.sleep_until(99_000)

    async def body(_: Any) -> None:
        await durably.step("s", inner)

    result = await harness(runtimes, body).start()
    assert isinstance(result.status, Failed)
    assert result.status.error.type == "StepScopeError"


# --- first arrival, early and duplicate alarms ----------------------------------------------------


async def nap(_: Any) -> str:
    await durably.sleep("5s")
    return "rested"


async def test_first_arrival_stores_the_resume_time_once_and_pauses(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes, nap)
    before = h.handle.commits
    result = await h.start()
    assert result.status == Paused("sleep", 6000)
    assert sleep_record(h, "sleep#1") == {
        "resume_at": 6000,
        "duration_ms": 5000,
        "completed": False,
        "position": 0,
    }
    assert h.handle.scheduled_time() == 6000
    assert h.handle.commits - before == 2  # start, then record + Paused + alarm together
    assert h.handle.storage_snapshot()["workflow:pendingResumeAt"] == 6000


async def test_early_alarms_re_arm_at_the_same_resume_time(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes, nap)
    await h.start()
    for early in (2000, 3000, 5999):
        await h.fire_alarm(early)
        assert h.handle.scheduled_time() == 6000
        assert (await h.orchestrator().get_status()).unwrap().status == Paused("sleep", 6000)
        assert sleep_record(h, "sleep#1")["resume_at"] == 6000
    await h.fire_alarm(6000)
    status = (await h.orchestrator().get_status()).unwrap().status
    assert status == Completed(6000)  # not 5999 + 5000
    assert len(h.tracker.of_type(SleepStarted)) == 1


async def test_an_early_replay_pauses_until_the_same_resume_time(runtimes: RuntimeFactory) -> None:
    # A body replayed before its sleep is due (e.g. a racing worker) must not move the sleep.
    h = harness(runtimes, nap)
    await h.start()
    h.handle.set_time(3000)
    executor: WorkflowExecutor = h.layer().executor()
    ctx = ExecutionContext("s1", "wf", None, None, "resume")
    result = (await executor.execute(durably.make(nap, name="wf"), ctx)).unwrap()
    assert isinstance(result, ExecutionPaused)
    assert (result.reason, result.resume_at) == ("sleep", 6000)  # fix: not 3000 + 5000
    assert all(v["resume_at"] == 6000 for k, v in result.writes.items() if k.startswith("sleep:"))
    assert sleep_record(h, "sleep#1")["resume_at"] == 6000
    assert len(h.tracker.of_type(SleepStarted)) == 1


async def test_duplicate_alarms_at_the_resume_time_complete_the_sleep_once(
    runtimes: RuntimeFactory,
) -> None:
    ran: list[int] = []

    async def body(_: Any) -> None:
        await durably.sleep("5s")
        await durably.step("after", lambda: ran.append(1))
        await durably.sleep("10s")

    h = harness(runtimes, body)
    await h.start()
    await h.fire_alarm(6000)
    await h.fire_alarm(6000)  # a duplicate: the instance is Paused until 16 000 now
    assert ran == [1]
    assert len(h.tracker.of_type(SleepCompleted)) == 1
    assert h.handle.scheduled_time() == 16_000
    assert sleep_record(h, "sleep#2") == {
        "resume_at": 16_000,
        "duration_ms": 10_000,
        "completed": False,
        "position": 2,
    }
    await h.fire_alarm(16_000)
    await h.fire_alarm(16_000)
    assert len(h.tracker.of_type(SleepCompleted)) == 2
    assert h.tracker.types().count("workflow.completed") == 1
    assert ran == [1]


# --- sleeps that are not in the future ------------------------------------------------------------


async def test_sleep_zero_completes_at_once_and_is_recorded(runtimes: RuntimeFactory) -> None:
    async def body(_: Any) -> str:
        await durably.sleep(0)
        return "ok"

    h = harness(runtimes, body)
    result = await h.start()
    assert (result.completed, result.output) == (True, "ok")
    assert sleep_record(h, "sleep#1") == {
        "resume_at": 1000,
        "duration_ms": 0,
        "completed": True,
        "position": 0,
    }
    assert "workflow.paused" not in h.tracker.types()
    assert [e.duration_ms for e in h.tracker.of_type(SleepCompleted)] == [0]


async def test_sleep_until_the_past_completes_at_once_and_is_recorded(
    runtimes: RuntimeFactory,
) -> None:
    async def body(_: Any) -> str:
        await durably.sleep_until(500, name="deadline")
        return "ok"

    h = harness(runtimes, body)
    result = await h.start()
    assert result.completed is True
    assert sleep_record(h, "deadline") == {
        "resume_at": 500,
        "duration_ms": 0,
        "completed": True,
        "position": 0,
    }
    assert "workflow.paused" not in h.tracker.types()
    assert h.handle.scheduled_time() is None


async def test_sleep_until_now_completes_at_once(runtimes: RuntimeFactory) -> None:
    async def body(_: Any) -> str:
        await durably.sleep_until(1000)
        return "ok"

    assert (await harness(runtimes, body).start()).completed is True


async def test_a_past_sleep_until_then_a_sleep_sleeps_exactly_once(
    runtimes: RuntimeFactory,
) -> None:
    after: list[int] = []

    async def body(_: Any) -> str:
        await durably.sleep_until(500)
        await durably.sleep("5s")
        await durably.step("after", lambda: after.append(1))
        return "ok"

    h = harness(runtimes, body)
    result = await h.start()
    assert result.status == Paused("sleep", 6000)
    # The past sleep's record rode along with the pause commit.
    assert sleep_record(h, "sleep#1") == {
        "resume_at": 500,
        "duration_ms": 0,
        "completed": True,
        "position": 0,
    }
    assert sleep_record(h, "sleep#2") == {
        "resume_at": 6000,
        "duration_ms": 5000,
        "completed": False,
        "position": 1,
    }
    fired = await h.run_to_end()
    assert fired == [6000]
    assert after == [1]
    assert h.tracker.types().count("workflow.paused") == 1
    assert len(h.tracker.of_type(SleepStarted)) == 1
    assert (await h.orchestrator().get_status()).unwrap().status == Completed(6000)


# --- sleep_until ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        datetime.datetime(1970, 1, 1, 0, 0, 10, tzinfo=UTC),
        datetime.datetime(
            1970, 1, 1, 1, 0, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
        ),
        10_000,
    ],
    ids=["utc", "plus-one-hour", "ms"],
)
async def test_sleep_until_pauses_until_the_given_time(
    runtimes: RuntimeFactory, when: datetime.datetime | int
) -> None:
    async def body(_: Any) -> str:
        await durably.sleep_until(when)
        return "ok"

    h = harness(runtimes, body)
    result = await h.start()
    assert result.status == Paused("sleep", 10_000)
    assert sleep_record(h, "sleep#1") == {
        "resume_at": 10_000,
        "duration_ms": 9000,
        "completed": False,
        "position": 0,
    }
    assert await h.run_to_end() == [10_000]
    assert (await h.orchestrator().get_status()).unwrap().status == Completed(10_000)


async def test_sleep_until_a_naive_datetime_is_a_value_error(runtimes: RuntimeFactory) -> None:
    naive = datetime.datetime(2030, 1, 1)
    with pytest.raises(ValueError, match="aware"):
        await durably.sleep_until(naive)

    async def body(_: Any) -> None:
        await durably.sleep_until(naive)

    result = await harness(runtimes, body).start()
    assert isinstance(result.status, Failed)
    assert result.status.error.type == "ValueError"


async def test_sleep_until_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        await durably.sleep_until(1.5)  # type: ignore[arg-type]


# --- keys -----------------------------------------------------------------------------------------


async def test_named_repeated_and_unnamed_sleeps_get_distinct_keys(
    runtimes: RuntimeFactory,
) -> None:
    async def body(_: Any) -> str:
        await durably.sleep("1s", name="wait")
        await durably.sleep("1s", name="wait")
        await durably.sleep("1s")
        await durably.sleep("1s")
        await durably.sleep("1s", name="wait")
        return "ok"

    h = harness(runtimes, body)
    await h.start()
    assert await h.run_to_end() == [2000, 3000, 4000, 5000, 6000]
    snapshot = h.handle.storage_snapshot()
    sleeps = {k: v["resume_at"] for k, v in snapshot.items() if k.startswith("sleep:")}
    assert sleeps == {
        "sleep:wait": 2000,
        "sleep:wait#2": 3000,
        "sleep:sleep#1": 4000,
        "sleep:sleep#2": 5000,
        "sleep:wait#3": 6000,
    }
    assert all(snapshot[k]["completed"] for k in sleeps)
    assert (await h.orchestrator().get_status()).unwrap().status == Completed(6000)


# --- invalid durations ----------------------------------------------------------------------------


@pytest.mark.parametrize("duration", ["5x", "", "-1s", -5, float("nan")])
async def test_invalid_durations_are_rejected(runtimes: RuntimeFactory, duration: Any) -> None:
    with pytest.raises(InvalidDurationError):
        await durably.sleep(duration)

    async def body(_: Any) -> None:
        await durably.sleep(duration)

    h = harness(runtimes, body)
    result = await h.start()
    assert isinstance(result.status, Failed)
    assert result.status.error.type == "InvalidDurationError"
    assert not any(k.startswith("sleep:") for k in h.handle.storage_snapshot())


# --- cancel ---------------------------------------------------------------------------------------


async def test_a_cancelled_workflow_stops_at_its_next_sleep(runtimes: RuntimeFactory) -> None:
    ran: list[str] = []

    async def cancel_elsewhere() -> None:
        ran.append("a")
        # Another process's orchestrator: it can only raise the flag.
        other: WorkflowOrchestrator = h.orchestrator()
        assert (await other.cancel(reason="stop")).unwrap().cancelled is True

    async def body(_: Any) -> None:
        await durably.step("a", cancel_elsewhere)
        await durably.sleep("5s")
        await durably.step("b", lambda: ran.append("b"))

    h = harness(runtimes, body)
    result = await h.start()
    assert result.status == Cancelled(1000, "stop")
    assert ran == ["a"]
    assert sleep_record(h, "sleep#1") is None
    assert "sleep.started" not in h.tracker.types()
    (cancelled,) = h.tracker.of_type("workflow.cancelled")
    assert cancelled.reason == "stop"
    assert cancelled.completed_steps == ("a",)
    assert h.handle.scheduled_time() is None


# --- events ---------------------------------------------------------------------------------------


async def test_sleep_events_carry_duration_and_resume_time(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes, nap)
    await h.start()
    (started,) = h.tracker.of_type(SleepStarted)
    assert (started.duration_ms, started.resume_at, started.timestamp) == (5000, 6000, 1000)
    assert h.tracker.of_type(SleepCompleted) == []
    await h.fire_alarm(6000)
    (completed,) = h.tracker.of_type(SleepCompleted)
    assert (completed.duration_ms, completed.timestamp) == (5000, 6000)
    types = h.tracker.types()
    assert types.index("sleep.started") < types.index("workflow.paused")
