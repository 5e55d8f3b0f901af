"""The executor: runs a workflow body in a scope and maps how it ended."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal, TypeAlias, assert_never

import attrs
from returns.result import Failure, Result, Success

from durably.domain import keys
from durably.domain.errors import (
    DurablyError,
    NonDeterminismError,
    OrchestratorError,
    StepCancelledError,
)
from durably.domain.events import EventBase
from durably.domain.inbox import InboxMessage, Outgoing
from durably.domain.lease import LeaseHold
from durably.domain.records import JsonValue
from durably.domain.serialization import decode
from durably.domain.status import PauseReason, WorkflowError
from durably.domain.transitions import Cancel, Complete, Fail, Pause, Transition
from durably.ports import (
    ChildStarter,
    InboxAdapter,
    RuntimeAdapter,
    SchedulerAdapter,
    StorageAdapter,
)
from durably.services.context import (
    SCOPE,
    ActiveExecutions,
    CancelSignal,
    DivergedSignal,
    ExecutionMode,
    ExecutionScope,
    InfrastructureFailure,
    PauseSignal,
    StopSignal,
    cancel_request,
)
from durably.services.definition import WorkflowDefinition
from durably.services.namespace import Namespace
from durably.services.state_machine import WorkflowStateMachine
from durably.services.trackers import EventEmitter

__all__ = [
    "ExecutionContext",
    "ExecutionCompleted",
    "ExecutionPaused",
    "ExecutionFailed",
    "ExecutionCancelled",
    "ExecutionResult",
    "PendingEvents",
    "WorkflowExecutor",
    "result_to_transition",
]

PendingEvents: TypeAlias = list[tuple[type[EventBase], dict[str, Any]]]


@attrs.frozen
class ExecutionContext:
    """What the executor needs to run one segment of an instance."""

    workflow_id: str
    workflow_name: str
    input: JsonValue
    execution_id: str | None = None
    mode: ExecutionMode = "fresh"
    messages: tuple[InboxMessage, ...] | None = None
    """The unconsumed inbox messages, when the caller has just read them (an alarm):
    the execution starts from them instead of reading the inbox again (a message that
    came since is news, and read then)."""


@attrs.frozen
class ExecutionCompleted:
    """The body returned ``output``."""

    output: Any
    duration_ms: int
    completed_steps: tuple[str, ...] = ()
    writes: dict[str, JsonValue] = attrs.field(factory=dict)
    events: PendingEvents = attrs.field(factory=list)
    consumed: tuple[int, ...] = ()
    """The inbox messages (events taken by waits) that this end consumes."""
    sends: tuple[Outgoing, ...] = ()
    """Messages to other instances (cancels of children) that this end appends."""
    tag: ClassVar[Literal["Completed"]] = "Completed"


@attrs.frozen
class ExecutionPaused:
    """The body paused at a sleep, a retry back-off or a wait; its records wait for the
    pause commit."""

    reason: PauseReason
    resume_at: int | None
    step_name: str | None = None
    attempt: int | None = None
    writes: dict[str, JsonValue] = attrs.field(factory=dict)
    events: PendingEvents = attrs.field(factory=list)
    waits: tuple[str, ...] = ()
    consumed: tuple[int, ...] = ()
    sends: tuple[Outgoing, ...] = ()
    tag: ClassVar[Literal["Paused"]] = "Paused"


@attrs.frozen
class ExecutionFailed:
    """The body raised (or returned a ``Failure``)."""

    error: WorkflowError
    duration_ms: int
    completed_steps: tuple[str, ...] = ()
    writes: dict[str, JsonValue] = attrs.field(factory=dict)
    events: PendingEvents = attrs.field(factory=list)
    consumed: tuple[int, ...] = ()
    sends: tuple[Outgoing, ...] = ()
    tag: ClassVar[Literal["Failed"]] = "Failed"


@attrs.frozen
class ExecutionCancelled:
    """The workflow was cancelled while it ran; ``reason`` is the user's."""

    reason: str | None
    completed_steps: tuple[str, ...] = ()
    writes: dict[str, JsonValue] = attrs.field(factory=dict)
    events: PendingEvents = attrs.field(factory=list)
    consumed: tuple[int, ...] = ()
    """The inbox messages (cancels, events taken by waits) that this end consumes."""
    sends: tuple[Outgoing, ...] = ()
    tag: ClassVar[Literal["Cancelled"]] = "Cancelled"


