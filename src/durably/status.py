"""Workflow statuses (each class has a ``tag`` equal to its name)."""

from durably.domain.status import (
    Cancelled,
    Completed,
    Failed,
    Paused,
    Pending,
    Queued,
    Running,
    WorkflowError,
    WorkflowStatus,
)

__all__ = [
    "Pending",
    "Queued",
    "Running",
    "Paused",
    "Completed",
    "Failed",
    "Cancelled",
    "WorkflowStatus",
    "WorkflowError",
]
