"""The execution scope: what the primitives see while a workflow body runs.

The scope travels in a ``contextvars.ContextVar``, so concurrent workflows in one
event loop never see each other's. Control flow that user code must not swallow
(pause, cancel, a storage failure) travels as private ``BaseException`` subclasses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import CodeType
from typing import Any, Literal, TypeAlias, TypeVar

import attrs

from durably.domain.errors import (
    DurablyError,
    ExecutionStopped,
    NonDeterminismError,
    StepCancelledError,
    WorkflowScopeError,
)
from durably.domain.events import EventBase
from durably.domain.inbox import CANCEL, EVENT, InboxMessage, Outgoing
from durably.domain.keys import RECOVERY_ATTEMPTS, point_of
from durably.domain.lease import LeaseHold
from durably.domain.records import JsonValue
from durably.domain.status import PauseReason
from durably.ports import ChildStarter, RuntimeAdapter
from durably.services.namespace import Namespace
from durably.services.state_machine import WorkflowStateMachine
from durably.services.trackers import BoundEmitter

__all__ = [
    "ExecutionMode",
    "StepInfo",
    "ExecutionScope",
    "PauseSignal",
    "CancelSignal",
    "StopSignal",
    "DivergedSignal",
    "HistoryEnded",
    "InfrastructureFailure",
    "cancel_request",
    "ActiveExecutions",
    "current_scope",
    "current_step",
    "require_scope",
    "SCOPE",
    "STEP",
    "BRANCH_CHILDREN",
    "durable",
    "is_durable",
]

ExecutionMode: TypeAlias = Literal["fresh", "resume", "recover", "direct", "replay"]
"""``replay``: a replay check of stored history against the current code, which runs
nothing new (``HistoryEnded`` stops it where the history ends) and commits nothing."""


@attrs.frozen
class StepInfo:
    """The step being run: for logging and for idempotency keys of external calls."""

    workflow_id: str
    step_name: str
    attempt: int
    idempotency_key: str


class PauseSignal(BaseException):
    """The body must stop here and resume at ``resume_at`` (a sleep, a retry back-off, a
    wait's deadline; ``None``: none), or earlier when a delivery matches ``waits``."""

    def __init__(
        self,
        reason: PauseReason,
        resume_at: int | None,
        step_name: str | None = None,
        attempt: int | None = None,
        writes: dict[str, JsonValue] | None = None,
        events: list[tuple[type[EventBase], dict[str, Any]]] | None = None,
        waits: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason, resume_at, step_name)
        self.reason: PauseReason = reason
        self.resume_at = resume_at
        self.step_name = step_name
        self.attempt = attempt
        self.writes = writes or {}
        self.events = events or []
        self.waits = waits


class HistoryEnded(PauseSignal):
    """A replay check reached the end of the history (a point not recorded, or a step
    whose result is not): the body stops there without running anything. A pause, so
    that the other branches of a ``gather`` still reach their own points."""

    def __init__(self, point: str) -> None:
        # The reason is not read: a replay check commits nothing.
        super().__init__("sleep", None, step_name=point)


class CancelSignal(BaseException):
    """The workflow was cancelled; ``error`` names where it noticed."""

    def __init__(self, error: StepCancelledError) -> None:
        super().__init__(error)
        self.error = error


class StopSignal(BaseException):
    """The execution must stop here without writing: its lease may be lost, or the engine
    is closing. The instance stays as its last commit left it, for the next owner."""

    def __init__(self, error: ExecutionStopped) -> None:
        super().__init__(error)
        self.error = error


class DivergedSignal(BaseException):
    """The replay asked for another durable point than the history has at that place:
    the execution stops and the instance fails with ``error``, writing nothing else."""

    def __init__(self, error: NonDeterminismError) -> None:
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
    keys: Namespace
    """The instance's keys, alarm and inbox (errors raised)."""
    runtime: RuntimeAdapter
    state_machine: WorkflowStateMachine
    events: BoundEmitter
    lease: LeaseHold | None = None
    durable: bool = True
    name_counts: dict[str, int] = attrs.field(factory=dict)
    sleep_count: int = 0
    pending: dict[str, JsonValue] = attrs.field(factory=dict)
    """Writes that ride along with the next commit (sleep and wait records, metadata)."""
    consuming: set[int] = attrs.field(factory=set)
    """Inbox messages taken by waits, consumed by the commit that records those waits."""
    sends: list[Outgoing] = attrs.field(factory=list)
    """Messages to other instances (cancels of children) that the next commit appends."""
    children: ChildStarter | None = None
    """How this execution starts children (``None``: no engine, no children)."""
    child_names: dict[str, int] = attrs.field(factory=dict)
    patch_names: dict[str, int] = attrs.field(factory=dict)
    failures: dict[int, tuple[str, int]] = attrs.field(factory=dict)
    """id(exception) -> (step key, attempt), to tell the executor where an error came from."""
    completed: int | None = None
    """How many steps have completed (read once per segment, then counted here)."""
    completed_steps: list[str] | None = None
    """The completed step keys in order, known with ``completed`` (``None``: read them)."""
    sleep_names: dict[str, int] = attrs.field(factory=dict)
    wait_names: dict[str, int] = attrs.field(factory=dict)
    published: dict[str, int] = attrs.field(factory=dict)
    """How many times each key was published by ``set_event`` so far in this run."""
    cancels: list[InboxMessage] = attrs.field(factory=list)
    """The cancel messages this execution has seen in its inbox (consumed at its end)."""
    messages: list[InboxMessage] | None = None
    """The unconsumed messages as last read (``None``: not read in this segment)."""
    progressed: bool = False
    """Whether this segment has committed a durability point already."""
    position: int = 0
    """The place of the next durable point in the order the workflow calls them."""
    recorded: dict[int, str] | None = None
    """The history: which durable point each recorded position holds (read at the first
    durable point of the segment; ``point_of`` names them)."""
    inbox_read: asyncio.Future[None] | None = None
    """The inbox read in flight, which the branches of a ``gather`` share (``read_inbox``)."""

    def first_progress_after_recovery(self) -> bool:
        """Whether the commit about to be made is this recovered segment's first
        durability point: it then resets the recovery counter, which counts recoveries
        without progress (semantics.md section 7)."""
        first = self.mode == "recover" and not self.progressed
        self.progressed = True
        return first

    def take_position(self) -> int:
        """The position of the durable point being called (taken before it awaits
        anything, so that points started at once by ``gather`` follow its arguments)."""
        position = self.position
        self.position += 1
        return position

    async def history(self) -> dict[int, str]:
        """Which durable point each recorded position holds (read once per segment)."""
        if self.recorded is None:
            try:
                stored = await self.keys.list("")
            except DurablyError as e:
                raise InfrastructureFailure(e) from e
            self.recorded = recorded_points(stored)
        return self.recorded

    async def check_point(self, position: int, point: str) -> None:
        """Stop the execution (``DivergedSignal``) when the history holds another point
        than ``point`` at ``position``; a point beyond the history is new, not a
        divergence."""
        found = (await self.history()).get(position)
        if found is None and self.mode == "replay":
            raise HistoryEnded(point)
        if found is not None and found != point:
            error = NonDeterminismError(self.workflow_id, position, found, point)
            raise DivergedSignal(error)

    async def before_durable_point(
        self, key: str, position: int | None = None, point: str | None = None
    ) -> None:
        """Before a step, sleep or other durable point: stop if the lease may have
        expired (or the engine closes), stop as cancelled if a cancel arrived, and fail
        the instance if the point is not the one its history has at ``position``.

        The first two are known without a query: the lease from the monotonic clock, the
        inbox from the numbers that the last commits brought back (``has_news``).
        """
        lease = self.lease
        if lease is not None and not lease.usable():
            reason = (
                "the engine is closing"
                if lease.stopping
                else "its lease may have expired (a worker that was stalled or cut off)"
                if lease.held
                else "its lease is held by another worker"
            )
            raise StopSignal(ExecutionStopped(self.workflow_id, f"{reason}; {key!r} not started"))
        if not self.cancels and self.keys.has_news():
            await self.read_inbox()
        if self.cancels:
            raise CancelSignal(StepCancelledError(key))
        if position is not None:
            await self.check_point(position, key if point is None else point)

    async def read_inbox(self) -> None:
        """Read the messages not consumed yet and keep the cancels among them.

        Branches of a ``gather`` that ask at the same time share one read: a caller that
        finds a read in flight awaits it instead of starting another (1 000 children
        ending while their parent replays would otherwise be 1 000 reads of up to 1 000
        messages each). A read that started before the news this caller saw may have
        missed it: when news remains after it, the caller reads again.
        """
        joined = self.inbox_read
        if joined is not None:
            await asyncio.shield(joined)
            if not self.keys.has_news():
                return
            if self.inbox_read is not None and self.inbox_read is not joined:
                await asyncio.shield(self.inbox_read)  # another joiner started a newer one
                return
        reading = asyncio.ensure_future(self._read_inbox())
        self.inbox_read = reading
        reading.add_done_callback(self._inbox_read_done)
        await asyncio.shield(reading)

    def _inbox_read_done(self, reading: asyncio.Future[None]) -> None:
        if self.inbox_read is reading:
            self.inbox_read = None
        if not reading.cancelled():
            reading.exception()  # retrieved: a read whose callers all left raises nowhere

    async def _read_inbox(self) -> None:
        try:
            messages = await self.keys.pending()
        except DurablyError as e:
            raise InfrastructureFailure(e) from e
        self.messages = messages
        self.cancels = [m for m in messages if m.kind == CANCEL]

    async def take_message(
        self, kind: str, name: str, sent_by: int | None = None
    ) -> InboxMessage | None:
        """The oldest message ``kind``/``name`` not consumed (nor taken in this segment),
        if it was sent by ``sent_by`` (epoch ms; ``None``: whenever); it joins the
        messages that the next commit consumes."""
        if self.messages is None or self.keys.has_news():
            await self.read_inbox()
        assert self.messages is not None
        for message in self.messages:
            if message.kind != kind or message.name != name or message.seq in self.consuming:
                continue
            if sent_by is not None and message.sent_at > sent_by:
                return None  # the oldest came too late: later ones came later still
            self.consuming.add(message.seq)
            self.messages.remove(message)
            return message
        return None

    async def take_event(self, name: str, sent_by: int | None) -> InboxMessage | None:
        """``take_message`` of an event ``name``."""
        return await self.take_message(EVENT, name, sent_by)

    async def commit(self, writes: dict[str, JsonValue]) -> None:
        """Commit a durability point: ``writes`` with everything that waited for a commit
        (records of sleeps and waits, the messages those waits took), and the reset of
        the recovery counter when it is a recovered segment's first progress: one commit.

        This is the one path of a durability point to the store. When it fails, what
        waited stays waiting (the execution stops, or goes on without this point).
        """
        if self.mode == "replay":
            raise HistoryEnded(next(iter(writes), "commit"))  # a replay check writes nothing
        pending, consumed, sends = self.pending, self.consuming, self.sends
        self.pending, self.consuming, self.sends = {}, set(), []
        progress = self.first_progress_after_recovery()
        try:
            if not consumed and not progress and not sends:
                # The hot path: one batch outside a transaction is one commit by itself.
                await self.keys.put_batch({**pending, **writes})
            else:
                async with self.keys.transaction():
                    await self.keys.put_batch({**pending, **writes})
                    await self.keys.consume(consumed)
                    for message in sends:
                        await self.keys.send(message)
                    if progress:  # a committed step is progress: recoveries count anew
                        await self.keys.delete(RECOVERY_ATTEMPTS)
        except BaseException:
            self.pending = {**pending, **self.pending}
            self.consuming |= consumed
            self.sends = [*sends, *self.sends]
            self.progressed = self.progressed and not progress
            raise

    async def next_index(self) -> int:
        """The place of the next step to complete, taken by the caller (read once per
        segment, then counted here: steps that run at once get places of their own)."""
        if self.completed is None or self.completed_steps is None:
            completed, steps = await self.state_machine.completion_order()
            if self.completed is None or self.completed_steps is None:
                self.completed, self.completed_steps = completed, steps
        index = self.completed
        self.completed = index + 1
        return index

    def step_completed(self, key: str, index: int) -> None:
        """Count the step ``key``, committed at place ``index``."""
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
        return await self.state_machine.completed_steps()

    def next_sleep_key(self, name: str | None) -> str:
        """The key of this sleep: its name (``name#2`` when repeated), or ``sleep#n``."""
        if name is None:
            self.sleep_count += 1
            return f"sleep#{self.sleep_count}"
        count = self.sleep_names.get(name, 0) + 1
        self.sleep_names[name] = count
        return name if count == 1 else f"{name}#{count}"

    def next_child_key(self, workflow: str) -> str:
        """The key of this child of ``workflow``: its name, then ``name#2``..."""
        count = self.child_names.get(workflow, 0) + 1
        self.child_names[workflow] = count
        return workflow if count == 1 else f"{workflow}#{count}"

    def next_wait_key(self, name: str) -> str:
        """The key of this wait for event ``name``: ``name``, then ``name#2``..."""
        count = self.wait_names.get(name, 0) + 1
        self.wait_names[name] = count
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

    def take_sends(self) -> tuple[Outgoing, ...]:
        """The messages waiting for a commit to send them (and forget them)."""
        sends, self.sends = self.sends, []
        return tuple(sends)

    def take_consumed(self) -> tuple[int, ...]:
        """The inbox messages waiting for a commit to consume them (and forget them)."""
        consumed, self.consuming = self.consuming, set()
        return tuple(sorted(consumed))


_DURABLE: set[CodeType] = set()
"""The code of every coroutine function whose coroutine is one durable point."""

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def durable(fn: F) -> F:
    """Mark ``fn`` (an ``async def`` primitive) as one durable point: ``gather`` takes
    its coroutines, and refuses any other awaitable."""
    _DURABLE.add(fn.__code__)
    return fn


def is_durable(value: object) -> bool:
    """Whether ``value`` is the coroutine of a durable point (``durable``)."""
    return getattr(value, "cr_code", None) in _DURABLE


SCOPE: ContextVar[ExecutionScope | None] = ContextVar("durably_scope", default=None)
STEP: ContextVar[StepInfo | None] = ContextVar("durably_step", default=None)
BRANCH_CHILDREN: ContextVar[list[str] | None] = ContextVar("durably_branch_children", default=None)
"""In a branch of ``gather``: the children that branch started (cancelled if it must stop)."""


def current_scope() -> ExecutionScope | None:
    """The scope of the workflow running in this context, if any."""
    return SCOPE.get()


def current_step() -> StepInfo | None:
    """The step running in this context, if any."""
    return STEP.get()


def recorded_points(stored: dict[str, JsonValue]) -> dict[int, str]:
    """Which durable point each position of a history holds, from the instance's stored
    records (those that carry a position: the records written before positions were
    kept are simply not checked)."""
    points: dict[int, str] = {}
    for key, record in stored.items():
        point = point_of(key)
        if point is None or not isinstance(record, dict):
            continue
        position = record.get("position")
        if position is None and isinstance(record.get("meta"), dict):
            position = record["meta"].get("position")
        if isinstance(position, int):
            points[position] = point
    return points


def cancel_request(messages: list[InboxMessage]) -> tuple[str | None, tuple[int, ...]] | None:
    """The reason of the first cancel among ``messages`` and the numbers of every cancel
    (``None`` when none asks to cancel)."""
    cancels = [m for m in messages if m.kind == CANCEL]
    if not cancels:
        return None
    payload = cancels[0].payload
    reason = payload.get("reason") if isinstance(payload, dict) else None
    return (reason if isinstance(reason, str) else None), tuple(m.seq for m in cancels)


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
