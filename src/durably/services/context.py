"""The execution scope: what the primitives see while a workflow body runs.

The scope travels in a ``contextvars.ContextVar``, so concurrent workflows in one
event loop never see each other's. Control flow that user code must not swallow
(pause, cancel, a storage failure) travels as private ``BaseException`` subclasses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal, TypeAlias

import attrs

from durably.domain.errors import DurablyError, StepCancelledError, WorkflowScopeError
from durably.domain.events import EventBase
from durably.domain.records import JsonValue
from durably.domain.results import ok
from durably.domain.status import PauseReason
from durably.ports import RuntimeAdapter, SchedulerAdapter, StorageAdapter
from durably.services.state_machine import WorkflowStateMachine
from durably.services.trackers import BoundEmitter

__all__ = [
    "ExecutionMode",
    "StepInfo",
    "ExecutionScope",
    "PauseSignal",
    "CancelSignal",
    "InfrastructureFailure",
    "ActiveExecutions",
    "current_scope",
    "current_step",
    "require_scope",
    "SCOPE",
    "STEP",
]

ExecutionMode: TypeAlias = Literal["fresh", "resume", "recover", "direct"]


@attrs.frozen
class StepInfo:
    """The step being run: for logging and for idempotency keys of external calls."""

    workflow_id: str
    step_name: str
    attempt: int
    idempotency_key: str


class PauseSignal(BaseException):
    """The body must stop here and resume at ``resume_at`` (a sleep or a retry back-off)."""

    def __init__(
        self,
        reason: PauseReason,
        resume_at: int,
        step_name: str | None = None,
        attempt: int | None = None,
        writes: dict[str, JsonValue] | None = None,
        events: list[tuple[type[EventBase], dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(reason, resume_at, step_name)
        self.reason: PauseReason = reason
        self.resume_at = resume_at
        self.step_name = step_name
        self.attempt = attempt
        self.writes = writes or {}
        self.events = events or []


class CancelSignal(BaseException):
    """The workflow was cancelled; ``error`` names where it noticed."""

    def __init__(self, error: StepCancelledError) -> None:
        super().__init__(error)
        self.error = error


class InfrastructureFailure(BaseException):
    """Storage or scheduler failed under a primitive; the execution stops as it stands."""

    def __init__(self, error: DurablyError) -> None:
        super().__init__(error)
        self.error = error


@attrs.define(eq=False, slots=True)
class ExecutionScope:
    """The state of one execution segment of one instance."""

    workflow_id: str
    workflow_name: str
    execution_id: str | None
    input: Any
    mode: ExecutionMode
    storage: StorageAdapter
    scheduler: SchedulerAdapter
    runtime: RuntimeAdapter
    state_machine: WorkflowStateMachine
    events: BoundEmitter
    durable: bool = True
    name_counts: dict[str, int] = attrs.field(factory=dict)
    sleep_count: int = 0
    pending: dict[str, JsonValue] = attrs.field(factory=dict)
    """Writes that ride along with the next commit (sleep records, metadata)."""
    failures: dict[int, tuple[str, int]] = attrs.field(factory=dict)
    """id(exception) -> (step key, attempt), to tell the executor where an error came from."""
    completed: int | None = None
    """How many steps have completed (read once per segment, then counted here)."""
    completed_steps: list[str] | None = None
    """The completed step keys in order, known with ``completed`` (``None``: read them)."""
    sleep_names: dict[str, int] = attrs.field(factory=dict)
    pending_events: list[tuple[type[EventBase], dict[str, Any]]] = attrs.field(factory=list)

    async def completed_count(self) -> int:
        """The place of the next step to complete (read once per segment, then counted)."""
        if self.completed is None or self.completed_steps is None:
            self.completed, self.completed_steps = ok(await self.state_machine.completion_order())
        return self.completed

    def step_completed(self, key: str, index: int) -> None:
        """Count the step ``key``, committed at place ``index``."""
        self.completed = index + 1
        if self.completed_steps is not None:
            self.completed_steps.append(key)

    def forget_completions(self) -> None:
        """What completed is no longer known here (a commit failed): read it again."""
        self.completed = None
        self.completed_steps = None

    async def all_completed_steps(self) -> tuple[str, ...]:
        """Every completed step key, in completion order (read only if not known here)."""
        if self.completed_steps is not None:
            return tuple(self.completed_steps)
        return ok(await self.state_machine.get_completed_steps())

    def next_sleep_key(self, name: str | None) -> str:
        """The key of this sleep: its name (``name#2`` when repeated), or ``sleep#n``."""
        if name is None:
            self.sleep_count += 1
            return f"sleep#{self.sleep_count}"
        count = self.sleep_names.get(name, 0) + 1
        self.sleep_names[name] = count
        return name if count == 1 else f"{name}#{count}"

    def next_key(self, name: str) -> str:
        """The key of this call of ``name``: ``name``, then ``name#2``, ``name#3``..."""
        count = self.name_counts.get(name, 0) + 1
        self.name_counts[name] = count
        return name if count == 1 else f"{name}#{count}"

    def take_pending(self) -> dict[str, JsonValue]:
        """The writes waiting for a commit (and forget them)."""
        pending, self.pending = self.pending, {}
        return pending

    def after_commit(self, event_type: type[EventBase], **fields: Any) -> None:
        """Emit an event once the pending writes it describes are committed."""
        if self.events.enabled:
            self.pending_events.append((event_type, fields))

    def take_events(self) -> list[tuple[type[EventBase], dict[str, Any]]]:
        """The events waiting for a commit (and forget them)."""
        events, self.pending_events = self.pending_events, []
        return events


SCOPE: ContextVar[ExecutionScope | None] = ContextVar("durably_scope", default=None)
STEP: ContextVar[StepInfo | None] = ContextVar("durably_step", default=None)


def current_scope() -> ExecutionScope | None:
    """The scope of the workflow running in this context, if any."""
    return SCOPE.get()


def current_step() -> StepInfo | None:
    """The step running in this context, if any."""
    return STEP.get()


def require_scope(operation: str) -> ExecutionScope:
    """The current scope, or ``WorkflowScopeError`` naming ``operation``."""
    scope = SCOPE.get()
    if scope is None:
        raise WorkflowScopeError(operation)
    return scope


class ActiveExecutions:
    """The executions running in this process, by instance id, so that a cancel can interrupt."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._cancelled: set[asyncio.Task[Any]] = set()

    def add(self, instance_id: str, task: asyncio.Task[Any]) -> Callable[[], None]:
        """Register ``task``; returns the function that unregisters it."""
        self._tasks[instance_id] = task

        def remove() -> None:
            if self._tasks.get(instance_id) is task:
                del self._tasks[instance_id]
            self._cancelled.discard(task)

        return remove

    def interrupt(self, instance_id: str) -> bool:
        """Cancel the running execution of ``instance_id`` here, if there is one."""
        task = self._tasks.get(instance_id)
        if task is None or task.done():
            return False
        self._cancelled.add(task)
        task.cancel("durably: workflow cancelled")
        return True

    def was_interrupted(self, task: asyncio.Task[Any]) -> bool:
        """Whether ``task`` was cancelled by ``interrupt`` (not by shutdown)."""
        return task in self._cancelled

    def running(self, instance_id: str) -> bool:
        """Whether an execution of ``instance_id`` runs in this process."""
        task = self._tasks.get(instance_id)
        return task is not None and not task.done()
