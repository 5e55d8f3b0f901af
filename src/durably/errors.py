"""Every durably error (see ``durably.domain.errors`` for the hierarchy)."""

from durably.domain.errors import (
    DurablyError,
    InvalidDurationError,
    InvalidTransitionError,
    OrchestratorError,
    RecoveryError,
    RetryExhaustedError,
    SchedulerError,
    SerializationError,
    StepCancelledError,
    StepScopeError,
    StepTimeoutError,
    StorageError,
    WorkflowNotFoundError,
    WorkflowScopeError,
)

__all__ = [
    "DurablyError",
    "StorageError",
    "SchedulerError",
    "InvalidTransitionError",
    "RecoveryError",
    "OrchestratorError",
    "WorkflowNotFoundError",
    "StepCancelledError",
    "RetryExhaustedError",
    "StepTimeoutError",
    "WorkflowScopeError",
    "StepScopeError",
    "InvalidDurationError",
    "SerializationError",
]
