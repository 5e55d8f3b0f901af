"""Events: what happened to a workflow, emitted to a tracker after the commit that made it so.

A closed union of frozen attrs classes; each has a stable ``type`` such as
``"step.completed"`` and the common fields ``event_id`` (a UUID v7), ``timestamp``
(from the runtime clock), ``workflow_id``, ``workflow_name`` and ``execution_id``.
"""

from __future__ import annotations

import os
import uuid
from typing import ClassVar, Literal, TypeAlias

import attrs

from durably.domain.records import JsonValue
from durably.domain.status import PauseReason, WorkflowError

__all__ = [
    "uuid7",
    "EventBase",
    "WorkflowStarted",
    "WorkflowQueued",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowPaused",
    "WorkflowResumed",
    "WorkflowRecovered",
    "WorkflowCancelled",
    "WorkflowPurged",
    "StepStarted",
    "StepCompleted",
    "StepFailed",
    "RetryScheduled",
    "RetryExhausted",
    "SleepStarted",
    "SleepCompleted",
    "TimeoutExceeded",
    "EventSent",
    "EventReceived",
    "EventTimedOut",
    "WorkflowEvent",
    "EVENT_TYPES",
]


def uuid7(ms: int) -> str:
    """A UUID version 7 (time-ordered) for a time in epoch ms."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= (rand >> 68) << 64 & (0xFFF << 64)  # 12 random bits
    value |= 0b10 << 62  # variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF  # 62 random bits
    return str(uuid.UUID(int=value))


@attrs.frozen(kw_only=True)
class EventBase:
    """Fields every event has."""

    event_id: str
    timestamp: int
    workflow_id: str
    workflow_name: str
    execution_id: str | None = None


@attrs.frozen(kw_only=True)
class WorkflowStarted(EventBase):
    """A workflow began its first execution."""

    input: JsonValue = None
    type: ClassVar[Literal["workflow.started"]] = "workflow.started"


@attrs.frozen(kw_only=True)
class WorkflowQueued(EventBase):
    """A workflow was queued for a later start."""

    input: JsonValue = None
    type: ClassVar[Literal["workflow.queued"]] = "workflow.queued"


@attrs.frozen(kw_only=True)
class WorkflowCompleted(EventBase):
    """A workflow returned its output."""

    completed_steps: tuple[str, ...] = ()
    duration_ms: int = 0
    type: ClassVar[Literal["workflow.completed"]] = "workflow.completed"


@attrs.frozen(kw_only=True)
class WorkflowFailed(EventBase):
    """A workflow ended with an error."""

    error: WorkflowError
    completed_steps: tuple[str, ...] = ()
    type: ClassVar[Literal["workflow.failed"]] = "workflow.failed"


@attrs.frozen(kw_only=True)
class WorkflowPaused(EventBase):
    """A workflow paused for a sleep or a retry's back-off."""

    reason: PauseReason
    resume_at: int | None
    step_name: str | None = None
    type: ClassVar[Literal["workflow.paused"]] = "workflow.paused"


@attrs.frozen(kw_only=True)
class WorkflowResumed(EventBase):
    """A paused workflow resumed."""

    type: ClassVar[Literal["workflow.resumed"]] = "workflow.resumed"


@attrs.frozen(kw_only=True)
class WorkflowRecovered(EventBase):
    """A workflow whose owner was gone was taken over and replayed."""

    attempt: int
    reason: str
    type: ClassVar[Literal["workflow.recovered"]] = "workflow.recovered"


@attrs.frozen(kw_only=True)
class WorkflowCancelled(EventBase):
    """A workflow was cancelled."""

    reason: str | None = None
    completed_steps: tuple[str, ...] = ()
    type: ClassVar[Literal["workflow.cancelled"]] = "workflow.cancelled"


@attrs.frozen(kw_only=True)
class WorkflowPurged(EventBase):
    """A finished workflow's data was purged (its tombstone remains)."""

    type: ClassVar[Literal["workflow.purged"]] = "workflow.purged"


