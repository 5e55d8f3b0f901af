"""durably: durable workflows for Python.

A workflow is an ``async def``; its steps are persisted, so a crash, a deploy or a
month-long sleep never loses progress and never runs a completed step again.
"""

from durably.domain.backoff import Backoff, add_jitter, calculate_backoff_delay
from durably.domain.durations import parse_duration
from durably.domain.errors import (
    ChildWorkflowError,
    DuplicateWorkflowError,
    DurablyError,
    EventNotPublishedError,
    EventTimeoutError,
    InfrastructureError,
    InstanceNotFoundError,
    InstancePurgedError,
    InvalidDurationError,
    InvalidTransitionError,
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
from durably.domain.queues import Queue
from durably.domain.retry import Retry
from durably.domain.schedules import Tick
from durably.engine import Engine, Lease, Purge, Schedule, StepRecord
from durably.primitives import (
    ChildHandle,
    StepInfo,
    WorkflowContext,
    WorkflowDefinition,
    child,
    context,
    gather,
    make,
    patched,
    set_event,
    sleep,
    sleep_until,
    start_child,
    step,
    step_info,
    wait_for_event,
    workflow,
)
from durably.services.purge import PurgeConfig
from durably.services.recovery import RecoveryConfig
from durably.services.types import (
    CancelResult,
    InstanceSummary,
    SendResult,
    StartResult,
    WorkflowCall,
    WorkflowStatusResult,
)

__version__ = "0.1.0"

__all__ = [
    # writing workflows
    "workflow",
    "make",
    "WorkflowDefinition",
    "step",
    "sleep",
    "sleep_until",
    "wait_for_event",
    "set_event",
    "child",
    "start_child",
    "gather",
    "ChildHandle",
    "patched",
    "context",
    "step_info",
    "WorkflowContext",
    "StepInfo",
    "Retry",
    "Backoff",
    "parse_duration",
    "calculate_backoff_delay",
    "add_jitter",
    # running workflows
    "Engine",
    "Queue",
    "Schedule",
    "Tick",
    "Lease",
    "Purge",
    "StepRecord",
    # configuration and results
    "RecoveryConfig",
    "PurgeConfig",
    "WorkflowCall",
    "StartResult",
    "CancelResult",
    "SendResult",
    "WorkflowStatusResult",
    "InstanceSummary",
    # errors
    "DurablyError",
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
    "EventTimeoutError",
    "EventNotPublishedError",
    "ChildWorkflowError",
    "DuplicateWorkflowError",
    "NonDeterminismError",
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
]
