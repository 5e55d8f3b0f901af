"""Every error durably raises or returns, in one module, grouped by what the caller can do.

The tree::

    DurablyError
    ├── UsageError              the call or the code is wrong: fix it (retrying will not help)
    │   ├── WorkflowNotFoundError   no workflow is registered under a name
    │   ├── InstanceNotFoundError   no instance has this id
    │   ├── ScheduleNotFoundError   no schedule is stored under this id
    │   ├── InvalidDurationError    a duration (a delay, a timeout) is malformed (a ValueError)
    │   ├── ProfileError            a profile (YAML) cannot be used: names its file and key
    │   ├── SerializationError      a value cannot be stored, or read back as its type
    │   ├── InvalidTransitionError  a status transition the table forbids
    │   ├── DuplicateWorkflowError  ``queue``: the dedupe id is held by an unfinished instance
    │   ├── NonDeterminismError     the code asks for another durable point than its history
    │   ├── WorkflowScopeError      a primitive was used outside a workflow
    │   └── StepScopeError          a primitive was used inside a step
    ├── OutcomeError            the workflow ran, and did not end as hoped
    │   ├── WorkflowFailedError     ``Engine.result``: it ended Failed (the stored error)
    │   ├── WorkflowCancelledError  ``Engine.result``: it was cancelled
    │   ├── ResultTimeoutError      ``Engine.result``: it did not end in time
    │   ├── StepCancelledError      a step or sleep did not run: the workflow was cancelled
    │   ├── RetryExhaustedError     a step failed and may not be retried again
    │   ├── StepTimeoutError        a step attempt ran past its timeout
    │   ├── EventTimeoutError       ``wait_for_event``: no event came within its timeout
    │   ├── EventNotPublishedError  ``Engine.get_event``: nothing published under the key
    │   ├── ChildWorkflowError      a child workflow failed or was cancelled
    │   ├── RecoveryError           recovery gave up on an instance
    │   └── InstancePurgedError     ``Engine.result``: it ended, then was purged
    ├── InfrastructureError     the storage or the scheduler failed: retry later
    │   ├── StorageError            a read or a commit failed (``cause`` says why)
    │   ├── SchedulerError          an alarm could not be set, read or cleared
    │   ├── LeaseLost               a commit was refused: its owner lost the lease
    │   ├── InstanceExists          a creation was refused: the instance exists already
    │   └── ExecutionStopped        an execution stopped before a step, writing nothing
    └── OrchestratorError       an operation failed; ``operation`` and ``cause`` say which
                                and why. It is also of the cause's branch:
                                ``OrchestratorError("start", WorkflowNotFoundError(...))``
                                is a ``UsageError``, so ``except UsageError`` catches it.

Each error is a frozen attrs exception, usable as a ``Failure`` value and raised alike;
an error that wraps another keeps it as an attribute (``cause``, ``last_error``,
``error``) and names it in its message.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from durably.domain.status import WorkflowError, WorkflowStatus

__all__ = [
    "DurablyError",
    "UsageError",
    "OutcomeError",
    "InfrastructureError",
    "branch_of",
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
class UsageError(DurablyError):
    """The call or the code is wrong: fix it (retrying will not help)."""


@attrs.frozen(eq=False)
class OutcomeError(DurablyError):
    """The workflow ran, and did not end as hoped (failed, cancelled, out of time)."""


@attrs.frozen(eq=False)
class InfrastructureError(DurablyError):
    """The storage or the scheduler failed: the same call may succeed later."""


@attrs.frozen(eq=False)
class StorageError(InfrastructureError):
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
class SchedulerError(InfrastructureError):
    """An alarm operation failed."""

    operation: str
    cause: object = None

    @property
    def message(self) -> str:
        because = f": {_describe(self.cause)}" if self.cause is not None else ""
        return f"scheduler {self.operation} failed{because}"


@attrs.frozen(eq=False)
class InvalidTransitionError(UsageError):
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
class RecoveryError(OutcomeError):
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
    """An operation failed; ``cause`` says why. An instance is also of its cause's branch
    (``UsageError``, ``OutcomeError`` or ``InfrastructureError``): building one picks the
    subclass that says so."""

    operation: str
    cause: object = None

    def __new__(cls, operation: str = "", cause: object = None) -> OrchestratorError:
        if cls is OrchestratorError:
            cls = _ORCHESTRATOR_BRANCHES[branch_of(cause)]
        error: OrchestratorError = super().__new__(cls, operation, cause)
        return error

    @property
    def message(self) -> str:
        because = f": {_describe(self.cause)}" if self.cause is not None else ""
        return f"{self.operation} failed{because}"


@attrs.frozen(eq=False)
class WorkflowNotFoundError(UsageError):
    """No workflow is registered under the name."""

    workflow_name: str
    available_workflows: tuple[str, ...] = attrs.field(default=(), converter=_names)

    @property
    def message(self) -> str:
        available = ", ".join(self.available_workflows) or "none registered"
        return f"workflow {self.workflow_name!r} not found (available: {available})"


@attrs.frozen(eq=False)
class StepCancelledError(OutcomeError):
    """The workflow was cancelled, so the step (or sleep) did not run."""

    step_name: str

    @property
    def message(self) -> str:
        return f"step {self.step_name!r} not run: the workflow was cancelled"


@attrs.frozen(eq=False)
class RetryExhaustedError(OutcomeError):
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
class StepTimeoutError(OutcomeError):
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
class EventTimeoutError(OutcomeError):
    """``wait_for_event`` waited ``timeout_ms`` and no event ``event_name`` came (the same
    on every replay: the timeout is recorded)."""

    event_name: str
    timeout_ms: int

    @property
    def message(self) -> str:
        return f"no event {self.event_name!r} arrived within {self.timeout_ms} ms"


@attrs.frozen(eq=False)
class EventNotPublishedError(OutcomeError):
    """``Engine.get_event``: the instance has published nothing under ``key`` (within
    ``timeout_ms`` when it waited)."""

    workflow_id: str
    key: str
    timeout_ms: int | None = None

    @property
    def message(self) -> str:
        within = "" if self.timeout_ms is None else f" within {self.timeout_ms} ms"
        return f"workflow {self.workflow_id!r} has not published event {self.key!r}{within}"


@attrs.frozen(eq=False)
class ChildWorkflowError(OutcomeError):
    """A child workflow ended ``Failed`` or ``Cancelled`` (``status``); raised in its parent
    where it waits for the child (``child``, ``ChildHandle.result``). ``error`` is the
    child's stored error (``Failed``); ``reason`` the reason of its cancel."""

    child_id: str
    workflow_name: str
    status: str
    error: WorkflowError | None = None
    reason: str | None = None

    @property
    def message(self) -> str:
        what = f"child workflow {self.workflow_name!r} ({self.child_id!r})"
        if self.status == "Cancelled":
            because = f": {self.reason}" if self.reason else ""
            return f"{what} was cancelled{because}"
        error = self.error
        if error is None:
            return f"{what} ended {self.status}"
        kind = f"{error.type}: " if error.type else ""
        where = f" in step {error.step_name!r}" if error.step_name else ""
        return f"{what} failed{where}: {kind}{error.message}"