@attrs.frozen(kw_only=True)
class StepStarted(EventBase):
    """A step attempt began."""

    step_name: str
    attempt: int
    type: ClassVar[Literal["step.started"]] = "step.started"


@attrs.frozen(kw_only=True)
class StepCompleted(EventBase):
    """A step returned (``cached``: its stored result was replayed)."""

    step_name: str
    attempt: int
    duration_ms: int
    cached: bool = False
    type: ClassVar[Literal["step.completed"]] = "step.completed"


@attrs.frozen(kw_only=True)
class StepFailed(EventBase):
    """A step attempt failed."""

    step_name: str
    attempt: int
    error: WorkflowError
    will_retry: bool
    type: ClassVar[Literal["step.failed"]] = "step.failed"


@attrs.frozen(kw_only=True)
class RetryScheduled(EventBase):
    """A failed step will be tried again after a delay."""

    step_name: str
    attempt: int
    next_attempt_at: int
    delay_ms: int
    type: ClassVar[Literal["retry.scheduled"]] = "retry.scheduled"


@attrs.frozen(kw_only=True)
class RetryExhausted(EventBase):
    """A step used all its attempts (or its retry budget)."""

    step_name: str
    attempts: int
    type: ClassVar[Literal["retry.exhausted"]] = "retry.exhausted"


@attrs.frozen(kw_only=True)
class SleepStarted(EventBase):
    """A sleep began (its resume time is fixed from now on)."""

    duration_ms: int
    resume_at: int
    type: ClassVar[Literal["sleep.started"]] = "sleep.started"


@attrs.frozen(kw_only=True)
class SleepCompleted(EventBase):
    """A sleep ended."""

    duration_ms: int
    type: ClassVar[Literal["sleep.completed"]] = "sleep.completed"


@attrs.frozen(kw_only=True)
class TimeoutExceeded(EventBase):
    """A step attempt ran past its timeout."""

    step_name: str
    timeout_ms: int
    type: ClassVar[Literal["timeout.exceeded"]] = "timeout.exceeded"


@attrs.frozen(kw_only=True)
class EventSent(EventBase):
    """An event was delivered to the instance's inbox (by ``Engine.send_event``)."""

    event_name: str
    seq: int
    """Its number in the instance's inbox."""
    delivery_id: str | None = None
    """The sender's ``event_id`` (which dedupes), if it gave one."""
    type: ClassVar[Literal["event.sent"]] = "event.sent"


@attrs.frozen(kw_only=True)
class EventReceived(EventBase):
    """A ``wait_for_event`` took an event (consumed with the wait's record)."""

    event_name: str
    wait: str
    """The wait's key (``approval``, ``approval#2``)."""
    seq: int
    waited_ms: int
    type: ClassVar[Literal["event.received"]] = "event.received"


@attrs.frozen(kw_only=True)
class EventTimedOut(EventBase):
    """A ``wait_for_event`` reached its timeout without an event."""

    event_name: str
    wait: str
    timeout_ms: int
    type: ClassVar[Literal["event.timed_out"]] = "event.timed_out"


WorkflowEvent: TypeAlias = (
    WorkflowStarted
    | WorkflowQueued
    | WorkflowCompleted
    | WorkflowFailed
    | WorkflowPaused
    | WorkflowResumed
    | WorkflowRecovered
    | WorkflowCancelled
    | WorkflowPurged
    | StepStarted
    | StepCompleted
    | StepFailed
    | RetryScheduled
    | RetryExhausted
    | SleepStarted
    | SleepCompleted
    | TimeoutExceeded
    | EventSent
    | EventReceived
    | EventTimedOut
)

EVENT_TYPES: tuple[type[EventBase], ...] = (
    WorkflowStarted,
    WorkflowQueued,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowPaused,
    WorkflowResumed,
    WorkflowRecovered,
    WorkflowCancelled,
    WorkflowPurged,
    StepStarted,
    StepCompleted,
    StepFailed,
    RetryScheduled,
    RetryExhausted,
    SleepStarted,
    SleepCompleted,
    TimeoutExceeded,
    EventSent,
    EventReceived,
    EventTimedOut,
)
