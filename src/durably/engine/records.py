"""What the engine's queries answer about one instance: its steps, and its timeline.

A timeline is a header (what the instance is and where it stands) and rows in the order
things happened. Rows are a closed union of frozen classes, each with a stable ``kind``
(stored in JSON as ``"kind"``); new kinds (waits, events, children) are new classes.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeAlias

import attrs

from durably.domain.records import AlarmFailure, JsonValue
from durably.domain.serialization import register_tagged_union
from durably.domain.status import WorkflowError, WorkflowStatus

__all__ = [
    "StepRecord",
    "TimelineHeader",
    "StepAttemptRow",
    "SleepRow",
    "MessageRow",
    "StatusRow",
    "TimelineRow",
    "Timeline",
    "AttemptOutcome",
]

AttemptOutcome: TypeAlias = Literal["ok", "failed", "retrying"]
"""How a step attempt ended: it succeeded; it failed (for good, or a retry ran since);
it failed and its retry is scheduled (``retry_at``)."""


@attrs.frozen
class StepRecord:
    """One step of an instance: completed, or failed (and maybe waiting for its retry)."""

    name: str
    attempt: int
    started_at: int | None
    completed_at: int | None
    duration_ms: int | None
    error: str | None = None


@attrs.frozen
class TimelineHeader:
    """What an instance is and where it stands."""

    id: str
    workflow: str
    status: WorkflowStatus
    input: JsonValue
    """The stored input (JSON)."""
    output: JsonValue
    """The stored output (JSON) of a completed instance, else ``None``."""
    created_at: int | None
    updated_at: int | None
    execution_id: str | None
    completed_steps: int
    next_wakeup_at: int | None
    """The instance's alarm: when a worker next takes it up (``None``: nothing is set).
    For a sleep or a retry it is the resume time; after a failed alarm, the retry of it."""
    last_alarm_error: AlarmFailure | None
    """Why the last alarm failed (a worker without the workflow, ...), until a segment ends."""
    recovery_attempts: int = 0
    """Recoveries without progress since the last durability point."""
    purged_at: int | None = None


@attrs.frozen
class StepAttemptRow:
    """One attempt of a step."""

    name: str
    """The step key (``charge``, ``charge#2``)."""
    attempt: int
    started_at: int | None
    """``None`` for an attempt recorded before durably kept the history."""
    ended_at: int | None
    duration_ms: int | None
    outcome: AttemptOutcome
    error: WorkflowError | None = None
    retry_at: int | None = None
    """When the next attempt runs (``outcome == "retrying"`` only)."""
    kind: ClassVar[Literal["step"]] = "step"


@attrs.frozen
class SleepRow:
    """A durable sleep."""

    name: str
    """The sleep key (its name, or ``sleep#n``)."""
    started_at: int
    duration_ms: int
    resume_at: int
    done: bool
    kind: ClassVar[Literal["sleep"]] = "sleep"


@attrs.frozen
class MessageRow:
    """A message delivered to the instance's inbox from outside (a cancel request)."""

    seq: int
    type: str
    """What it asks: ``"cancel"``."""
    name: str | None
    sent_at: int
    consumed: bool
    """Whether the instance acted on it."""
    payload: JsonValue = None
    kind: ClassVar[Literal["message"]] = "message"


@attrs.frozen
class StatusRow:
    """A status the instance went through, as far as its stored keys tell."""

    status: str
    """``Created``, ``Queued``, ``Running``, ``Recovered``, ``Completed``, ``Failed``,
    ``Cancelled`` or ``Purged``."""
    at: int
    detail: str | None = None
    kind: ClassVar[Literal["status"]] = "status"


TimelineRow: TypeAlias = StepAttemptRow | SleepRow | MessageRow | StatusRow


@attrs.frozen
class Timeline:
    """An instance's header and what happened to it, in order (``Engine.timeline``)."""

    header: TimelineHeader
    rows: tuple[TimelineRow, ...]


register_tagged_union(
    TimelineRow,
    (StepAttemptRow, SleepRow, MessageRow, StatusRow),
    name="TimelineRow",
    tag_attr="kind",
)