ExecutionResult: TypeAlias = (
    ExecutionCompleted | ExecutionPaused | ExecutionFailed | ExecutionCancelled
)


def result_to_transition(result: ExecutionResult) -> Transition:
    """The transition that records ``result`` (pure)."""
    match result:
        case ExecutionCompleted(duration_ms=duration_ms, completed_steps=steps):
            return Complete(completed_steps=steps, duration_ms=duration_ms)
        case ExecutionPaused(reason=reason, resume_at=resume_at, step_name=step_name, waits=waits):
            return Pause(reason=reason, resume_at=resume_at, step_name=step_name, waits=waits)
        case ExecutionFailed(error=error, completed_steps=steps):
            return Fail(error=error, completed_steps=steps)
        case ExecutionCancelled(reason=reason, completed_steps=steps):
            return Cancel(reason=reason, completed_steps=steps)
        case _:
            assert_never(result)


class WorkflowExecutor:
    """Runs a body as its own task (so a cancel can interrupt it) and maps its end."""

    def __init__(
        self,
        storage: StorageAdapter,
        scheduler: SchedulerAdapter,
        runtime: RuntimeAdapter,
        state_machine: WorkflowStateMachine,
        events: EventEmitter,
        executions: ActiveExecutions,
        inbox: InboxAdapter,
        lease: LeaseHold | None = None,
        children: ChildStarter | None = None,
    ) -> None:
        self._keys = Namespace(storage, scheduler, inbox)
        self._children = children
        self._runtime = runtime
        self._sm = state_machine
        self._events = events
        self._executions = executions
        self._lease = lease

    async def execute(
        self, definition: WorkflowDefinition[Any, Any], ctx: ExecutionContext
    ) -> Result[ExecutionResult, OrchestratorError]:
        """Run ``definition`` for ``ctx`` until it returns, fails, pauses or is cancelled."""
        try:
            return Success(await self.run(definition, ctx))
        except OrchestratorError as e:
            return Failure(e)

    async def run(
        self, definition: WorkflowDefinition[Any, Any], ctx: ExecutionContext
    ) -> ExecutionResult:
        """``execute``, raising: ``OrchestratorError("execute", ...)`` when the storage (or
        the lease) failed under the body; the last committed state stays as it was."""
        try:
            return await self._execute(definition, ctx)
        except (InfrastructureFailure, StopSignal) as f:
            raise OrchestratorError("execute", f.error) from f.error
        except OrchestratorError:
            raise
        except DurablyError as e:
            raise OrchestratorError("execute", e) from e

    async def replay(
        self, definition: WorkflowDefinition[Any, Any], ctx: ExecutionContext
    ) -> NonDeterminismError | None:
        """Replay the recorded history of ``ctx``'s instance against ``definition``
        without running anything new nor writing (mode ``replay``): the divergence
        found, or ``None`` when the code asks for the recorded points in their order up
        to the end of the history (or ends, pauses or fails as the code may)."""
        scope = self._scope(attrs.evolve(ctx, mode="replay"))
        scope.lease = None  # it holds no lease: it writes nothing
        try:
            body_input = decode(ctx.input, definition.input_type, key=keys.INPUT)
        except DurablyError:
            return None  # the input no longer fits the code: not a question of order
        await scope.history()
        task = asyncio.get_running_loop().create_task(_run_body(definition, body_input, scope))
        try:
            await task
        except DivergedSignal as d:
            return d.error
        except (InfrastructureFailure, StopSignal) as f:
            raise OrchestratorError("replay", f.error) from f.error
        except (Exception, PauseSignal, CancelSignal):
            pass  # the history ended here, or the code stopped as it may
        return None

    def _scope(self, ctx: ExecutionContext) -> ExecutionScope:
        return ExecutionScope(
            workflow_id=ctx.workflow_id,
            workflow_name=ctx.workflow_name,
            execution_id=ctx.execution_id,
            input=ctx.input,
            mode=ctx.mode,
            keys=self._keys,
            runtime=self._runtime,
            state_machine=self._sm,
            events=self._events.bound(ctx.workflow_name, ctx.execution_id),
            lease=self._lease,
            children=self._children,
            messages=None if ctx.messages is None else list(ctx.messages),
        )

    async def _execute(
        self, definition: WorkflowDefinition[Any, Any], ctx: ExecutionContext
    ) -> ExecutionResult:
        scope = self._scope(ctx)
        try:
            body_input = decode(ctx.input, definition.input_type, key=keys.INPUT)
        except DurablyError as e:
            return await self._failed(scope, WorkflowError.from_exception(e))
        await scope.history()  # the order of points it recorded: read before the body runs
        task = asyncio.get_running_loop().create_task(_run_body(definition, body_input, scope))
        unregister = self._executions.add(ctx.workflow_id, task)
        try:
            output = await task
        except PauseSignal as p:
            return ExecutionPaused(
                reason=p.reason,
                resume_at=p.resume_at,
                step_name=p.step_name,
                attempt=p.attempt,
                writes={**scope.take_pending(), **p.writes},
                events=p.events,
                waits=p.waits,
                consumed=scope.take_consumed(),
                sends=scope.take_sends(),
            )
        except (CancelSignal, StepCancelledError):
            return await self._cancelled(scope)
        except DivergedSignal as d:
            # The history does not fit the code: fail, and write nothing the body left.
            scope.take_pending(), scope.take_consumed(), scope.take_sends()
            return await self._failed(scope, WorkflowError.from_exception(d.error))
        except asyncio.CancelledError:
            if not self._executions.was_interrupted(task):
                raise  # the host is shutting down: leave the instance to recovery
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return await self._cancelled(scope)
        except Exception as e:
            where = scope.failures.get(id(e), (None, None))
            return await self._failed(scope, WorkflowError.from_exception(e, *where))
        finally:
            unregister()
        if isinstance(output, Failure):
            error = output.failure()
            if not isinstance(error, BaseException):
                error = RuntimeError(str(error))
            return await self._failed(scope, WorkflowError.from_exception(error))
        if isinstance(output, Success):
            output = output.unwrap()
        if scope.cancels or (self._keys.has_news() and await self._cancel_arrived(scope)):
            return await self._cancelled(scope)
        return ExecutionCompleted(
            output=output,
            duration_ms=await self._duration(),
            completed_steps=await scope.all_completed_steps(),
            writes=scope.take_pending(),
            consumed=scope.take_consumed(),
            sends=scope.take_sends(),
        )

    async def _duration(self) -> int:
        started = await self._keys.get(keys.STARTED_AT)
        return max(0, self._runtime.now() - int(started)) if started is not None else 0

    async def _failed(self, scope: ExecutionScope, error: WorkflowError) -> ExecutionFailed:
        return ExecutionFailed(
            error=error,
            duration_ms=await self._duration(),
            completed_steps=await scope.all_completed_steps(),
            writes=scope.take_pending(),
            consumed=scope.take_consumed(),
            sends=scope.take_sends(),
        )

    async def _cancel_arrived(self, scope: ExecutionScope) -> bool:
        """Whether the inbox holds a cancel (read when a commit saw news)."""
        await scope.read_inbox()
        return bool(scope.cancels)

    async def _cancelled(self, scope: ExecutionScope) -> ExecutionCancelled:
        """The end of a cancelled execution: the reason of the cancel message (the user's
        ``StepCancelledError`` has none), and every cancel consumed."""
        if not scope.cancels:
            await scope.read_inbox()
        request = cancel_request(scope.cancels)
        reason, consumed = request if request is not None else (None, ())
        return ExecutionCancelled(
            reason=reason,
            completed_steps=await scope.all_completed_steps(),
            writes=scope.take_pending(),
            consumed=tuple(sorted({*consumed, *scope.take_consumed()})),
            sends=scope.take_sends(),
        )


async def _run_body(definition: WorkflowDefinition[Any, Any], input: Any, scope: Any) -> Any:
    SCOPE.set(scope)  # this task's own context copy: invisible to every other workflow
    return await definition.call(input)
