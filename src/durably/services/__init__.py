"""Services: stateless over the ports, one instance at a time (the original's layers)."""

from durably.services.context import ActiveExecutions, ExecutionScope, StepInfo
from durably.services.definition import WorkflowDefinition
from durably.services.executor import (
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionContext,
    ExecutionFailed,
    ExecutionPaused,
    ExecutionResult,
    WorkflowExecutor,
    result_to_transition,
)
from durably.services.orchestrator import WorkflowOrchestrator
from durably.services.purge import PurgeConfig, PurgeManager
from durably.services.recovery import (
    RecoveryCheckResult,
    RecoveryConfig,
    RecoveryExecuteResult,
    RecoveryManager,
    RecoveryStats,
)
from durably.services.registry import WorkflowRegistry
from durably.services.state_machine import (
    RecoverabilityInfo,
    WorkflowState,
    WorkflowStateMachine,
)
from durably.services.trackers import (
    BoundEmitter,
    EventEmitter,
    InMemoryTracker,
    LoggingTracker,
    NoopTracker,
)

__all__ = [
    "WorkflowStateMachine",
    "WorkflowState",
    "RecoverabilityInfo",
    "RecoveryManager",
    "RecoveryConfig",
    "RecoveryCheckResult",
    "RecoveryExecuteResult",
    "RecoveryStats",
    "WorkflowExecutor",
    "ExecutionContext",
    "ExecutionResult",
    "ExecutionCompleted",
    "ExecutionPaused",
    "ExecutionFailed",
    "ExecutionCancelled",
    "result_to_transition",
    "WorkflowRegistry",
    "WorkflowDefinition",
    "WorkflowOrchestrator",
    "PurgeManager",
    "PurgeConfig",
    "ActiveExecutions",
    "ExecutionScope",
    "StepInfo",
    "EventEmitter",
    "BoundEmitter",
    "NoopTracker",
    "InMemoryTracker",
    "LoggingTracker",
]
