"""The public surface of durably is pinned: a change here is a change to the contract."""

from __future__ import annotations

import importlib

import pytest

import durably

EXPECTED_TOP_LEVEL = {
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
    "RecoveryConfig",
    "PurgeConfig",
    "WorkflowCall",
    "StartResult",
    "CancelResult",
    "SendResult",
    "WorkflowStatusResult",
    "InstanceSummary",
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
    "InstancePurgedError",
    "ScheduleNotFoundError",
    "Engine",
    "Queue",
    "Schedule",
    "Tick",
    "Lease",
    "Purge",
    "StepRecord",
}


def test_top_level_all_is_pinned() -> None:
    assert set(durably.__all__) == EXPECTED_TOP_LEVEL
    assert len(durably.__all__) == len(EXPECTED_TOP_LEVEL), "no name is listed twice"


def test_every_exported_name_exists() -> None:
    missing = [name for name in durably.__all__ if not hasattr(durably, name)]
    assert missing == []


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            "durably.status",
            {
                "Pending",
                "Queued",
                "Running",
                "Paused",
                "Completed",
                "Failed",
                "Cancelled",
                "WorkflowStatus",
                "WorkflowError",
            },
        ),
        (
            "durably.transitions",
            {
                "Start",
                "Queue",
                "Resume",
                "Recover",
                "Complete",
                "Pause",
                "Fail",
                "Cancel",
                "Transition",
                "apply_transition",
            },
        ),
        (
            "durably.types",
            {
                "WorkflowCall",
                "StartResult",
                "CancelResult",
                "WorkflowStatusResult",
                "InstanceSummary",
            },
        ),
        (
            "durably.ports",
            {"StorageAdapter", "SchedulerAdapter", "RuntimeAdapter", "InstanceRuntime", "Tracker"},
        ),
        (
            "durably.testing",
            {
                "create_in_memory_runtime",
                "TestRuntimeHandle",
                "FailingStorage",
                "ManualClock",
                "VirtualClock",
                "EngineFactory",
                "crash_after",
                "CrashPoint",
            },
        ),
    ],
)
def test_public_modules_export_their_names(module: str, names: set[str]) -> None:
    mod = importlib.import_module(module)
    assert names <= set(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is listed but missing"


def test_every_public_package_has_all() -> None:
    for module in [
        "durably",
        "durably.errors",
        "durably.events",
        "durably.trackers",
        "durably.services",
        "durably.containers",
        "durably.primitives",
        "durably.testing",
        "durably.testing.pytest_plugin",
    ]:
        mod = importlib.import_module(module)
        assert isinstance(getattr(mod, "__all__", None), list | tuple), module


def test_status_and_transition_tags_equal_class_names() -> None:
    import durably.status as status
    import durably.transitions as transitions

    for mod, names in [
        (status, ["Pending", "Queued", "Running", "Paused", "Completed", "Failed", "Cancelled"]),
        (
            transitions,
            ["Start", "Queue", "Resume", "Recover", "Complete", "Pause", "Fail", "Cancel"],
        ),
    ]:
        for name in names:
            assert getattr(mod, name).tag == name
