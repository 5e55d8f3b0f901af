"""The records durably stores beside statuses: step results and attempts, sleeps, purges."""

from __future__ import annotations

from typing import Any, TypeAlias

import attrs

from durably.domain.status import WorkflowError, WorkflowStatus

__all__ = [
    "JsonValue",
    "StepMeta",
    "StepResult",
    "StepAttempt",
    "SleepRecord",
    "Tombstone",
]

JsonValue: TypeAlias = Any
"""A value made of dict (str keys), list, str, int, float, bool and None."""


@attrs.frozen
class StepMeta:
    """When and how a step completed."""

    completed_at: int
    attempt: int
    duration_ms: int
    started_at: int | None = None
    index: int | None = None
    """Its place in the order steps first completed (the result is its completion marker)."""


@attrs.frozen
class StepResult:
    """A committed step: its value (as stored JSON) and how it got there."""

    value: JsonValue
    meta: StepMeta


@attrs.frozen
class StepAttempt:
    """The retry state of a step that has failed at least once."""

    attempt: int
    """The number of the next attempt to run (1-based)."""
    first_started_at: int
    last_error: WorkflowError | None = None
    started_at: int | None = None


@attrs.frozen
class SleepRecord:
    """A sleep's fixed resume time, and whether it is over."""

    resume_at: int
    duration_ms: int
    completed: bool = False


@attrs.frozen
class Tombstone:
    """What remains of a purged instance: its final status and when it was purged."""

    workflow_name: str
    status: WorkflowStatus
    purged_at: int
