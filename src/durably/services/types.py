"""The records the orchestrator takes and returns."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from durably.domain.queues import Placement
from durably.domain.records import ParentLink
from durably.domain.status import WorkflowStatus

__all__ = [
    "WorkflowCall",
    "StartResult",
    "CancelResult",
    "SendResult",
    "WorkflowStatusResult",
    "InstanceSummary",
]


@attrs.frozen
class WorkflowCall:
    """Which workflow to run, with what input."""

    workflow: str
    input: Any = None
    execution_id: str | None = None
    parent: ParentLink | None = None
    """Set when a workflow starts it as its child (``start_child``)."""
    placement: Placement | None = None
    """Its queue, priority, partition and dedupe id (``None``: the default queue)."""
    start_at: int | None = None
    """Not started before (epoch ms; ``None``: now)."""


@attrs.frozen
class StartResult:
    """The answer to ``start``/``queue``: done yet, and the output when it is."""

    id: str
    completed: bool
    output: Any = None
    status: WorkflowStatus | None = None


@attrs.frozen
class CancelResult:
    """The answer to ``cancel``."""

    cancelled: bool
    reason: Literal["not_found", "already_terminal"] | None = None
    previous_status: str | None = None


@attrs.frozen
class SendResult:
    """The answer to ``send_event``: whether the event is in the instance's inbox.

    ``reason`` says why not (``"not_found"``, ``"already_terminal"``); ``duplicate``: an
    event with the same ``event_id`` was delivered before, and nothing was added.
    """

    delivered: bool
    reason: Literal["not_found", "already_terminal"] | None = None
    duplicate: bool = False


@attrs.frozen
class WorkflowStatusResult:
    """An instance's status and completed steps."""

    status: WorkflowStatus | None
    completed_steps: tuple[str, ...] = ()
    exists: bool = False
    children: tuple[str, ...] = ()
    """The ids of the child workflows it started (``start_child``), in key order."""


@attrs.frozen
class InstanceSummary:
    """One line of ``Engine.list``."""

    id: str
    workflow: str
    status: str
    created_at: int
    updated_at: int
    due_at: int | None = None
    """Its alarm, when it has one: a time in the past with no worker taking it up is an
    instance due and unclaimed (no worker with its workflow or queue is running)."""
