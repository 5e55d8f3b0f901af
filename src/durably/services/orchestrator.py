"""The orchestrator: start, queue, handle alarms, cancel and report one instance."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import attrs
from returns.result import Failure, Result, Success

from durably.domain import keys
from durably.domain.errors import (
    DuplicateWorkflowError,
    DurablyError,
    InstanceNotFoundError,
    InstancePurgedError,
    NonDeterminismError,
    OrchestratorError,
    SerializationError,
    StorageError,
)
from durably.domain.events import (
    EventSent,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowPaused,
    WorkflowQueued,
    WorkflowResumed,
    WorkflowStarted,
)
from durably.domain.inbox import CANCEL, EVENT, InboxMessage, Outgoing, event_dedupe_key, wait_key
from durably.domain.lease import LeaseHold
from durably.domain.records import AlarmFailure, JsonValue, ParentLink, Reopening, Tombstone
from durably.domain.serialization import (
    decode,
    decode_value,
    dumps,
    encode,
    encode_value,
    type_name,
)
from durably.domain.status import (
    TERMINAL_TAGS,
    Cancelled,
    Completed,
    Paused,
    Pending,
    Queued,
    Running,
    WorkflowError,
    WorkflowStatus,
    is_terminal,
)
from durably.domain.transitions import Cancel, Queue, Reopen, Resume, Start
from durably.ports import InboxAdapter, RuntimeAdapter, SchedulerAdapter, StorageAdapter
from durably.services.context import ActiveExecutions, ExecutionMode, cancel_request
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
from durably.services.namespace import Namespace
from durably.services.purge import PurgeManager
from durably.services.recovery import RecoveryManager
from durably.services.registry import WorkflowRegistry
from durably.services.state_machine import WorkflowState, WorkflowStateMachine
from durably.services.trackers import BoundEmitter, EventEmitter
from durably.services.types import (
    CancelResult,
    SendResult,
    StartResult,
    WorkflowCall,
    WorkflowStatusResult,
)

__all__ = ["WorkflowOrchestrator"]

T = TypeVar("T")


def is_terminal_tag(tag: str) -> bool:
    """Whether ``tag`` names a terminal status."""
    return tag in TERMINAL_TAGS


def _check_input(definition: WorkflowDefinition[Any, Any], data: Any) -> None:
    """Refuse, before anything is stored, an input the workflow could never read back."""
    try:
        decode(data, definition.input_type, key=keys.INPUT)
    except SerializationError as e:
        raise SerializationError(
            f"the input does not fit workflow {definition.name!r}'s input type "
            f"{getattr(definition.input_type, '__name__', definition.input_type)!s}",
            key=keys.INPUT,
            type_name=type(data).__name__,
        ) from e


def delivered(waits: tuple[str, ...], messages: list[InboxMessage]) -> bool:
    """Whether one of ``messages`` is a delivery that a pause ``waits`` for."""
    return bool(waits) and any(wait_key(m.kind, m.name) in waits for m in messages)


class _Exists(Exception):
    """The instance was created by someone else between our check and our commit."""

    def __init__(self, status: WorkflowStatus) -> None:
        self.status = status


class WorkflowOrchestrator:
    """The one entry point for an instance; every failure is an ``OrchestratorError``."""

    def __init__(
        self,
        storage: StorageAdapter,
        scheduler: SchedulerAdapter,
        runtime: RuntimeAdapter,
        state_machine: WorkflowStateMachine,
        recovery: RecoveryManager,
        executor: WorkflowExecutor,
        registry: WorkflowRegistry,
        purge: PurgeManager,
        events: EventEmitter,
        executions: ActiveExecutions,
        inbox: InboxAdapter,
        lease: LeaseHold | None = None,
    ) -> None:
        self._keys = Namespace(storage, scheduler, inbox)
        self._runtime = runtime
        self._sm = state_machine
        self._recovery = recovery
        self._executor = executor
        self._registry = registry
        self._purge = purge
        self._events = events
        self._executions = executions
        self._lease = lease

    @property
    def instance_id(self) -> str:
        """The id of the instance served."""
        return self._runtime.instance_id

    # -- start and queue ---------------------------------------------------------------

    async def start(self, call: WorkflowCall) -> Result[StartResult, OrchestratorError]:
        """Create the instance and run it until it completes, fails or pauses (idempotent)."""
        return await self._guard("start", self._start(call, queue=False))

    async def queue(self, call: WorkflowCall) -> Result[StartResult, OrchestratorError]:
        """Create the instance and set its alarm to now; it runs when the alarm fires."""
        return await self._guard("queue", self._start(call, queue=True))

    async def fork(
        self, call: WorkflowCall, history: Mapping[str, JsonValue]
    ) -> Result[StartResult, OrchestratorError]:
        """Create the instance queued, with the records of ``history`` (the points an
        instance it forks had ended): a worker runs it from the first point not in it."""
        return await self._guard("fork", self._start(call, queue=True, history=history))

    async def _start(
        self,
        call: WorkflowCall,
        *,
        queue: bool,
        history: Mapping[str, JsonValue] | None = None,
    ) -> StartResult:
        definition = self._registry.definition(call.workflow)
        existing = await self._sm.status()
        if existing is not None and history is not None:
            taken = ValueError(f"instance {self.instance_id!r} exists already: fork to another id")
            raise OrchestratorError("fork", taken)
        if existing is not None:
            return await self._existing(call, existing)
        data = encode(call.input, key=keys.INPUT)
        _check_input(definition, data)
        now = self._runtime.now()
        try:
            async with self._keys.transaction():
                raced = await self._sm.status()
                if raced is not None:
                    raise _Exists(raced)
                await self._sm.create(call.workflow, data, call.execution_id)
                await self._keys.put(keys.STARTED_AT, now)
                if call.parent is not None:
                    await self._keys.put(keys.PARENT, encode(call.parent, key=keys.PARENT))
                if call.placement is not None:
                    await self._keys.put(keys.QUEUE, encode(call.placement, key=keys.QUEUE))
                if history:
                    await self._keys.put_batch(history)
                if queue:
                    await self._sm.transition(Queue(input=data))
                    await self._keys.schedule(now if call.start_at is None else call.start_at)
                else:
                    await self._sm.transition(Start(input=data))
        except _Exists as e:
            return await self._existing(call, e.status)
        except StorageError as e:
            if isinstance(e.cause, DuplicateWorkflowError):
                raise e.cause from e  # the queue's dedupe id is held: nothing was queued
            # Another process may have created the instance between our read and our
            # commit (the backend refuses a second creation): answer as for an existing one.
            created = await self._sm.status()
            if created is None:
                raise
            return await self._existing(call, created)
        emitter = self._events.bound(call.workflow, call.execution_id)
        if queue:
            emitter.emit(WorkflowQueued, input=data)
            return StartResult(self.instance_id, False, None, Queued(now))
        emitter.emit(WorkflowStarted, input=data)
        ctx = ExecutionContext(self.instance_id, call.workflow, data, call.execution_id, "fresh")
        return await self._run(definition, ctx, emitter)

    async def _existing(self, call: WorkflowCall, status: WorkflowStatus) -> StartResult:
        name = await self._keys.get(keys.NAME)
        if name is not None and name != call.workflow:
            raise OrchestratorError(
                "start",
                ValueError(
                    f"instance {self.instance_id!r} already exists as workflow {name!r}, "
                    f"not {call.workflow!r}; it was not touched"
                ),
            )
        if call.parent is not None:
            found = await self._keys.get(keys.PARENT)
            link = None if found is None else decode(found, ParentLink, key=keys.PARENT)
            if link != call.parent:
                whose = "no workflow's" if link is None else f"{link.id!r}'s ({link.key!r})"
                raise OrchestratorError(
                    "start",
                    ValueError(
                        f"instance {self.instance_id!r} already exists as {whose} child, not "
                        f"{call.parent.id!r}'s ({call.parent.key!r}); give the child another id"
                    ),
                )
        output = None
        if isinstance(status, Completed):
            output = await self._stored_output(call.workflow)
        return StartResult(self.instance_id, isinstance(status, Completed), output, status)

    async def _stored_output(self, workflow: str) -> Any:
        raw = await self._keys.get(keys.OUTPUT)
        found = self._registry.has(workflow)
        output_type = self._registry.definition(workflow).output_type if found else Any
        return None if raw is None else decode_value(raw, output_type, key=keys.OUTPUT)

    # -- alarms ------------------------------------------------------------------------

    async def handle_alarm(self) -> Result[None, OrchestratorError]:
        """Do what the alarm is for: start, resume, recover, purge, or re-arm if early."""
        return await self._guard("alarm", self._handle_alarm())

    async def _handle_alarm(self) -> None:
        status = await self._sm.status()
        now = self._runtime.now()
        match status:
            case None | Pending():
                return
            case Running() if self._executions.running(self.instance_id):
                return  # a live execution in this process: a duplicate alarm, not a crash
            case _ if is_terminal(status):
                await self._purge.purge_if_due()
                return
        # Queued, Paused or Running: a cancel that waits in the inbox comes first (sent
        # while another worker held the lease, or while the owner crashed). When the claim
        # said no message ever arrived, there is nothing to read (one that arrives after
        # the claim is seen at the first step, from the number its commit brings back).
        lease = self._lease
        nothing_sent = lease is not None and lease.inbox_seq == 0
        messages = [] if nothing_sent else await self._keys.pending()
        request = cancel_request(messages)
        if request is not None:
            await self._record_cancel(status, *request)
            return
        match status:
            case Queued():
                state = await self._state()
                definition = self._registry.definition(state.workflow_name)
                await self._sm.transition(Start(input=state.input))
                emitter = self._events.bound(state.workflow_name, state.execution_id)
                emitter.emit(WorkflowStarted, input=state.input)
                context = self._context(state, "fresh", messages)
                await self._run(definition, context, emitter, alarm=True)
            case Paused(resume_at=resume_at, waits=waits) if (
                resume_at is None or now < resume_at
            ) and not delivered(waits, messages):
                # Fix: never resume early (an early or repeated alarm, or a delivery that
                # this pause does not wait for).
                if resume_at is None:
                    await self._keys.clear_alarm()
                else:
                    await self._keys.schedule(resume_at)
            case Paused():
                state = await self._state()
                definition = self._registry.definition(state.workflow_name)
                await self._sm.transition(Resume())
                emitter = self._events.bound(state.workflow_name, state.execution_id)
                emitter.emit(WorkflowResumed)
                context = self._context(state, "resume", messages)
                await self._run(definition, context, emitter, alarm=True)
            case Running():
                state = await self._state()
                definition = self._registry.definition(state.workflow_name)
                recovered = await self._recovery.recover()
                if recovered.success:
                    emitter = self._events.bound(state.workflow_name, state.execution_id)
                    context = self._context(state, "recover", messages)
                    await self._run(definition, context, emitter, alarm=True)
                elif recovered.new_status == "Failed":
                    # Recovery gave up (terminal): the cleanup includes scheduling the purge.
                    await self._purge.schedule()

    async def replay(self) -> Result[NonDeterminismError | None, OrchestratorError]:
        """Replay the instance's recorded history against the registered code without
        running anything new nor writing: the divergence found, if any (a replay check:
        ``durably replay``, ``durably.testing.replay``)."""
        return await self._guard("replay", self._replay())

    async def _replay(self) -> NonDeterminismError | None:
        state = await self._sm.state()
        if state is None:
            raise OrchestratorError("replay", f"no workflow instance {self.instance_id!r}")
        definition = self._registry.definition(state.workflow_name)
        return await self._executor.replay(definition, self._context(state, "replay"))

    async def record_alarm_failure(self, error: DurablyError) -> Result[None, OrchestratorError]:
        """Record why the alarm just handled failed (for ``durably show``), in a commit
        of its own; the end of the next segment clears it. Only the lease holder calls it."""
        return await self._guard("record_alarm_failure", self._record_alarm_failure(error))

    async def _record_alarm_failure(self, error: DurablyError) -> None:
        cause: BaseException = error
        while isinstance(cause, OrchestratorError) and isinstance(cause.cause, BaseException):
            cause = cause.cause
        now = self._runtime.now()
        description = WorkflowError(message=str(cause), type=type(cause).__name__)
        stored = await self._keys.get(keys.LAST_ALARM_ERROR)
        previous = (
            None if stored is None else decode(stored, AlarmFailure, key=keys.LAST_ALARM_ERROR)
        )
        record = AlarmFailure(
            error=description,
            failed_at=now,
            first_failed_at=now if previous is None else previous.first_failed_at,
            count=1 if previous is None else previous.count + 1,
        )
        await self._keys.put(keys.LAST_ALARM_ERROR, encode(record, key=keys.LAST_ALARM_ERROR))

    async def _state(self) -> WorkflowState:
        state = await self._sm.state()
        if state is None:  # pragma: no cover - the status was read just before
            raise OrchestratorError("alarm", "the instance vanished")
        return state

    def _context(
        self,
        state: WorkflowState,
        mode: ExecutionMode,
        messages: list[InboxMessage] | None = None,
    ) -> ExecutionContext:
        return ExecutionContext(
            self.instance_id,
            state.workflow_name,
            state.input,
            state.execution_id,
            mode,
            None if messages is None else tuple(messages),
        )

    # -- execution and its final commit ------------------------------------------------

    async def _run(
        self,
        definition: WorkflowDefinition[Any, Any],
        ctx: ExecutionContext,
        emitter: BoundEmitter,
        *,
        alarm: bool = False,
    ) -> StartResult:
        """Execute a segment and commit its end (``alarm``: an alarm started it)."""
        result = await self._executor.run(definition, ctx)
        try:
            result = await self._settle(result, emitter, definition.output_type, alarm=alarm)
        except DurablyError as e:
            # The final commit is part of executing: the last committed state stays as it was.
            raise OrchestratorError("execute", e) from e
        output = result.output if isinstance(result, ExecutionCompleted) else None
        status = await self._sm.status()
        return StartResult(self.instance_id, isinstance(result, ExecutionCompleted), output, status)

    async def _settle(
        self, result: ExecutionResult, emitter: BoundEmitter, output_type: Any, *, alarm: bool
    ) -> ExecutionResult:
        """Commit how the segment ended: records, transition, alarm, purge: one commit
        (which forgets why an earlier alarm failed: a segment started by a ``start`` has
        had no alarm)."""
        writes = dict(result.writes)
        if isinstance(result, ExecutionCompleted):
            try:
                data, output = encode_value(result.output, output_type, key=keys.OUTPUT)
                writes[keys.OUTPUT] = data
                # The caller gets the output as ``result()`` will read it back.
                result = attrs.evolve(result, output=output)
            except SerializationError as e:
                error = WorkflowError.from_exception(e)
                completed = result
                result = ExecutionFailed(
                    error, completed.duration_ms, completed.completed_steps, writes
                )
        async with self._keys.transaction():
            if writes:
                await self._keys.put_batch(writes)
            if isinstance(result, ExecutionCancelled):
                await self._sm.record_cancel(result.reason)
            await self._keys.consume(result.consumed)
            for message in result.sends:
                await self._keys.send(message)
            await self._sm.transition(result_to_transition(result))
            await self._sm.forget_recoveries()
            if alarm:
                await self._keys.delete(keys.LAST_ALARM_ERROR)  # this one went well
            if isinstance(result, ExecutionPaused) and result.resume_at is not None:
                await self._keys.schedule(result.resume_at)
                await self._sm.remember_resume_at(result.resume_at)
            elif isinstance(result, ExecutionPaused):  # until a delivery, however long
                await self._sm.forget_resume_at()
                await self._keys.clear_alarm()
            else:
                await self._sm.forget_resume_at()
                await self._keys.clear_alarm()
                await self._purge.schedule()
        self._emit_end(result, emitter)
        return result

    def _emit_end(self, result: ExecutionResult, emitter: BoundEmitter) -> None:
        if not isinstance(result, ExecutionPaused):
            for event_type, fields in result.events:
                emitter.emit(event_type, **fields)
        match result:
            case ExecutionCompleted(duration_ms=duration_ms, completed_steps=steps):
                emitter.emit(WorkflowCompleted, completed_steps=steps, duration_ms=duration_ms)
            case ExecutionPaused():
                for event_type, fields in result.events:
                    emitter.emit(event_type, **fields)
                emitter.emit(
                    WorkflowPaused,
                    reason=result.reason,
                    resume_at=result.resume_at,
                    step_name=result.step_name,
                )
            case ExecutionFailed(error=error, completed_steps=steps):
                emitter.emit(WorkflowFailed, error=error, completed_steps=steps)
            case _:
                emitter.emit(
                    WorkflowCancelled, reason=result.reason, completed_steps=result.completed_steps
                )

    # -- operator actions ----------------------------------------------------------------

    async def reopen(self, reason: str | None = None) -> Result[StartResult, OrchestratorError]:
        """Run a ``Failed`` or ``Cancelled`` instance again (``Reopen``: it is queued, a
        worker runs it): its completed steps are kept, the step that failed gets fresh
        attempts. The reopening is kept in its history (``workflow:reopens``)."""
        return await self._guard("resume", self._reopen(reason))

    async def _reopen(self, reason: str | None) -> StartResult:
        status = await self._sm.status()
        if status is None:
            raise InstanceNotFoundError(self.instance_id)
        tombstone = await self._keys.get(keys.TOMBSTONE)
        if tombstone is not None:
            raise InstancePurgedError(
                self.instance_id, decode(tombstone, Tombstone, key=keys.TOMBSTONE).status
            )
        now = self._runtime.now()
        async with self._keys.transaction():
            await self._sm.transition(Reopen(reason))  # InvalidTransitionError if not final
            earlier = await self._keys.get(keys.REOPENS)
            reopens = [*(earlier or []), encode(Reopening(now, status.tag, reason))]
            await self._keys.put(keys.REOPENS, reopens)
            for stale in (
                keys.CANCELLED,
                keys.CANCEL_REASON,
                keys.PURGE_AT,
                keys.LAST_ALARM_ERROR,
                keys.RECOVERY_ATTEMPTS,
                keys.PENDING_RESUME_AT,
            ):
                await self._keys.delete(stale)
            await self._keys.schedule(now)
        state = await self._state()
        self._events.bound(state.workflow_name, state.execution_id).emit(
            WorkflowQueued, input=state.input
        )
        return StartResult(self.instance_id, False, None, Queued(now))

    # -- cancel and status -------------------------------------------------------------

    async def cancel(self, reason: str | None = None) -> Result[CancelResult, OrchestratorError]:
        """Cancel the instance: now when it waits (queued, paused) or when nobody runs it
        under our lease; else through its inbox, acted on at its next step or sleep (and
        at once when its execution runs in this process)."""
        return await self._guard("cancel", self._cancel(reason))

    async def _cancel(self, reason: str | None) -> CancelResult:
        status = await self._sm.status()
        if status is None:
            return CancelResult(False, "not_found", None)
        if is_terminal(status):
            return CancelResult(False, "already_terminal", status.tag)
        running_here = self._executions.running(self.instance_id)
        held = self._lease is not None and self._lease.held
        if isinstance(status, Running) and (running_here or not held):
            message = Outgoing(self.instance_id, CANCEL, payload=dumps({"reason": reason}))
            outcome = await self._keys.append(message)
            if outcome.status is not None and is_terminal_tag(outcome.status):
                return CancelResult(False, "already_terminal", outcome.status)
            self._executions.interrupt(self.instance_id)
            return CancelResult(True, None, status.tag)
        earlier = cancel_request(await self._keys.pending())
        await self._record_cancel(status, reason, () if earlier is None else earlier[1])
        return CancelResult(True, None, status.tag)

    # -- events ------------------------------------------------------------------------

    async def send_event(
        self, name: str, payload: JsonValue, event_id: str | None = None
    ) -> Result[SendResult, OrchestratorError]:
        """Deliver event ``name`` to the instance's inbox (one commit, which also makes the
        instance due when it is paused: it resumes if it waits for that event)."""
        return await self._guard("send_event", self._send_event(name, payload, event_id))

    async def _send_event(self, name: str, payload: JsonValue, event_id: str | None) -> SendResult:
        where = f"event {name!r}"
        data = encode(payload, key=where)
        try:
            text = dumps(data)
        except ValueError as e:  # over the size every backend takes
            raise SerializationError(str(e), key=where, type_name=type_name(payload)) from e
        dedupe = None if event_id is None else event_dedupe_key(event_id)
        message = Outgoing(self.instance_id, EVENT, name=name, payload=text, dedupe_key=dedupe)
        outcome = await self._keys.append(message)
        if outcome.status is None:
            return SendResult(False, "not_found")
        if outcome.duplicate:
            return SendResult(True, None, duplicate=True)
        if outcome.seq is None:
            return SendResult(False, "already_terminal")
        self._events.bound(outcome.workflow or "unknown").emit(
            EventSent, event_name=name, seq=outcome.seq, delivery_id=event_id
        )
        return SendResult(True)

    async def _record_cancel(
        self, status: WorkflowStatus, reason: str | None, consumed: tuple[int, ...] = ()
    ) -> None:
        """Record ``Cancelled`` for an instance that no execution runs (consuming the cancel
        messages that asked for it)."""
        async with self._keys.transaction():
            await self._sm.record_cancel(reason)
            await self._keys.consume(consumed)
            steps = await self._sm.completed_steps()
            if isinstance(status, Pending):
                # Pending has no Cancel transition (the table); it never ran, so record it directly.
                await self._keys.put(keys.STATUS, encode(Cancelled(self._runtime.now(), reason)))
            else:
                await self._sm.transition(Cancel(reason=reason, completed_steps=steps))
            await self._sm.forget_resume_at()
            await self._keys.delete(keys.LAST_ALARM_ERROR)
            await self._keys.clear_alarm()
            await self._purge.schedule()
        state = await self._sm.state()
        name = state.workflow_name if state is not None else "unknown"
        execution_id = state.execution_id if state is not None else None
        self._events.bound(name, execution_id).emit(
            WorkflowCancelled, reason=reason, completed_steps=steps
        )

    async def get_status(self) -> Result[WorkflowStatusResult, OrchestratorError]:
        """The status and the completed steps."""
        return await self._guard("status", self.report())

    async def report(self) -> WorkflowStatusResult:
        """``get_status``, raising the storage's error."""
        status = await self._sm.status()
        if status is None:
            return WorkflowStatusResult(None, (), False)
        children = tuple(child.child_id for child in await self._sm.children())
        return WorkflowStatusResult(status, await self._sm.completed_steps(), True, children)

    async def exists(self) -> Result[bool, OrchestratorError]:
        """Whether the instance exists."""
        return await self._guard("exists", self._exists())

    async def _exists(self) -> bool:
        return await self._sm.status() is not None

    @staticmethod
    async def _guard(operation: str, work: Awaitable[T]) -> Result[T, OrchestratorError]:
        """Run ``work``; any durably error comes back as ``OrchestratorError(operation, ...)``."""
        try:
            return Success(await work)
        except OrchestratorError as e:
            return Failure(e)  # already names its operation (e.g. "execute")
        except DurablyError as e:
            return Failure(OrchestratorError(operation, e))