@attrs.frozen(eq=False)
class NonDeterminismError(UsageError):
    """A replay asked, at ``position`` of the order of durable points, for ``requested``
    where the instance's history has ``recorded``: the code changed under a running
    instance. The instance fails; nothing else is written."""

    workflow_id: str
    position: int
    recorded: str
    requested: str

    @property
    def message(self) -> str:
        return (
            f"workflow {self.workflow_id!r} does not replay its history: at position "
            f"{self.position} the history has {self.recorded!r} but the code asked for "
            f"{self.requested!r}. The code changed under a running instance: deploy the "
            "code that recorded it, or guard the change with durably.patched(...) so that "
            "old histories take the old path"
        )


@attrs.frozen(eq=False)
class DuplicateWorkflowError(UsageError):
    """``engine.queue`` with a ``dedupe_id`` that an instance of that queue, not final yet,
    holds already (``existing_id``); nothing was queued."""

    queue: str
    dedupe_id: str
    existing_id: str | None = None

    @property
    def message(self) -> str:
        holder = f" by instance {self.existing_id!r}" if self.existing_id else ""
        return (
            f"dedupe id {self.dedupe_id!r} of queue {self.queue!r} is held{holder}, "
            "which has not ended: nothing was queued"
        )


@attrs.frozen(eq=False)
class WorkflowScopeError(UsageError):
    """A workflow primitive was used outside a running workflow."""

    operation: str = "step"
    detail: str | None = None

    @property
    def message(self) -> str:
        if self.detail is not None:
            return f"{self.operation}(): {self.detail}"
        return f"{self.operation}() can only be used inside a workflow"


@attrs.frozen(eq=False)
class StepScopeError(UsageError):
    """A primitive that a step may not use was called inside a step."""

    operation: str
    step_name: str

    @property
    def message(self) -> str:
        return f"{self.operation}() cannot be used inside step {self.step_name!r}"


