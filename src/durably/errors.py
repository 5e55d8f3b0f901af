"""Every durably error, grouped by what the caller can do (the tree: ``durably.domain.errors``).

- ``UsageError``: the call or the code is wrong (unknown workflow, bad duration, a value
  that cannot be stored, an unknown instance): fix it.
- ``OutcomeError``: the workflow ran and did not end as hoped (failed, cancelled, out of
  time): read the error it carries.
- ``InfrastructureError``: the storage or the scheduler failed: retry later.

An ``OrchestratorError`` names the operation and wraps the cause, and is also of the
cause's branch.
"""

from durably.domain.errors import (
    ChildWorkflowError,
    DuplicateWorkflowError,
    DurablyError,
    EventNotPublishedError,
    EventTimeoutError,
    ExecutionStopped,
    InfrastructureError,
    InstanceExists,
    InstanceNotFoundError,
    InstancePurgedError,
    InvalidDurationError,
    InvalidTransitionError,
    LeaseLost,
    NonDeterminismError,
    OrchestratorError,
    OutcomeError,
    ProfileError,
    RecoveryError,
    ResultTimeoutError,
    RetryExhaustedError,
    ScheduleNotFoundError,
    SchedulerError,
    SerializationError,
    StepCancelledError,
    StepScopeError,
    StepTimeoutError,
    StorageError,
    UsageError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowScopeError,
)

__all__ = [
    "DurablyError",
    "NonDeterminismError",
    "DuplicateWorkflowError",
    "ChildWorkflowError",
    "EventTimeoutError",
    "EventNotPublishedError",
    "UsageError",
    "OutcomeError",
    "InfrastructureError",
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
    "ProfileError",
    "SerializationError",
    "WorkflowFailedError",
    "WorkflowCancelledError",
    "ResultTimeoutError",
    "InstanceNotFoundError",
    "ScheduleNotFoundError",
    "InstancePurgedError",
    "LeaseLost",
    "InstanceExists",
    "ExecutionStopped",
]
