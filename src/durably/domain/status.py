"""Workflow statuses: a closed union of frozen attrs classes, each with a stable ``tag``."""

from __future__ import annotations

import traceback
from typing import ClassVar, Literal, TypeAlias

import attrs

__all__ = [
    "WorkflowError",
    "Pending",
    "Queued",
    "Running",
    "Paused",
    "Completed",
    "Failed",
    "Cancelled",
    "WorkflowStatus",
    "PauseReason",
    "StatusTag",
    "TERMINAL_TAGS",
    "is_terminal",
]

PauseReason: TypeAlias = Literal["sleep", "retry", "event", "child"]
StatusTag: TypeAlias = Literal[
    "Pending", "Queued", "Running", "Paused", "Completed", "Failed", "Cancelled"
]


@attrs.frozen
class WorkflowError:
    """The stored description of why a workflow failed."""

    message: str
    type: str | None = None
    traceback: str | None = None
    step_name: str | None = None
    attempt: int | None = None

    @classmethod
    def from_exception(
        cls, error: BaseException, step_name: str | None = None, attempt: int | None = None
    ) -> WorkflowError:
        """Describe ``error``: its type, message and traceback, and the step that raised it."""
        tb = "".join(traceback.format_exception(error)) if error.__traceback__ else None
        return cls(
            message=str(error) or type(error).__name__,
            type=type(error).__name__,
            traceback=tb,
            step_name=step_name,
            attempt=attempt,
        )


@attrs.frozen
class Pending:
    """Initialized, not started yet."""

    tag: ClassVar[Literal["Pending"]] = "Pending"


@attrs.frozen
class Queued:
    """Waiting for its first alarm to start."""

    queued_at: int
    tag: ClassVar[Literal["Queued"]] = "Queued"


@attrs.frozen
class Running:
    """Being executed by an owner."""

    running_at: int
    tag: ClassVar[Literal["Running"]] = "Running"


@attrs.frozen
class Paused:
    """Waiting for a sleep to end, a retry's back-off to pass, or a delivery (an event,
    a child's end) until ``resume_at`` (``None``: no deadline)."""

    reason: PauseReason
    resume_at: int | None
    step_name: str | None = None
    waits: tuple[str, ...] = attrs.field(default=(), metadata={"omit_if_default": True})
    """What a delivery must match to resume it early (``domain/inbox.py`` ``wait_key``);
    not stored when empty, so a sleep's or a retry's status is stored as before."""
    tag: ClassVar[Literal["Paused"]] = "Paused"


@attrs.frozen
class Completed:
    """Finished with an output (terminal)."""

    completed_at: int
    tag: ClassVar[Literal["Completed"]] = "Completed"


@attrs.frozen
class Failed:
    """Finished with an error (terminal)."""

    failed_at: int
    error: WorkflowError
    tag: ClassVar[Literal["Failed"]] = "Failed"


@attrs.frozen
class Cancelled:
    """Stopped by a cancel request (terminal)."""

    cancelled_at: int
    reason: str | None = None
    tag: ClassVar[Literal["Cancelled"]] = "Cancelled"


WorkflowStatus: TypeAlias = Pending | Queued | Running | Paused | Completed | Failed | Cancelled

TERMINAL_TAGS: frozenset[str] = frozenset({"Completed", "Failed", "Cancelled"})


def is_terminal(status: WorkflowStatus | None) -> bool:
    """Whether the status is Completed, Failed or Cancelled."""
    return status is not None and status.tag in TERMINAL_TAGS