@attrs.frozen(eq=False)
class InvalidDurationError(UsageError, ValueError):
    """A duration is malformed; the message quotes the input (and the field, when known)."""

    value: object
    field: str | None = None
    reason: str = "expected milliseconds, a timedelta, or a string like '1.5s' or '5 minutes'"

    @property
    def message(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{where}invalid duration {self.value!r}: {self.reason}"


@attrs.frozen(eq=False)
class ProfileError(UsageError, ValueError):
    """A profile (YAML) cannot be used; the message names its file, and the key when one
    is at fault (``deploy.yaml: lease.duration: ...``). It never quotes a line of the file:
    a line may hold a password."""

    path: str
    problem: str
    key: str | None = None

    @property
    def message(self) -> str:
        where = f"{self.key}: " if self.key else ""
        return f"{self.path}: {where}{self.problem}"


@attrs.frozen(eq=False)
class SerializationError(UsageError):
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
class WorkflowFailedError(OutcomeError):
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
class WorkflowCancelledError(OutcomeError):
    """The workflow was cancelled."""

    workflow_id: str
    reason: str | None = None

    @property
    def message(self) -> str:
        because = f": {self.reason}" if self.reason else ""
        return f"workflow {self.workflow_id!r} was cancelled{because}"


@attrs.frozen(eq=False)
class ResultTimeoutError(OutcomeError):
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
class InstanceNotFoundError(UsageError):
    """No instance has this id."""

    workflow_id: str

    @property
    def message(self) -> str:
        return f"no workflow instance with id {self.workflow_id!r}"


@attrs.frozen(eq=False)
class ScheduleNotFoundError(UsageError):
    """No schedule is stored under this id (no engine that declares it ever opened)."""

    schedule_id: str

    @property
    def message(self) -> str:
        return f"no schedule with id {self.schedule_id!r}"


@attrs.frozen(eq=False)
class InstancePurgedError(OutcomeError):
    """The instance ended and was then purged: its output is gone; ``status`` is the
    final status its tombstone keeps (``Completed``, ``Failed`` with its error...)."""

    workflow_id: str
    status: WorkflowStatus

    @property
    def message(self) -> str:
        return (
            f"workflow {self.workflow_id!r} was purged after it ended {self.status.tag}: "
            "its output and steps are no longer stored"
        )


@attrs.frozen(eq=False)
class LeaseLost(InfrastructureError):
    """A fenced commit was refused: ``owner`` no longer holds the instance's lease."""

    instance_id: str
    owner: str | None = None

    @property
    def message(self) -> str:
        return f"lease of instance {self.instance_id!r} is no longer held by {self.owner}"


@attrs.frozen(eq=False)
class InstanceExists(InfrastructureError):
    """A creation was refused: an instance with this id was created first."""

    instance_id: str

    @property
    def message(self) -> str:
        return f"instance {self.instance_id!r} already exists"


@attrs.frozen(eq=False)
class ExecutionStopped(InfrastructureError):
    """An execution stopped before a step (or sleep) without writing anything: its lease
    may have expired, or its engine is closing. The next owner of the instance goes on."""

    workflow_id: str
    reason: str

    @property
    def message(self) -> str:
        return f"execution of {self.workflow_id!r} stopped before its next step: {self.reason}"


def branch_of(error: object) -> type[DurablyError]:
    """The branch of the tree an error belongs to (an ``OrchestratorError`` its cause's;
    a ``ValueError`` or ``TypeError`` from outside durably a usage error; anything else
    an infrastructure error)."""
    for branch in (UsageError, OutcomeError, InfrastructureError):
        if isinstance(error, branch):
            return branch
    if isinstance(error, OrchestratorError):
        return branch_of(error.cause)
    if isinstance(error, ValueError | TypeError | LookupError):
        return UsageError
    return InfrastructureError


def _orchestrator_error_of(branch: type[DurablyError]) -> type[OrchestratorError]:
    """The ``OrchestratorError`` that is also a ``branch``; it shows (in a repr, a
    traceback, a stored ``WorkflowError.type``) as ``OrchestratorError``."""
    namespace = {
        "__module__": __name__,
        "__doc__": f"An ``OrchestratorError`` whose cause is a ``{branch.__name__}``.",
    }
    made: type[OrchestratorError] = attrs.frozen(eq=False)(
        type("OrchestratorError", (OrchestratorError, branch), namespace)
    )
    return made


_ORCHESTRATOR_BRANCHES: dict[type[DurablyError], type[OrchestratorError]] = {
    branch: _orchestrator_error_of(branch)
    for branch in (UsageError, OutcomeError, InfrastructureError)
}
