"""The in-process trackers and the event emitter."""

from __future__ import annotations

import logging
import uuid

import attrs
import pytest

from durably.domain.events import (
    StepCompleted,
    WorkflowEvent,
    WorkflowRecovered,
    WorkflowResumed,
    WorkflowStarted,
)
from durably.services.trackers import EventEmitter, InMemoryTracker, LoggingTracker, NoopTracker
from durably.testing import create_in_memory_runtime

BUILT: list[str] = []


@attrs.frozen(kw_only=True)
class ProbeEvent(WorkflowResumed):
    """An event that records that it was built."""

    def __attrs_post_init__(self) -> None:
        BUILT.append(self.workflow_name)


class CountingClock:
    """A runtime whose clock counts how often it was read."""

    def __init__(self) -> None:
        self.reads = 0

    @property
    def instance_id(self) -> str:
        return "counted"

    def now(self) -> int:
        self.reads += 1
        return 123


class ExplodingTracker:
    def __init__(self) -> None:
        self.calls = 0

    def emit(self, event: WorkflowEvent) -> None:
        self.calls += 1
        raise RuntimeError("tracker is down")

    async def flush(self) -> None:
        raise RuntimeError("unused")

    def pending(self) -> int:
        return 0

    async def close(self) -> None:
        return None


def resumed(workflow_id: str = "wf-1", timestamp: int = 1) -> WorkflowResumed:
    return WorkflowResumed(
        event_id=str(uuid.uuid4()), timestamp=timestamp, workflow_id=workflow_id, workflow_name="n"
    )


def step_completed(step_name: str) -> StepCompleted:
    return StepCompleted(
        event_id="e",
        timestamp=2,
        workflow_id="wf-1",
        workflow_name="n",
        step_name=step_name,
        attempt=1,
        duration_ms=5,
    )


# --- NoopTracker ---------------------------------------------------------------------------------


async def test_noop_tracker_drops_everything() -> None:
    tracker = NoopTracker()
    tracker.emit(resumed())
    assert tracker.pending() == 0
    await tracker.flush()
    await tracker.close()
    assert tracker.pending() == 0


# --- InMemoryTracker -----------------------------------------------------------------------------


async def test_in_memory_tracker_keeps_events_in_order() -> None:
    tracker = InMemoryTracker()
    first, second, third = resumed(), step_completed("a"), step_completed("b")
    for event in (first, second, third):
        tracker.emit(event)
    assert tracker.events == [first, second, third]
    assert tracker.types() == ["workflow.resumed", "step.completed", "step.completed"]
    assert tracker.pending() == 0
    await tracker.flush()
    await tracker.close()
    assert len(tracker.events) == 3


def test_in_memory_tracker_of_type_by_string_and_class() -> None:
    tracker = InMemoryTracker()
    tracker.emit(step_completed("a"))
    tracker.emit(resumed())
    tracker.emit(step_completed("b"))
    by_string = tracker.of_type("step.completed")
    by_class = tracker.of_type(StepCompleted)
    assert [e.step_name for e in by_string] == ["a", "b"]
    assert by_class == by_string
    assert tracker.of_type("workflow.resumed") == [tracker.events[1]]
    assert tracker.of_type(WorkflowStarted) == []
    assert tracker.of_type("no.such.type") == []


def test_in_memory_tracker_clear() -> None:
    tracker = InMemoryTracker()
    tracker.emit(resumed())
    tracker.clear()
    assert tracker.events == []
    assert tracker.types() == []
    tracker.emit(step_completed("c"))
    assert tracker.types() == ["step.completed"]


# --- LoggingTracker ------------------------------------------------------------------------------


