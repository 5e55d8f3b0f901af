"""The error hierarchy of api.md, and the bridges between raised errors and ``Result``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import attrs
import pytest
from returns.result import Failure, Result, Success

import durably.domain.errors as errors_module
from durably.domain.errors import (
    ChildWorkflowError,
    DuplicateWorkflowError,
    DurablyError,
    EventTimeoutError,
    InstancePurgedError,
    InvalidDurationError,
    InvalidTransitionError,
    NonDeterminismError,
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
from durably.domain.results import as_result, ok
from durably.domain.status import Completed, Failed, WorkflowError

# api.md "Errors", written out literally.
API_ERRORS = {
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
    # coordination.md sections 1 and 2
    "EventTimeoutError",
    "ChildWorkflowError",
    # coordination.md sections 3 and 5
    "DuplicateWorkflowError",
    "NonDeterminismError",
}

# (an instance, the field to try to overwrite, what its message must contain)
CASES: list[tuple[DurablyError, str, tuple[str, ...]]] = [
    (DurablyError(), "message", ("DurablyError",)),
    (
        StorageError("put", key="workflow:status", cause=OSError("disk full")),
        "operation",
        ("put", "'workflow:status'", "OSError", "disk full"),
    ),
    (StorageError("get"), "key", ("storage get failed",)),
    (
        SchedulerError("set_alarm", cause=TimeoutError()),
        "operation",
        ("set_alarm", "TimeoutError"),
    ),
    (
        InvalidTransitionError("Completed", "Resume", ()),
        "from_status",
        ("Completed", "Resume", "none"),
    ),
    (
        InvalidTransitionError("Paused", "Complete", ("Resume", "Cancel", "Recover")),
        "transition",
        ("Paused", "Complete", "Resume, Cancel, Recover"),
    ),
    (RecoveryError("too many attempts", 3, 3), "reason", ("too many attempts", "3 of at most 3")),
    (
        OrchestratorError("start", cause=ValueError("id taken by 'refunds'")),
        "operation",
        ("start", "ValueError", "id taken by 'refunds'"),
    ),
    (
        WorkflowNotFoundError("shipping", ["orders", "refunds"]),
        "workflow_name",
        ("'shipping'", "orders, refunds"),
    ),
    (WorkflowNotFoundError("shipping"), "available_workflows", ("'shipping'", "none registered")),
    (StepCancelledError("charge"), "step_name", ("'charge'", "cancelled")),
    (
        RetryExhaustedError("charge", 3, last_error=RuntimeError("declined"), max_attempts=2),
        "attempts",
        (
            "step 'charge' failed after 3 attempts (max_attempts=2 retries)",
            "RuntimeError: declined",
        ),
    ),
    (StepTimeoutError("charge", 1_000, 1_250), "timeout_ms", ("'charge'", "1000 ms", "1250 ms")),
    (EventTimeoutError("approval", 5_000), "event_name", ("'approval'", "5000 ms")),
    (
        ChildWorkflowError(
            "m/invoice#2", "invoice", "Failed", WorkflowError("no card", "KeyError", None, "pay")
        ),
        "child_id",
        ("'invoice'", "'m/invoice#2'", "failed in step 'pay'", "KeyError: no card"),
    ),
    (
        NonDeterminismError("o-1", 0, "a", "a-renamed"),
        "recorded",
        (
            "at position 0 the history has 'a' but the code asked for 'a-renamed'",
            "deploy the code that recorded it",
            "durably.patched",
        ),
    ),
    (
        DuplicateWorkflowError("orders", "order-7", "o-7"),
        "dedupe_id",
        ("'order-7'", "'orders'", "'o-7'", "nothing was queued"),
    ),
    (
        ChildWorkflowError("m/invoice", "invoice", "Cancelled", reason="parent cancelled"),
        "status",
        ("'m/invoice'", "was cancelled: parent cancelled"),
    ),
    (WorkflowScopeError(), "operation", ("step()", "inside a workflow")),
    (WorkflowScopeError("sleep"), "operation", ("sleep()",)),
    (StepScopeError("sleep", "charge"), "step_name", ("sleep()", "'charge'")),
    (InvalidDurationError("5 parsecs", field="timeout"), "value", ("timeout", "'5 parsecs'")),
    (
        SerializationError("cannot serialize", key="k:1", type_name="set", step_name="charge"),
        "reason",
        ("cannot serialize", "set", "'charge'", "'k:1'"),
    ),
]
IDS = [type(error).__name__ for error, _, _ in CASES]


# Errors added beyond api.md's list (api.md: "add freely"); Engine.result and lookups use them.
ENGINE_ERRORS = {
    "WorkflowFailedError",
    "WorkflowCancelledError",
    "ResultTimeoutError",
    "InstanceNotFoundError",
    "InstancePurgedError",
    "EventNotPublishedError",
    # schedules: pause/resume/trigger of an id no engine stored
    "ScheduleNotFoundError",
    # the storage core: refused commits, and an execution that stopped before a step
    "LeaseLost",
    "InstanceExists",
    "ExecutionStopped",
    # a profile (YAML) that cannot be used, naming its file and key
    "ProfileError",
}


# The tree's branches (grouped by what the caller can do) and the classifier.
BRANCHES = {"UsageError", "OutcomeError", "InfrastructureError", "branch_of"}


def test_all_api_errors_are_exported() -> None:
    assert set(errors_module.__all__) == API_ERRORS | ENGINE_ERRORS | BRANCHES
    assert len(errors_module.__all__) == len(API_ERRORS | ENGINE_ERRORS | BRANCHES)
    for name in API_ERRORS:
        assert isinstance(getattr(errors_module, name), type)


def test_every_exported_error_is_covered_here() -> None:
    assert {type(error).__name__ for error, _, _ in CASES} == API_ERRORS


@pytest.mark.parametrize("name", sorted(API_ERRORS))
def test_hierarchy(name: str) -> None:
    cls = getattr(errors_module, name)
    assert issubclass(cls, DurablyError)
    assert issubclass(cls, Exception)
    assert attrs.has(cls)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        # Built without max_attempts (as before it existed): the count alone.
        (RetryExhaustedError("charge", 5), "step 'charge' failed after 5 attempts"),
        (
            RetryExhaustedError("charge", 1, max_attempts=0),
            "after 1 attempt (max_attempts=0 retries)",
        ),
        # Fewer attempts than allowed: the retry budget (max_duration) stopped it.
        (
            RetryExhaustedError("charge", 2, max_attempts=5),
            "after 2 attempts (max_attempts=5 retries; Retry.max_duration ran out first)",
        ),
    ],
)
def test_retry_exhausted_says_how_many_runs_and_why(
    error: RetryExhaustedError, message: str
) -> None:
    assert message in str(error)


def test_a_purged_instance_error_says_so_and_keeps_the_final_status() -> None:
    status = Failed(failed_at=5, error=WorkflowError(message="boom", type="ValueError"))
    error = InstancePurgedError("order-1", status)
    assert error.status is status
    assert "'order-1'" in str(error)
    assert "purged" in str(error)
    assert "Failed" in str(error)
    assert isinstance(error, DurablyError)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        error.status = Completed(completed_at=1)  # type: ignore[misc]


def test_invalid_duration_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="parsecs"):
        raise InvalidDurationError("5 parsecs")


@pytest.mark.parametrize(("error", "field", "parts"), CASES, ids=IDS)
def test_message_names_key_fields(error: DurablyError, field: str, parts: tuple[str, ...]) -> None:
    text = str(error)
    assert text == error.message
    assert "\n" not in text
    for part in parts:
        assert part in text


@pytest.mark.parametrize(("error", "field", "parts"), CASES, ids=IDS)
def test_frozen(error: DurablyError, field: str, parts: tuple[str, ...]) -> None:
    before = str(error)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(error, field, "changed")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        error.new_attribute = 1  # type: ignore[attr-defined]
    assert str(error) == before


@pytest.mark.parametrize(("error", "field", "parts"), CASES, ids=IDS)
def test_raise_and_catch(error: DurablyError, field: str, parts: tuple[str, ...]) -> None:
    with pytest.raises(type(error)) as info:
        raise error
    assert info.value is error
    assert info.value.__traceback__ is not None
    with pytest.raises(DurablyError) as base:
        raise error
    assert base.value is error


@pytest.mark.parametrize(("error", "field", "parts"), CASES, ids=IDS)
def test_raise_through_context_manager(
    error: DurablyError, field: str, parts: tuple[str, ...]
) -> None:
    seen: list[BaseException] = []

    @contextlib.contextmanager
    def watching() -> Iterator[None]:
        try:
            yield
        except DurablyError as e:
            seen.append(e)
            raise

    with pytest.raises(type(error)) as info, watching():
        raise error
    assert info.value is error
    assert seen == [error]


@pytest.mark.parametrize(("error", "field", "parts"), CASES, ids=IDS)
def test_suppressed_by_context_manager(
    error: DurablyError, field: str, parts: tuple[str, ...]
) -> None:
    with contextlib.suppress(DurablyError):
        raise error
    with pytest.raises(type(error)), contextlib.suppress(KeyError):
        raise error


def test_raise_from_keeps_cause() -> None:
    cause = ConnectionError("db down")

    def start() -> None:
        try:
            raise StorageError("put", key="k", cause=cause) from cause
        except StorageError as e:
            raise OrchestratorError("start", cause=e) from e

    with pytest.raises(OrchestratorError) as info:
        start()
    error = info.value
    assert isinstance(error.__cause__, StorageError)
    assert error.__cause__.__cause__ is cause
    assert error.cause is error.__cause__
    assert "start failed" in str(error)
    assert "StorageError" in str(error)
    assert "db down" in str(error)


def test_errors_compare_by_identity() -> None:
    a, b = StepCancelledError("s"), StepCancelledError("s")
    assert a != b
    assert a == a
    assert len({a, b}) == 2


def test_errors_work_as_failure_values() -> None:
    error = StepCancelledError("s")
    result: Result[int, StepCancelledError] = Failure(error)
    assert result.failure() is error
    assert result.lash(lambda e: Success(len(e.step_name))) == Success(1)


# --- results.py -----------------------------------------------------------------------


def test_ok_returns_the_value() -> None:
    assert ok(Success(1)) == 1
    assert ok(Success(None)) is None


def test_ok_raises_the_error_itself() -> None:
    error = StorageError("get", key="k")
    with pytest.raises(StorageError) as info:
        ok(Failure(error))
    assert info.value is error


async def test_as_result_returns_success() -> None:
    @as_result(StorageError)
    async def fine(x: int, *, y: int) -> int:
        return x + y

    assert await fine(1, y=2) == Success(3)
    assert fine.__name__ == "fine"


async def test_as_result_converts_the_error_type() -> None:
    error = StorageError("put", key="k")

    @as_result(StorageError)
    async def broken() -> int:
        raise error

    result = await broken()
    assert isinstance(result, Failure)
    assert result.failure() is error


@pytest.mark.parametrize(
    "raised",
    [SchedulerError("set"), ValueError("v"), KeyError("k")],
    ids=lambda e: type(e).__name__,
)
async def test_as_result_lets_other_errors_propagate(raised: Exception) -> None:
    @as_result(StorageError)
    async def broken() -> int:
        raise raised

    with pytest.raises(type(raised)) as info:
        await broken()
    assert info.value is raised


async def test_ok_and_as_result_carry_the_same_object() -> None:
    error = StorageError("get")

    @as_result(StorageError)
    async def inner() -> int:
        failure: Result[int, StorageError] = Failure(error)
        return ok(failure)

    result = await inner()
    assert result.failure() is error


# -- the tree: every error in one branch, by what the caller can do ------------------------

TREE = {
    "UsageError": {
        "WorkflowNotFoundError",
        "InstanceNotFoundError",
        "ScheduleNotFoundError",
        "InvalidDurationError",
        "ProfileError",
        "SerializationError",
        "InvalidTransitionError",
        "WorkflowScopeError",
        "StepScopeError",
        "DuplicateWorkflowError",
        "NonDeterminismError",
    },
    "OutcomeError": {
        "WorkflowFailedError",
        "WorkflowCancelledError",
        "ResultTimeoutError",
        "StepCancelledError",
        "RetryExhaustedError",
        "StepTimeoutError",
        "RecoveryError",
        "InstancePurgedError",
        "EventTimeoutError",
        "EventNotPublishedError",
        "ChildWorkflowError",
    },
    "InfrastructureError": {
        "StorageError",
        "SchedulerError",
        "LeaseLost",
        "InstanceExists",
        "ExecutionStopped",
    },
}


def test_every_error_is_in_exactly_one_branch_of_the_tree() -> None:
    placed: list[str] = []
    for branch_name, members in TREE.items():
        branch = getattr(errors_module, branch_name)
        assert issubclass(branch, errors_module.DurablyError)
        for name in members:
            cls = getattr(errors_module, name)
            assert issubclass(cls, branch), (name, branch_name)
            others = [b for b in TREE if b != branch_name]
            assert not any(issubclass(cls, getattr(errors_module, b)) for b in others)
            placed.append(name)
    wrappers = {"DurablyError", "OrchestratorError", "branch_of", *TREE}
    assert sorted(placed) == sorted(set(errors_module.__all__) - wrappers)
    assert issubclass(errors_module.InvalidDurationError, ValueError)  # and still a ValueError
    assert issubclass(errors_module.ProfileError, ValueError)  # a bad value, as before


@pytest.mark.parametrize(
    ("cause", "branch"),
    [
        (WorkflowNotFoundError("x"), "UsageError"),
        (StorageError("commit"), "InfrastructureError"),
        (RetryExhaustedError("a", 2), "OutcomeError"),
        (ValueError("bad id"), "UsageError"),
        (RuntimeError("boom"), "InfrastructureError"),
    ],
)
def test_an_orchestrator_error_is_of_its_causes_branch(cause: object, branch: str) -> None:
    error = OrchestratorError("start", cause)
    assert isinstance(error, OrchestratorError)
    assert isinstance(error, getattr(errors_module, branch))
    assert type(error).__name__ == "OrchestratorError"  # as stored and shown
    assert error.cause is cause
    assert error.operation == "start"
    assert str(cause) in str(error)
    nested = OrchestratorError("execute", error)
    assert isinstance(nested, getattr(errors_module, branch))
