"""The records that operations take and return."""

from durably.services.types import (
    CancelResult,
    InstanceSummary,
    SendResult,
    StartResult,
    WorkflowCall,
    WorkflowStatusResult,
)

__all__ = [
    "WorkflowCall",
    "StartResult",
    "CancelResult",
    "SendResult",
    "WorkflowStatusResult",
    "InstanceSummary",
]
