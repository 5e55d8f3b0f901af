"""Events (semantics.md section 9): their common fields, and that each follows its commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

import durably
from durably.adapters.clock import ManualClock
from durably.domain.events import WorkflowEvent
from durably.domain.status import WorkflowError
from durably.services import PurgeConfig
from durably.trackers import InMemoryTracker, LoggingTracker
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory, RuntimeHandle

pytestmark = pytest.mark.timeout(10)

Body = Callable[[Any], Awaitable[Any]]


class Crash(BaseException):
    """The process dies."""


@attrs.frozen
class Seen:
    """An event, with the clock, the stored keys and the alarm at the moment it was emitted."""

    event: WorkflowEvent
    now: int
    snapshot: dict[str, Any]
    alarm: int | None


class WitnessTracker(InMemoryTracker):
    """Keeps every event together with what was committed when it arrived."""

    def __init__(self, handle: RuntimeHandle) -> None:
        super().__init__()
        self.handle = handle
        self.seen: list[Seen] = []

    def emit(self, event: WorkflowEvent) -> None:
        h = self.handle
        self.seen.append(Seen(event, h.now(), h.storage_snapshot(), h.scheduled_time()))
        super().emit(event)

    def at(self, event_type: str) -> list[Seen]:
        return [s for s in self.seen if s.event.type == event_type]


class RaisingTracker(InMemoryTracker):
    """A tracker that fails on every event."""

    def emit(self, event: WorkflowEvent) -> None:
        raise RuntimeError("tracker down")


async def order(_: Any) -> str:
    await durably.step("a", lambda: "A")
    await durably.sleep("5s")
    await durably.step("b", lambda: "B")
    return "done"


def harness(
    runtimes: RuntimeFactory, body: Body = order, tracker: Any = None
) -> tuple[Harness, WitnessTracker]:
    """Instance ``i1`` of workflow ``order`` running ``body``, and its witness tracker."""
    runtime, handle = runtimes("i1", 1000)
    witness = WitnessTracker(handle)
    definition = durably.make(body, name="order")
    return Harness((runtime, handle), definition, tracker=tracker or witness), witness


async def test_every_event_of_a_full_run_has_the_common_fields(runtimes: RuntimeFactory) -> None:
    h, tracker = harness(runtimes)
    await h.start("x", execution_id="e1")
    await h.alarm_at(6000)
    assert tracker.types() == [
        "workflow.started",
        "step.started",
        "step.completed",
        "sleep.started",
        "workflow.paused",
        "workflow.resumed",
        "step.completed",
        # the Resume commit ended the sleep: its event comes before the next step starts
        "sleep.completed",
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    ids = set()
    for seen in tracker.seen:
        event = seen.event
        parsed = uuid.UUID(event.event_id)
        assert parsed.version == 7
        assert parsed.int >> 80 == event.timestamp  # v7: the first 48 bits are the time
        ids.add(event.event_id)
        assert event.timestamp == seen.now
        assert (event.workflow_id, event.workflow_name, event.execution_id) == ("i1", "order", "e1")
    assert len(ids) == len(tracker.seen)
    assert [s.event.timestamp for s in tracker.seen] == [1000] * 5 + [6000] * 6


async def test_event_fields_of_a_full_run(runtimes: RuntimeFactory) -> None:
    h, tracker = harness(runtimes)
    await h.start("x", execution_id="e1")
    await h.alarm_at(6000)
    (started,) = tracker.of_type("workflow.started")
    assert started.input == "x"
    first = tracker.of_type("step.started")[0]
    assert (first.step_name, first.attempt) == ("a", 1)
    (paused,) = tracker.of_type("workflow.paused")
    assert (paused.reason, paused.resume_at, paused.step_name) == ("sleep", 6000, None)
    (completed,) = tracker.of_type("workflow.completed")
    assert completed.completed_steps == ("a", "b")
    assert completed.duration_ms == 5000  # from the first start, not the last segment


async def test_execution_id_is_none_when_not_given(runtimes: RuntimeFactory) -> None:
    h, tracker = harness(runtimes)
    await h.start("x")
    await h.alarm_at(6000)
    assert tracker.events
    assert all(e.execution_id is None for e in tracker.events)


async def test_events_follow_the_commit_they_report(runtimes: RuntimeFactory) -> None:
    h, tracker = harness(runtimes)
    await h.start("x", execution_id="e1")
    await h.alarm_at(6000)
    (started,) = tracker.at("workflow.started")
    assert started.snapshot["workflow:status"] == {"tag": "Running", "running_at": 1000}
    places = {"a": 0, "b": 1}
    for seen in tracker.at("step.completed"):
        name = seen.event.step_name  # type: ignore[union-attr]
        # The result is the completion marker: it carries the step's place in the order.
        assert seen.snapshot[f"step:{name}:result"]["meta"]["index"] == places[str(name)]
    (sleep,) = tracker.at("sleep.started")
    assert sleep.snapshot["sleep:sleep#1"]["resume_at"] == 6000
    assert sleep.snapshot["workflow:status"]["tag"] == "Paused"
    assert sleep.alarm == 6000
    (paused,) = tracker.at("workflow.paused")
    assert paused.snapshot["workflow:status"]["resume_at"] == 6000
    assert paused.alarm == 6000
    (resumed,) = tracker.at("workflow.resumed")
    assert resumed.snapshot["workflow:status"] == {"tag": "Running", "running_at": 6000}
    (completed,) = tracker.at("workflow.completed")
    assert completed.snapshot["workflow:status"]["tag"] == "Completed"
    assert completed.snapshot["workflow:output"] == "done"
    assert completed.alarm is None


async def test_events_are_in_causal_order_around_a_sleep_and_a_retry(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("try again")
        return "B"

    async def body(_: Any) -> str:
        await durably.step("a", lambda: "A")
        await durably.sleep("5s")
        await durably.step("b", flaky, retry=durably.Retry(1, delay="1s", jitter=False))
        await durably.step("c", lambda: "C")
        return "done"

    h, tracker = harness(runtimes, body)
    await h.start("x", execution_id="e1")
    await h.alarm_at(6000)  # the sleep ends; b fails and is retried 1 s later
    await h.alarm_at(7000)
    assert tracker.types() == [
        "workflow.started",
        "step.started",
        "step.completed",
        "sleep.started",
        "workflow.paused",
        "workflow.resumed",
        "step.completed",  # a, from storage
        "sleep.completed",  # before b starts, not after b's failure
        "step.started",
        "step.failed",
        "retry.scheduled",
        "workflow.paused",
        "workflow.resumed",
        "step.completed",  # a, from storage; the sleep is recorded done: no second event
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    # What made the sleep complete was committed before its event: the Resume at 6000,
    # past the stored resume time.
    (done,) = tracker.at("sleep.completed")
    assert done.event.duration_ms == 5000  # type: ignore[union-attr]
    assert done.snapshot["workflow:status"] == {"tag": "Running", "running_at": 6000}
    assert done.snapshot["sleep:sleep#1"]["resume_at"] == 6000
    # The "done" record itself went with the next commit (the retry's pause).
    (paused,) = [s for s in tracker.at("workflow.paused") if s.now == 6000]
    assert paused.snapshot["sleep:sleep#1"]["completed"] is True


async def test_through_the_engine_the_sleep_completes_before_the_next_step_starts() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("try again")
        return "B"

    @durably.workflow(name="causal")
    async def causal() -> str:
        await durably.step("a", lambda: "A")
        await durably.sleep("5s")
        await durably.step("b", flaky, retry=durably.Retry(1, delay="1s", jitter=False))
        await durably.step("c", lambda: "C")
        return "done"

    clock = ManualClock(time_ms=1_000)
    tracker = InMemoryTracker()
    async with durably.Engine(
        [causal], backend="memory://", clock=clock, tracker=tracker
    ) as engine:
        (await engine.start(causal, id="c1")).unwrap()
        clock.time_ms = 6_000
        await engine.run_until_idle()  # the sleep ends; b fails, retried at 7000
        clock.time_ms = 7_000
        await engine.run_until_idle()
        assert (await engine.result("c1")).unwrap() == "done"
    after_sleep = tracker.types()[tracker.types().index("sleep.started") :]
    assert [t for t in after_sleep if t.startswith(("sleep.", "step.started", "step.failed"))] == [
        "sleep.started",
        "sleep.completed",
        "step.started",  # b, attempt 1
        "step.failed",
        "step.started",  # b, attempt 2
        "step.started",  # c
    ]


async def test_a_sleep_already_over_completes_before_the_next_step_starts(
    runtimes: RuntimeFactory,
) -> None:
    async def body(_: Any) -> str:
        await durably.step("a", lambda: "A")
        await durably.sleep_until(500)  # in the past: no pause
        await durably.sleep("0s")
        await durably.step("b", lambda: "B")
        return "done"

    h, tracker = harness(runtimes, body)
    await h.start("x", execution_id="e1")
    assert tracker.types() == [
        "workflow.started",
        "step.started",
        "step.completed",
        "sleep.completed",
        "sleep.completed",
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    snapshot = h.handle.storage_snapshot()
    assert snapshot["sleep:sleep#1"] == {
        "resume_at": 500,
        "duration_ms": 0,
        "completed": True,
        "position": 1,
    }
    assert snapshot["sleep:sleep#2"]["completed"] is True


async def test_queued_event(runtimes: RuntimeFactory) -> None:
    h, tracker = harness(runtimes)
    call = durably.WorkflowCall("order", "x", execution_id="e1")
    (await h.orchestrator().queue(call)).unwrap()
    (queued,) = tracker.at("workflow.queued")
    assert queued.event.input == "x"  # type: ignore[union-attr]
    assert queued.event.execution_id == "e1"
    assert queued.snapshot["workflow:status"] == {"tag": "Queued", "queued_at": 1000}
    assert queued.alarm == 1000
    await h.alarm_at(1000)
    assert tracker.types()[:2] == ["workflow.queued", "workflow.started"]


async def test_cancelled_event_carries_the_reason(runtimes: RuntimeFactory) -> None:
    h, tracker = harness(runtimes)
    await h.start("x", execution_id="e1")
    h.handle.set_time(2000)
    (await h.orchestrator().cancel(reason="user asked")).unwrap()
    (cancelled,) = tracker.at("workflow.cancelled")
    event = cancelled.event
    assert (event.reason, event.completed_steps) == ("user asked", ("a",))  # type: ignore[union-attr]
    assert (event.timestamp, event.execution_id) == (2000, "e1")
    assert cancelled.snapshot["workflow:status"]["tag"] == "Cancelled"


async def test_failed_event_carries_the_error(runtimes: RuntimeFactory) -> None:
    def broken() -> None:
        raise ValueError("broken")

    async def body(_: Any) -> None:
        await durably.step("a", broken)

    h, tracker = harness(runtimes, body)
    await h.start("x", execution_id="e1")
    (failed,) = tracker.at("workflow.failed")
    error = failed.event.error  # type: ignore[union-attr]
    assert isinstance(error, WorkflowError)
    assert (error.type, error.message, error.step_name) == ("ValueError", "broken", "a")
    assert failed.snapshot["workflow:status"]["tag"] == "Failed"
    (step_failed,) = tracker.of_type("step.failed")
    assert (step_failed.step_name, step_failed.will_retry) == ("a", False)


async def test_recovered_and_purged_events_follow_their_commits(runtimes: RuntimeFactory) -> None:
    calls: list[int] = []

    def once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise Crash
        return "ok"

    async def body(_: Any) -> str:
        return await durably.step("s", once)

    h, tracker = harness(runtimes, body)
    h.purge = PurgeConfig(enabled=True, delay_ms=0)
    with pytest.raises(Crash):
        await h.start("x", execution_id="e1")
    await h.alarm_at(2000)
    (recovered,) = tracker.at("workflow.recovered")
    assert (recovered.event.attempt, recovered.event.reason) == (1, "infrastructure_restart")  # type: ignore[union-attr]
    assert recovered.snapshot["workflow:status"] == {"tag": "Running", "running_at": 2000}
    assert recovered.snapshot["workflow:recoveryAttempts"] == 1
    assert recovered.event.execution_id == "e1"
    await h.alarm_at(2000)
    (purged,) = tracker.at("workflow.purged")
    assert set(purged.snapshot) == {"workflow:status", "workflow:name", "workflow:tombstone"}
    assert (purged.event.workflow_name, purged.event.execution_id) == ("order", "e1")


async def test_a_failing_tracker_never_fails_the_workflow(
    runtimes: RuntimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(runtimes("i1", 1000), durably.make(order, name="order"), tracker=RaisingTracker())
    with caplog.at_level(logging.ERROR, logger="durably"):
        result = await h.start("x", execution_id="e1")
        assert result.status is not None
        assert result.status.tag == "Paused"
        await h.alarm_at(6000)
    status = (await h.orchestrator().get_status()).unwrap()
    assert status.status is not None
    assert status.status.tag == "Completed"
    assert any("tracker failed" in r.getMessage() for r in caplog.records)


async def test_logging_tracker_logs_each_event(
    runtimes: RuntimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(runtimes("i1", 1000), durably.make(order, name="order"), tracker=LoggingTracker())
    with caplog.at_level(logging.INFO, logger="durably.events"):
        await h.start("x", execution_id="e1")
    records = [r for r in caplog.records if r.name == "durably.events"]
    assert [r.getMessage() for r in records] == [
        "workflow.started i1",
        "step.started i1",
        "step.completed i1",
        "sleep.started i1",
        "workflow.paused i1",
    ]
    data = records[-1].event  # type: ignore[attr-defined]
    assert data["type"] == "workflow.paused"
    assert (data["workflow_id"], data["workflow_name"], data["execution_id"]) == (
        "i1",
        "order",
        "e1",
    )
    assert (data["resume_at"], data["timestamp"]) == (6000, 1000)


async def test_logging_tracker_is_silent_below_its_level(
    runtimes: RuntimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(
        runtimes("i1", 1000),
        durably.make(order, name="order"),
        tracker=LoggingTracker(level=logging.DEBUG),
    )
    with caplog.at_level(logging.INFO, logger="durably.events"):
        await h.start("x", execution_id="e1")
    assert [r for r in caplog.records if r.name == "durably.events"] == []