def test_logging_tracker_logs_a_structured_record(caplog: pytest.LogCaptureFixture) -> None:
    tracker = LoggingTracker()
    with caplog.at_level(logging.INFO, logger="durably.events"):
        tracker.emit(step_completed("charge"))
    records = [r for r in caplog.records if r.name == "durably.events"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.INFO
    assert "step.completed" in record.getMessage()
    assert "wf-1" in record.getMessage()
    data = record.__dict__["event"]
    assert isinstance(data, dict)
    assert data["type"] == "step.completed"
    assert data["step_name"] == "charge"
    assert data["workflow_id"] == "wf-1"
    assert data["duration_ms"] == 5


def test_logging_tracker_uses_the_given_logger_and_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("my.app.events")
    tracker = LoggingTracker(logger, level=logging.WARNING)
    assert tracker.logger is logger
    with caplog.at_level(logging.WARNING, logger="my.app.events"):
        tracker.emit(resumed("wf-9"))
    records = [r for r in caplog.records if r.name == "my.app.events"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].__dict__["event"]["type"] == "workflow.resumed"
    assert records[0].__dict__["event"]["workflow_id"] == "wf-9"


def test_logging_tracker_skips_disabled_levels(caplog: pytest.LogCaptureFixture) -> None:
    tracker = LoggingTracker(level=logging.DEBUG)
    with caplog.at_level(logging.INFO, logger="durably.events"):
        tracker.emit(resumed())
    assert [r for r in caplog.records if r.name == "durably.events"] == []


async def test_logging_tracker_has_nothing_pending() -> None:
    tracker = LoggingTracker()
    assert tracker.pending() == 0
    await tracker.flush()
    await tracker.close()


# --- EventEmitter --------------------------------------------------------------------------------


def test_emitter_with_a_noop_tracker_builds_nothing() -> None:
    clock = CountingClock()
    emitter = EventEmitter(NoopTracker(), clock)
    assert emitter.enabled is False
    BUILT.clear()
    emitter.emit(ProbeEvent, "wf", None)
    bound = emitter.bound("wf", "exec")
    assert bound.enabled is False
    bound.emit(ProbeEvent)
    assert BUILT == []
    assert clock.reads == 0


def test_probe_event_is_built_by_an_enabled_emitter() -> None:
    clock = CountingClock()
    tracker = InMemoryTracker()
    emitter = EventEmitter(tracker, clock)
    BUILT.clear()
    emitter.emit(ProbeEvent, "wf", None)
    assert BUILT == ["wf"]
    assert clock.reads == 1
    assert len(tracker.events) == 1


def test_emitter_fills_the_common_fields_from_the_runtime() -> None:
    runtime, handle = create_in_memory_runtime(instance_id="inst-7", initial_time=1_700_000_000_000)
    tracker = InMemoryTracker()
    emitter = EventEmitter(tracker, runtime.runtime)
    assert emitter.enabled is True
    emitter.emit(WorkflowRecovered, "order", "exec-1", attempt=2, reason="manual")
    handle.advance_time(5)
    emitter.bound("order").emit(WorkflowResumed)
    first, second = tracker.events
    assert isinstance(first, WorkflowRecovered)
    assert first.workflow_id == "inst-7"
    assert first.workflow_name == "order"
    assert first.execution_id == "exec-1"
    assert first.timestamp == 1_700_000_000_000
    assert first.attempt == 2
    assert first.reason == "manual"
    parsed = uuid.UUID(first.event_id)
    assert parsed.version == 7
    assert parsed.int >> 80 == 1_700_000_000_000  # the UUID v7 carries the timestamp
    assert isinstance(second, WorkflowResumed)
    assert second.timestamp == 1_700_000_000_005
    assert second.execution_id is None
    assert second.event_id != first.event_id


def test_bound_emitter_names_its_workflow() -> None:
    runtime, _ = create_in_memory_runtime(instance_id="inst-b", initial_time=10)
    tracker = InMemoryTracker()
    bound = EventEmitter(tracker, runtime.runtime).bound("billing", "exec-2")
    assert bound.enabled is True
    assert bound.workflow_name == "billing"
    assert bound.execution_id == "exec-2"
    bound.emit(StepCompleted, step_name="s", attempt=1, duration_ms=0, cached=True)
    event = tracker.of_type(StepCompleted)[0]
    assert event.workflow_name == "billing"
    assert event.execution_id == "exec-2"
    assert event.cached is True


def test_a_tracker_that_raises_never_propagates(caplog: pytest.LogCaptureFixture) -> None:
    runtime, _ = create_in_memory_runtime(instance_id="inst-x", initial_time=10)
    tracker = ExplodingTracker()
    emitter = EventEmitter(tracker, runtime.runtime)
    with caplog.at_level(logging.ERROR, logger="durably"):
        emitter.emit(WorkflowResumed, "wf", None)
        emitter.bound("wf").emit(WorkflowResumed)
    assert tracker.calls == 2
    assert any("tracker failed" in r.getMessage() for r in caplog.records)


def test_bad_event_fields_never_propagate(caplog: pytest.LogCaptureFixture) -> None:
    runtime, _ = create_in_memory_runtime(instance_id="inst-y", initial_time=10)
    tracker = InMemoryTracker()
    emitter = EventEmitter(tracker, runtime.runtime)
    with caplog.at_level(logging.ERROR, logger="durably"):
        emitter.emit(WorkflowResumed, "wf", None, no_such_field=1)
    assert tracker.events == []
    assert any("tracker failed" in r.getMessage() for r in caplog.records)
