"""What the engine's queries answer about one instance: its steps, and its timeline.

A timeline is a header (what the instance is and where it stands) and rows in the order
things happened. Rows are a closed union of frozen classes, each with a stable ``kind``
(stored in JSON as ``"kind"``); new kinds (waits, events, children) are new classes.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeAlias

import attrs

from durably.domain.records import AlarmFailure, JsonValue, ParentLink, WaitOutcome
from durably.domain.serialization import register_tagged_union
from durably.domain.status import WorkflowError, WorkflowStatus

__all__ = [
    "StepRecord",
    "TimelineHeader",
    "StepAttemptRow",
    "SleepRow",
    "MessageRow",
    "WaitRow",
    "PublishedRow",
    "ChildRow",
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
    parent: ParentLink | None = None
    """The instance's parent and its key there, when it is a child workflow."""
    children: tuple[str, ...] = ()
    """The ids of the children it started, in the order of their rows (``ChildRow``)."""


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
    """A message delivered to the instance's inbox from outside (a cancel request, an
    event sent by ``send_event``, the end of a child: its ``ChildRow`` has the same
    ``seq``)."""

    seq: int
    """Its number in the instance's delivery order (a wait that received it names it)."""
    type: str
    """What it is: ``"cancel"``, ``"event"`` or ``"child"`` (a child ended)."""
    name: str | None
    """An event's name; the id of the child that ended."""
    sent_at: int
    consumed: bool
    """Whether the instance acted on it (an event: a wait took it; a child's end: the
    parent received it, and its ``ChildRow`` has the outcome recorded)."""
    payload: JsonValue = None
    event_id: str | None = None
    """The ``event_id`` an event was sent with (it dedupes a second send)."""
    kind: ClassVar[Literal["message"]] = "message"


@attrs.frozen
class WaitRow:
    """A ``wait_for_event``: waiting, or how it ended."""

    name: str
    """The wait key (``approval``, ``approval#2``)."""
    event_name: str
    started_at: int
    deadline_at: int | None
    """When it times out (``None``: never)."""
    timeout_ms: int | None
    outcome: WaitOutcome
    """``"waiting"``, ``"received"`` or ``"timed_out"``."""
    ended_at: int | None = None
    seq: int | None = None
    """The number of the inbox message it received (its ``MessageRow.seq``)."""
    event_id: str | None = None
    """The ``event_id`` of the event it received, if it was sent with one."""
    sent_at: int | None = None
    """When the event it received was sent."""
    payload: JsonValue = None
    """The payload it received."""
    kind: ClassVar[Literal["wait"]] = "wait"


@attrs.frozen
class PublishedRow:
    """The latest value ``set_event`` published under a key (older values are not kept)."""

    key: str
    value: JsonValue
    version: int
    """How many times the key was set (the latest value is the ``version``-th)."""
    set_at: int
    """When the latest value was set."""
    kind: ClassVar[Literal["published"]] = "published"


@attrs.frozen
class ChildRow:
    """A child workflow the instance started (``child``, ``start_child``), and how it
    ended once its end reached the parent's inbox."""

    key: str
    """Its key in the parent (``invoice``, ``invoice#2``)."""
    child_id: str
    workflow: str
    started_at: int
    outcome: str | None = None
    """The child's final status tag (``"Completed"``, ``"Failed"``, ``"Cancelled"``);
    ``None``: it has not ended (no end in the parent's inbox)."""
    ended_at: int | None = None
    output: JsonValue = None
    """Its output as stored (``Completed``)."""
    error: WorkflowError | None = None
    """Its error (``Failed``)."""
    reason: str | None = None
    """The reason of its cancel (``Cancelled``)."""
    seq: int | None = None
    """The number of the inbox message that told its end (its ``MessageRow.seq``)."""
    kind: ClassVar[Literal["child"]] = "child"


@attrs.frozen
class StatusRow:
    """A status the instance went through, as far as its stored keys tell."""

    status: str
    """``Created``, ``Queued``, ``Running``, ``Recovered``, ``Reopened`` (an operator's
    ``resume``), ``Completed``, ``Failed``, ``Cancelled`` or ``Purged``."""
    at: int
    detail: str | None = None
    kind: ClassVar[Literal["status"]] = "status"


TimelineRow: TypeAlias = (
    StepAttemptRow | SleepRow | WaitRow | PublishedRow | ChildRow | MessageRow | StatusRow
)


@attrs.frozen
class Timeline:
    """An instance's header and what happened to it, in order (``Engine.timeline``)."""

    header: TimelineHeader
    rows: tuple[TimelineRow, ...]


register_tagged_union(
    TimelineRow,
    (StepAttemptRow, SleepRow, WaitRow, PublishedRow, ChildRow, MessageRow, StatusRow),
    name="TimelineRow",
    tag_attr="kind",
)
