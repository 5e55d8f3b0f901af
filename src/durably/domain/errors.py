"""Every error durably raises or returns, in one module.

The hierarchy::

    DurablyError
    ├── StorageError            a storage adapter could not read or write
    ├── SchedulerError          an alarm could not be set, read or cleared
    ├── InvalidTransitionError  a status transition the table forbids
    ├── RecoveryError           recovery gave up on an instance
    ├── OrchestratorError       any failure of an orchestrator operation (wraps the cause)
    ├── WorkflowNotFoundError   no workflow is registered under a name
    ├── StepCancelledError      the workflow was cancelled; the step did not run
    ├── RetryExhaustedError     a step failed and may not be retried again
    ├── StepTimeoutError        a step attempt ran past its timeout
    ├── WorkflowScopeError      a primitive was used outside a workflow
    ├── StepScopeError          a primitive was used inside a step
    ├── InvalidDurationError    a duration (or a delay, a timeout) is malformed (also a ValueError)
    ├── SerializationError      a value cannot be stored, or a stored value cannot be read back
    ├── WorkflowFailedError     ``Engine.result``: the workflow ended Failed
    ├── WorkflowCancelledError  ``Engine.result``: the workflow was cancelled
    ├── ResultTimeoutError      ``Engine.result``: the workflow did not end in time
    ├── InstanceNotFoundError   no instance has this id
    ├── LeaseLost               a commit was refused: its owner no longer holds the lease
    ├── ExecutionStopped        an execution stopped before a durable point, writing nothing
    └── InstanceExists          a creation was refused: the instance exists already

They are frozen attrs exceptions: usable as ``Failure`` values and raised alike.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from durably.domain.status import WorkflowError

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
    "WorkflowFailedError",
    "WorkflowCancelledError",
    "ResultTimeoutError",
    "InstanceNotFoundError",
    "LeaseLost",
    "InstanceExists",
    "ExecutionStopped",
]


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _describe(cause: object) -> str:
    if isinstance(cause, BaseException):
        text = str(cause)
        return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return str(cause)


@attrs.frozen(eq=False)
class DurablyError(Exception):
    """Base class of every durably error."""

    @property
    def message(self) -> str:
        """A one-line human description."""
        return type(self).__name__

    def __str__(self) -> str:
        return self.message


@attrs.frozen(eq=False)
class StorageError(DurablyError):
    """A storage operation failed (after the adapter's own retries)."""

    operation: str
    key: str | None = None
    cause: object = None
    permanent: bool = False
    """The storage refused the data itself (a retry cannot change the outcome)."""

    @property
    def message(self) -> str:
        where = f" on key {self.key!r}" if self.key is not None else ""
        because = f": {_describe(self.cause)}" if self.cause is not None else ""
        return f"storage {self.operation} failed{where}{because}"


@attrs.frozen(eq=False)
class SchedulerError(DurablyError):
    """An alarm operation failed."""

    operation: str
    cause: object = None

    @property
    def message(self) -> str:
        because = f": {_describe(self.cause)}" if self.cause is not None else ""
        return f"scheduler {self.operation} failed{because}"


@attrs.frozen(eq=False)
class InvalidTransitionError(DurablyError):
    """The transition is not legal from the current status."""

    from_status: str
    transition: str
    valid_transitions: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        valid = ", ".join(self.valid_transitions) or "none"
        return (
            f"cannot apply {self.transition} to a workflow in status {self.from_status} "
            f"(legal: {valid})"
        )


@attrs.frozen(eq=False)
class RecoveryError(DurablyError):
    """Recovery of an instance failed or was given up."""

    reason: str
    attempts: int = 0
    max_attempts: int = 0

    @property
    def message(self) -> str:
        return (
            f"recovery failed: {self.reason} "
            f"(attempts {self.attempts} of at most {self.max_attempts})"
        )


@attrs.frozen(eq=False)
class OrchestratorError(DurablyError):
    """An orchestrator operation failed; ``cause`` says why."""

    operation: str
    cause: object = None

    @property
    def message(self) -> str:
        because = f": {_describe(self.cause)}" if self.cause is not None else ""
        return f"{self.operation} failed{because}"


@attrs.frozen(eq=False)
class WorkflowNotFoundError(DurablyError):
    """No workflow is registered under the name."""

    workflow_name: str
    available_workflows: tuple[str, ...] = attrs.field(default=(), converter=_names)

    @property
    def message(self) -> str:
        available = ", ".join(self.available_workflows) or "none registered"
        return f"workflow {self.workflow_name!r} not found (available: {available})"


@attrs.frozen(eq=False)
class StepCancelledError(DurablyError):
    """The workflow was cancelled, so the step (or sleep) did not run."""

    step_name: str

    @property
    def message(self) -> str:
        return f"step {self.step_name!r} not run: the workflow was cancelled"


@attrs.frozen(eq=False)
class RetryExhaustedError(DurablyError):
    """A step failed and its retry policy allows no further attempt.

    ``attempts`` counts runs; ``max_attempts`` is the policy's count of retries after the
    first run (``Retry(max_attempts=2)`` runs 3 times), ``None`` when not known.
    """

    step_name: str
    attempts: int
    last_error: object = None
    max_attempts: int | None = None

    @property
    def message(self) -> str:
        runs = f"{self.attempts} attempt{'' if self.attempts == 1 else 's'}"
        policy = ""
        if self.max_attempts is not None:
            # Fewer runs than the retries allow: the retry budget (max_duration) stopped it.
            early = (
                "; Retry.max_duration ran out first" if self.attempts <= self.max_attempts else ""
            )
            policy = f" (max_attempts={self.max_attempts} retries{early})"
        last = f"; last error: {_describe(self.last_error)}" if self.last_error is not None else ""
        return f"step {self.step_name!r} failed after {runs}{policy}{last}"


@attrs.frozen(eq=False)
class StepTimeoutError(DurablyError):
    """A step attempt ran longer than its timeout."""

    step_name: str
    timeout_ms: int
    elapsed_ms: int

    @property
    def message(self) -> str:
        return (
            f"step {self.step_name!r} timed out after {self.elapsed_ms} ms "
            f"(timeout {self.timeout_ms} ms)"
        )


@attrs.frozen(eq=False)
class WorkflowScopeError(DurablyError):
    """A workflow primitive was used outside a running workflow."""

    operation: str = "step"

    @property
    def message(self) -> str:
        return f"{self.operation}() can only be used inside a workflow"


@attrs.frozen(eq=False)
class StepScopeError(DurablyError):
    """A primitive that a step may not use was called inside a step."""

    operation: str
    step_name: str

    @property
    def message(self) -> str:
        return f"{self.operation}() cannot be used inside step {self.step_name!r}"


@attrs.frozen(eq=False)
class InvalidDurationError(DurablyError, ValueError):
    """A duration is malformed; the message quotes the input (and the field, when known)."""

    value: object
    field: str | None = None
    reason: str = "expected milliseconds, a timedelta, or a string like '1.5s' or '5 minutes'"

    @property
    def message(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{where}invalid duration {self.value!r}: {self.reason}"


@attrs.frozen(eq=False)
class SerializationError(DurablyError):
    """A value cannot be stored, or a stored value cannot be read back."""

    reason: str
    key: str | None = None
    type_name: str | None = None
    step_name: str | None = None

    @property
    def message(self) -> str:
        parts = [self.reason]
        if self.type_name:
            parts.append(f"type {self.type_name}")
        if self.step_name:
            parts.append(f"step {self.step_name!r}")
        if self.key:
            parts.append(f"key {self.key!r}")
        return "; ".join(parts)


@attrs.frozen(eq=False)
class WorkflowFailedError(DurablyError):
    """The workflow ended ``Failed``; ``error`` is its stored ``WorkflowError``."""

    workflow_id: str
    error: WorkflowError

    @property
    def message(self) -> str:
        detail = self.error.message
        kind = self.error.type
        where = self.error.step_name
        at = f" in step {where!r}" if where else ""
        return f"workflow {self.workflow_id!r} failed{at}: {kind + ': ' if kind else ''}{detail}"


@attrs.frozen(eq=False)
class WorkflowCancelledError(DurablyError):
    """The workflow was cancelled."""

    workflow_id: str
    reason: str | None = None

    @property
    def message(self) -> str:
        because = f": {self.reason}" if self.reason else ""
        return f"workflow {self.workflow_id!r} was cancelled{because}"


@attrs.frozen(eq=False)
class ResultTimeoutError(DurablyError):
    """The workflow did not reach a terminal status within the wait."""

    workflow_id: str
    timeout_ms: int
    status: str | None = None
    alarms: int | None = None
    """Set when the wait ran out of alarms of a test's virtual clock, not of time
    (``timeout_ms`` is then the virtual time skipped)."""

    @property
    def message(self) -> str:
        if self.alarms is not None:
            return (
                f"workflow {self.workflow_id!r} did not finish after {self.alarms} alarms of "
                f"the virtual clock ({self.timeout_ms} ms of virtual time; status "
                f"{self.status}): does it ever end (a retry without a limit, a loop of sleeps)?"
            )
        return (
            f"workflow {self.workflow_id!r} did not finish within {self.timeout_ms} ms "
            f"(status {self.status})"
        )


@attrs.frozen(eq=False)
class InstanceNotFoundError(DurablyError):
    """No instance has this id."""

    workflow_id: str

    @property
    def message(self) -> str:
        return f"no workflow instance with id {self.workflow_id!r}"


@attrs.frozen(eq=False)
class LeaseLost(DurablyError):
    """A fenced commit was refused: ``owner`` no longer holds the instance's lease."""

    instance_id: str
    owner: str | None = None

    @property
    def message(self) -> str:
        return f"lease of instance {self.instance_id!r} is no longer held by {self.owner}"


@attrs.frozen(eq=False)
class InstanceExists(DurablyError):
    """A creation was refused: an instance with this id was created first."""

    instance_id: str

    @property
    def message(self) -> str:
        return f"instance {self.instance_id!r} already exists"


@attrs.frozen(eq=False)
class ExecutionStopped(DurablyError):
    """An execution stopped before a step (or sleep) without writing anything: its lease
    may have expired, or its engine is closing. The next owner of the instance goes on."""

    workflow_id: str
    reason: str

    @property
    def message(self) -> str:
        return f"execution of {self.workflow_id!r} stopped before its next step: {self.reason}"
