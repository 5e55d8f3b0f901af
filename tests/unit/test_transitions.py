"""The transition table of semantics.md section 2, every (status, transition) pair."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest
from returns.result import Failure, Success

import durably.domain.keys as keys_module
import durably.domain.transitions as transitions_module
from durably.domain.errors import InvalidTransitionError
from durably.domain.status import (
    Cancelled,
    Completed,
    Failed,
    Paused,
    PauseReason,
    Pending,
    Queued,
    Running,
    WorkflowError,
    WorkflowStatus,
    is_terminal,
)
from durably.domain.transitions import (
    NO_WORKFLOW,
    VALID_TRANSITIONS,
    Cancel,
    Complete,
    Fail,
    Pause,
    Queue,
    Recover,
    Reopen,
    Resume,
    Start,
    Transition,
    apply_transition,
    valid_transitions,
)

NOW = 1_700_000_000_123
ERROR = WorkflowError("boom", type="ValueError", traceback="tb", step_name="charge", attempt=3)

# semantics.md section 2, written out literally.
SPEC_TABLE: dict[str, tuple[str, ...]] = {
    "none": ("Start", "Queue"),
    "Pending": ("Start", "Queue"),
    "Queued": ("Start", "Cancel"),
    "Running": ("Complete", "Pause", "Fail", "Cancel", "Recover"),
    "Paused": ("Resume", "Cancel", "Recover"),
    "Completed": (),
    "Failed": ("Reopen",),
    "Cancelled": ("Reopen",),
}

STATUSES: dict[str, WorkflowStatus | None] = {
    "none": None,
    "Pending": Pending(),
    "Queued": Queued(queued_at=10),
    "Running": Running(running_at=20),
    "Paused": Paused(reason="sleep", resume_at=30, step_name="nap"),
    "Completed": Completed(completed_at=40),
    "Failed": Failed(failed_at=50, error=WorkflowError("old")),
    "Cancelled": Cancelled(cancelled_at=60, reason="old"),
}

TRANSITIONS: dict[str, Transition] = {
    "Start": Start(input={"order": 1}),
    "Queue": Queue(input=[1, 2]),
    "Resume": Resume(),
    "Recover": Recover(reason="stale_detection", attempt=2),
    "Complete": Complete(completed_steps=("a", "b"), duration_ms=99),
    "Pause": Pause(reason="retry", resume_at=NOW + 5_000, step_name="charge"),
    "Fail": Fail(error=ERROR, completed_steps=("a",)),
    "Cancel": Cancel(reason="user asked", completed_steps=("a",)),
    "Reopen": Reopen(reason="bug fixed"),
}

EXPECTED: dict[str, WorkflowStatus] = {
    "Start": Running(running_at=NOW),
    "Queue": Queued(queued_at=NOW),
    "Resume": Running(running_at=NOW),
    "Recover": Running(running_at=NOW),
    "Reopen": Queued(queued_at=NOW),
    "Complete": Completed(completed_at=NOW),
    "Pause": Paused(reason="retry", resume_at=NOW + 5_000, step_name="charge"),
    "Fail": Failed(failed_at=NOW, error=ERROR),
    "Cancel": Cancelled(cancelled_at=NOW, reason="user asked"),
}

PAIRS = [(s, t) for s in STATUSES for t in TRANSITIONS]
LEGAL = [(s, t) for s, t in PAIRS if t in SPEC_TABLE[s]]
ILLEGAL = [(s, t) for s, t in PAIRS if t not in SPEC_TABLE[s]]


def test_cross_product_is_complete() -> None:
    assert len(PAIRS) == 8 * 9
    assert len(LEGAL) == sum(len(row) for row in SPEC_TABLE.values()) == 16
    assert len(ILLEGAL) == 72 - 16


@pytest.mark.parametrize(("from_name", "transition_name"), LEGAL)
def test_legal_transition_gives_new_status(from_name: str, transition_name: str) -> None:
    result = apply_transition(STATUSES[from_name], TRANSITIONS[transition_name], NOW)
    assert result == Success(EXPECTED[transition_name])
    assert type(result.unwrap()).__name__ == result.unwrap().tag


@pytest.mark.parametrize(("from_name", "transition_name"), ILLEGAL)
def test_illegal_transition_fails(from_name: str, transition_name: str) -> None:
    result = apply_transition(STATUSES[from_name], TRANSITIONS[transition_name], NOW)
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, InvalidTransitionError)
    assert error.from_status == from_name
    assert error.transition == transition_name
    assert error.valid_transitions == SPEC_TABLE[from_name]
    assert from_name in str(error)
    assert transition_name in str(error)


@pytest.mark.parametrize("reason", ["sleep", "retry"])
@pytest.mark.parametrize("step_name", [None, "s:1"])
def test_pause_copies_its_fields(reason: PauseReason, step_name: str | None) -> None:
    pause = Pause(reason=reason, resume_at=123, step_name=step_name)
    result = apply_transition(Running(running_at=1), pause, NOW)
    assert result == Success(Paused(reason=reason, resume_at=123, step_name=step_name))


@pytest.mark.parametrize("reason", [None, "", "because"])
@pytest.mark.parametrize("from_name", ["Queued", "Running", "Paused"])
def test_cancel_keeps_its_reason(reason: str | None, from_name: str) -> None:
    result = apply_transition(STATUSES[from_name], Cancel(reason=reason), 7)
    assert result == Success(Cancelled(cancelled_at=7, reason=reason))


def test_valid_transitions_table_equals_spec() -> None:
    assert VALID_TRANSITIONS == SPEC_TABLE
    assert NO_WORKFLOW == "none"


@pytest.mark.parametrize("from_name", list(STATUSES))
def test_valid_transitions(from_name: str) -> None:
    assert valid_transitions(STATUSES[from_name]) == SPEC_TABLE[from_name]


@pytest.mark.parametrize(
    ("from_name", "terminal"),
    [
        ("none", False),
        ("Pending", False),
        ("Queued", False),
        ("Running", False),
        ("Paused", False),
        ("Completed", True),
        ("Failed", True),
        ("Cancelled", True),
    ],
)
def test_is_terminal(from_name: str, terminal: bool) -> None:
    assert is_terminal(STATUSES[from_name]) is terminal
    # Final: nothing but an operator's Reopen leaves it.
    assert (set(valid_transitions(STATUSES[from_name])) <= {"Reopen"}) is terminal


@pytest.mark.parametrize(
    "obj",
    [s for s in STATUSES.values() if s is not None] + list(TRANSITIONS.values()),
    ids=lambda obj: type(obj).__name__,
)
def test_tag_is_class_name(obj: WorkflowStatus | Transition) -> None:
    assert obj.tag == type(obj).__name__
    assert type(obj).tag == type(obj).__name__


@pytest.mark.parametrize("module", [transitions_module, keys_module], ids=lambda m: m.__name__)
def test_doctests(module: ModuleType) -> None:
    failed, attempted = doctest.testmod(module)
    assert attempted > 0
    assert failed == 0
