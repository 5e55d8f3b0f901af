"""Transitions, the legal-transition table, and the one pure function that applies them."""

from __future__ import annotations

from typing import ClassVar, Literal, TypeAlias, assert_never

import attrs
from returns.result import Failure, Result, Success

from durably.domain.errors import InvalidTransitionError
from durably.domain.status import (
    Cancelled,
    Completed,
    Failed,
    Paused,
    PauseReason,
    Queued,
    Running,
    WorkflowError,
    WorkflowStatus,
)

__all__ = [
    "next_status",
    "Start",
    "Queue",
    "Resume",
    "Recover",
    "Complete",
    "Pause",
    "Fail",
    "Cancel",
    "Reopen",
    "Transition",
    "RecoverReason",
    "VALID_TRANSITIONS",
    "NO_WORKFLOW",
    "valid_transitions",
    "apply_transition",
]

RecoverReason: TypeAlias = Literal["infrastructure_restart", "stale_detection", "manual"]


@attrs.frozen
class Start:
    """Begin running (from no workflow, Pending or Queued)."""

    input: object = None
    tag: ClassVar[Literal["Start"]] = "Start"


@attrs.frozen
class Queue:
    """Accept the workflow for a later start by an alarm."""

    input: object = None
    tag: ClassVar[Literal["Queue"]] = "Queue"


@attrs.frozen
class Resume:
    """Continue after a pause."""

    tag: ClassVar[Literal["Resume"]] = "Resume"


@attrs.frozen
class Recover:
    """Take over an execution whose owner is gone."""

    reason: RecoverReason
    attempt: int
    tag: ClassVar[Literal["Recover"]] = "Recover"


@attrs.frozen
class Reopen:
    """An operator runs a failed or cancelled instance again (``Engine.resume``)."""

    reason: str | None = None
    tag: ClassVar[Literal["Reopen"]] = "Reopen"


@attrs.frozen
class Complete:
    """Finish with an output."""

    completed_steps: tuple[str, ...] = ()
    duration_ms: int = 0
    tag: ClassVar[Literal["Complete"]] = "Complete"


@attrs.frozen
class Pause:
    """Stop until ``resume_at`` (a sleep, a retry's back-off, a wait's deadline; ``None``:
    none) or until a delivery matching ``waits``."""

    reason: PauseReason
    resume_at: int | None
    step_name: str | None = None
    waits: tuple[str, ...] = ()
    tag: ClassVar[Literal["Pause"]] = "Pause"


@attrs.frozen
class Fail:
    """Finish with an error."""

    error: WorkflowError
    completed_steps: tuple[str, ...] = ()
    tag: ClassVar[Literal["Fail"]] = "Fail"


@attrs.frozen
class Cancel:
    """Stop because a user asked to."""

    reason: str | None = None
    completed_steps: tuple[str, ...] = ()
    tag: ClassVar[Literal["Cancel"]] = "Cancel"


Transition: TypeAlias = Start | Queue | Resume | Recover | Complete | Pause | Fail | Cancel | Reopen

NO_WORKFLOW = "none"
"""The ``from_status`` used when there is no workflow yet."""

VALID_TRANSITIONS: dict[str, tuple[str, ...]] = {
    NO_WORKFLOW: ("Start", "Queue"),
    "Pending": ("Start", "Queue"),
    "Queued": ("Start", "Cancel"),
    "Running": ("Complete", "Pause", "Fail", "Cancel", "Recover"),
    "Paused": ("Resume", "Cancel", "Recover"),
    "Completed": (),
    # Only by an operator's action (Engine.resume): the engine treats both as final.
    "Failed": ("Reopen",),
    "Cancelled": ("Reopen",),
}


def valid_transitions(status: WorkflowStatus | None) -> tuple[str, ...]:
    """The tags of the transitions legal from ``status`` (``None``: no workflow)."""
    return VALID_TRANSITIONS[NO_WORKFLOW if status is None else status.tag]


def next_status(status: WorkflowStatus | None, transition: Transition, now: int) -> WorkflowStatus:
    """The status after ``transition`` at time ``now``; ``InvalidTransitionError`` when the
    table forbids it.

    >>> next_status(None, Start(input=1), 5)
    Running(running_at=5)
    """
    legal = valid_transitions(status)
    if transition.tag not in legal:
        from_status = NO_WORKFLOW if status is None else status.tag
        raise InvalidTransitionError(from_status, transition.tag, legal)
    match transition:
        case Start() | Resume() | Recover():
            return Running(running_at=now)
        case Queue() | Reopen():
            return Queued(queued_at=now)
        case Pause(reason=reason, resume_at=resume_at, step_name=step_name, waits=waits):
            return Paused(reason=reason, resume_at=resume_at, step_name=step_name, waits=waits)
        case Complete():
            return Completed(completed_at=now)
        case Fail(error=error):
            return Failed(failed_at=now, error=error)
        case Cancel(reason=reason):
            return Cancelled(cancelled_at=now, reason=reason)
        case _:
            assert_never(transition)


def apply_transition(
    status: WorkflowStatus | None, transition: Transition, now: int
) -> Result[WorkflowStatus, InvalidTransitionError]:
    """The status after ``transition`` at time ``now``, or why it is illegal.

    >>> apply_transition(None, Start(input=1), 5).unwrap()
    Running(running_at=5)
    """
    try:
        return Success(next_status(status, transition, now))
    except InvalidTransitionError as e:
        return Failure(e)
