"""The records durably stores beside statuses: step results and attempts, sleeps, waits,
published events, purges."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import attrs

from durably.domain.status import WorkflowError, WorkflowStatus

__all__ = [
    "JsonValue",
    "KEPT_FAILURES",
    "StepMeta",
    "StepResult",
    "FailedAttempt",
    "StepAttempt",
    "SleepRecord",
    "WaitOutcome",
    "WaitRecord",
    "PublishedEvent",
    "ParentLink",
    "ChildRecord",
    "PatchMarker",
    "Reopening",
    "AlarmFailure",
    "Tombstone",
]

JsonValue: TypeAlias = Any
"""A value made of dict (str keys), list, str, int, float, bool and None."""

KEPT_FAILURES = 20
"""How many failed attempts a step's history keeps (the most recent ones): a retry's
commit rewrites the history, so it must stay small however many retries a step has."""


@attrs.frozen
class StepMeta:
    """When and how a step completed."""

    completed_at: int
    attempt: int
    duration_ms: int
    started_at: int | None = None
    index: int | None = None
    """Its place in the order steps first completed (the result is its completion marker)."""
    position: int | None = None
    """Its place among the durable points in the order the workflow called them (the
    determinism check); ``None`` in records written before positions were kept."""


@attrs.frozen
class StepResult:
    """A committed step: its value (as stored JSON) and how it got there."""

    value: JsonValue
    meta: StepMeta


@attrs.frozen
class FailedAttempt:
    """One failed attempt of a step: when it ran, for how long, and why it failed."""

    attempt: int
    started_at: int
    ended_at: int
    duration_ms: int
    error: WorkflowError


@attrs.frozen
class StepAttempt:
    """The attempts of a step that has failed at least once (its retry state and history).

    Kept after the step succeeds or fails for good: it is the step's history. A record
    stored before ``failures`` existed reads back with no failures.
    """

    attempt: int
    """The number of the next attempt to run (1-based)."""
    first_started_at: int
    last_error: WorkflowError | None = None
    started_at: int | None = None
    failures: tuple[FailedAttempt, ...] = ()
    """The failed attempts, oldest first (the most recent ``KEPT_FAILURES`` of them)."""
    failed_for_good: bool = False
    """The last failure ended the step (not retryable, or retries used up): a later run
    of the step (a replay that caught the failure, an operator's resume) starts with
    fresh attempts."""
    position: int | None = None


@attrs.frozen
class SleepRecord:
    """A sleep's fixed resume time, and whether it is over."""

    resume_at: int
    duration_ms: int
    completed: bool = False
    position: int | None = None


WaitOutcome: TypeAlias = Literal["waiting", "received", "timed_out"]


@attrs.frozen
class WaitRecord:
    """A ``wait_for_event``: its deadline, fixed at the first arrival, and how it ended.

    Written ``waiting`` with the pause (so the deadline never moves), then ``received``
    (with the event) or ``timed_out`` in the commit that consumes the event: a replay
    returns the same payload, or raises the same timeout.
    """

    event_name: str
    started_at: int
    deadline: int | None
    """When the wait times out (epoch ms; ``None``: never)."""
    timeout_ms: int | None
    outcome: WaitOutcome = "waiting"
    payload: JsonValue = None
    seq: int | None = None
    """The inbox number of the event received."""
    event_id: str | None = None
    sent_at: int | None = None
    ended_at: int | None = None
    position: int | None = None


@attrs.frozen
class PublishedEvent:
    """The latest value published under a key by ``set_event``.

    ``version`` counts the ``set_event`` calls of that key in the workflow's order (the
    first is 1): a replay of call ``n`` finds ``version >= n`` and writes nothing, so a
    replay never puts back an older value.
    """

    value: JsonValue
    version: int
    set_at: int
    position: int | None = None
    """The position of the call that set it (the latest one)."""


@attrs.frozen
class ParentLink:
    """Stored in a child (``workflow:parent``): its parent, and its key there."""

    id: str
    key: str


@attrs.frozen
class ChildRecord:
    """A child in its parent (``child:<key>``): started, then how it ended.

    Written when the child is started (the child's creation commits first, so a replay
    finds it by its id), and again with its outcome, from the message its end sent,
    in the commit that consumes that message: a replay returns the same output, or
    raises the same ``ChildWorkflowError``, even after the child is purged.
    """

    child_id: str
    workflow: str
    started_at: int
    outcome: str | None = None
    """The child's final status tag (``None``: not known to have ended)."""
    output: JsonValue = None
    """Its output as stored (``Completed``)."""
    error: WorkflowError | None = None
    """Its error (``Failed``)."""
    reason: str | None = None
    """The reason of its cancel (``Cancelled``)."""
    ended_at: int | None = None
    position: int | None = None


@attrs.frozen
class PatchMarker:
    """``patched(change_id)`` was first reached by code with the change (``patch:<id>``)."""

    position: int
    at: int


@attrs.frozen
class Reopening:
    """An operator's ``resume`` of a final instance (kept in ``workflow:reopens``)."""

    at: int
    previous: str
    """The status tag it was reopened from (``Failed``, ``Cancelled``)."""
    reason: str | None = None


@attrs.frozen
class AlarmFailure:
    """Why the last alarm of an instance failed (cleared when a segment next ends)."""

    error: WorkflowError
    failed_at: int
    first_failed_at: int
    """When the first of the failures in a row happened."""
    count: int = 1
    """How many alarms in a row failed."""


@attrs.frozen
class Tombstone:
    """What remains of a purged instance: its final status and when it was purged."""

    workflow_name: str
    status: WorkflowStatus
    purged_at: int
