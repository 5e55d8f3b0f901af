"""The workflow state machine: an instance's status, its transitions and its bookkeeping."""

from __future__ import annotations

from typing import Any

import attrs

from durably.domain import keys
from durably.domain.inbox import CANCEL, CHILD, Outgoing, child_dedupe_key
from durably.domain.records import ChildRecord, JsonValue, ParentLink
from durably.domain.results import operation
from durably.domain.serialization import decode, dumps, encode
from durably.domain.status import (
    Cancelled,
    Completed,
    Failed,
    Paused,
    Pending,
    Queued,
    Running,
    WorkflowStatus,
    is_terminal,
)
from durably.domain.transitions import Transition, next_status
from durably.ports import InboxAdapter, RuntimeAdapter, StorageAdapter
from durably.services.namespace import Namespace

__all__ = ["WorkflowState", "RecoverabilityInfo", "WorkflowStateMachine"]

_RESULT = ":result"


def _result_index(key: str, record: JsonValue) -> int | None:
    """The completion place a stored step result carries (``None``: not a result, or none)."""
    if not key.endswith(_RESULT) or not isinstance(record, dict):
        return None
    meta = record.get("meta")
    index = meta.get("index") if isinstance(meta, dict) else None
    return index if isinstance(index, int) else None


@attrs.frozen
class WorkflowState:
    """Everything the engine keeps about an instance besides its steps' results."""

    status: WorkflowStatus
    workflow_name: str
    input: JsonValue
    execution_id: str | None
    completed_steps: tuple[str, ...]
    recovery_attempts: int
    cancelled: bool
    cancel_reason: str | None


@attrs.frozen
class RecoverabilityInfo:
    """Whether an instance can be recovered now, and why (not)."""

    can_recover: bool
    reason: str
    stale_duration_ms: int | None = None
    current_status: str | None = None


class WorkflowStateMachine:
    """Reads and changes one instance's status; every change is one read-check-write commit.

    Its methods raise (the other services call them so); the original's operations
    (``get_status``, ``apply_transition``, ...) return a ``Result``, each built once, at
    the end of the class.
    """

    def __init__(
        self, storage: StorageAdapter, runtime: RuntimeAdapter, inbox: InboxAdapter | None = None
    ) -> None:
        self._keys = Namespace(storage, inbox=inbox)
        self._inbox = inbox
        self._runtime = runtime
        self._last_status: tuple[JsonValue, WorkflowStatus] | None = None
        """The status last read or written, with its stored form: read again, not decoded."""

    async def _get(self, key: str, cls: Any = Any) -> Any:
        data = await self._keys.get(key)
        return None if data is None else decode(data, cls, key=key)

    async def create(
        self, workflow_name: str, input: object, execution_id: str | None = None
    ) -> None:
        """Record a new instance (name, input, execution id) in status ``Pending``."""
        entries = {
            keys.NAME: workflow_name,
            keys.INPUT: encode(input, key=keys.INPUT),
            keys.STATUS: encode(Pending(), key=keys.STATUS),
        }
        if execution_id is not None:
            entries[keys.EXECUTION_ID] = execution_id
        await self._keys.put_batch(entries)

    async def status(self) -> WorkflowStatus | None:
        """The current status, or ``None`` when there is no workflow."""
        data = await self._keys.get(keys.STATUS)
        if data is None:
            return None
        last = self._last_status
        if last is not None and last[0] == data:
            return last[1]  # statuses are immutable: the same stored form, the same status
        status: WorkflowStatus = decode(data, WorkflowStatus, key=keys.STATUS)
        self._last_status = (data, status)
        return status

    async def state(self) -> WorkflowState | None:
        """The instance's whole state, or ``None`` when there is no workflow."""
        # One read of the few workflow keys, one of the completion markers.
        found = await self._keys.get_many(
            (
                keys.STATUS,
                keys.NAME,
                keys.INPUT,
                keys.EXECUTION_ID,
                keys.RECOVERY_ATTEMPTS,
                keys.CANCELLED,
                keys.CANCEL_REASON,
            )
        )
        raw_status = found.get(keys.STATUS)
        if raw_status is None:
            return None
        status: WorkflowStatus = decode(raw_status, WorkflowStatus, key=keys.STATUS)
        name = found.get(keys.NAME)
        return WorkflowState(
            status=status,
            workflow_name=name if isinstance(name, str) else "unknown",
            input=found.get(keys.INPUT),
            execution_id=found.get(keys.EXECUTION_ID),
            completed_steps=await self.completed_steps(),
            recovery_attempts=int(found.get(keys.RECOVERY_ATTEMPTS) or 0),
            cancelled=bool(found.get(keys.CANCELLED)),
            cancel_reason=found.get(keys.CANCEL_REASON),
        )

    async def transition(self, transition: Transition) -> WorkflowStatus:
        """Apply ``transition`` to the stored status (read, check, write in one commit).

        A final status is announced in the same commit: to the parent of a child (its
        outcome, which makes a waiting parent due), and, for ``Cancelled``, to the
        children that have not ended (a cancel, reason ``"parent cancelled"``).
        """
        async with self._keys.transaction():
            current = await self.status()
            new = next_status(current, transition, self._runtime.now())
            data = encode(new, key=keys.STATUS)
            await self._keys.put(keys.STATUS, data)
            if is_terminal(new) and self._inbox is not None:
                await self._announce(new)
        self._last_status = (data, new)
        return new

    async def _announce(self, status: WorkflowStatus) -> None:
        link = await self._get(keys.PARENT, ParentLink)
        me = self._runtime.instance_id
        if link is not None:
            outcome: dict[str, JsonValue] = {"status": status.tag}
            if isinstance(status, Completed):
                outcome["output"] = await self._keys.get(keys.OUTPUT)
            elif isinstance(status, Failed):
                outcome["error"] = encode(status.error)
            elif isinstance(status, Cancelled):
                outcome["reason"] = status.reason
            await self._keys.send(
                Outgoing(link.id, CHILD, me, dumps(outcome), dedupe_key=child_dedupe_key(me))
            )
        if isinstance(status, Cancelled):
            for child in await self.children():
                if child.outcome is None:  # an ended child ignores it anyway
                    reason = dumps({"reason": "parent cancelled"})
                    await self._keys.send(Outgoing(child.child_id, CANCEL, payload=reason))

    async def children(self) -> list[ChildRecord]:
        """The children this instance started, in the order of their keys."""
        found = await self._keys.list(keys.CHILD_PREFIX)
        return [decode(data, ChildRecord, key=key) for key, data in found.items()]

    async def recoverability(self, stale_threshold_ms: int) -> RecoverabilityInfo:
        """Whether the instance needs (and allows) recovery, given a staleness threshold."""
        status = await self.status()
        now = self._runtime.now()
        match status:
            case None:
                return RecoverabilityInfo(False, "no_workflow")
            case Running(running_at=running_at):
                stale = max(0, now - running_at)
                if stale >= stale_threshold_ms:
                    return RecoverabilityInfo(True, "stale_running", stale, "Running")
                return RecoverabilityInfo(False, "running_not_stale", stale, "Running")
            case Paused():
                return RecoverabilityInfo(True, "paused", None, "Paused")
            case Queued():
                return RecoverabilityInfo(True, "queued", None, "Queued")
            case _ if is_terminal(status):
                return RecoverabilityInfo(False, "terminal", None, status.tag)
            case _:
                return RecoverabilityInfo(False, "not_started", None, status.tag)

    async def mark_completed(self, step_name: str) -> None:
        """Record that ``step_name`` completed (idempotent, O(1))."""
        marker = keys.completed(step_name)
        async with self._keys.transaction():
            if await self._keys.get(marker) is not None:
                return
            count = await self._get(keys.COMPLETED_COUNT) or 0
            await self._keys.put_batch({marker: count, keys.COMPLETED_COUNT: count + 1})

    async def completed_steps(self) -> tuple[str, ...]:
        """Completed step keys, in the order they first completed."""
        return tuple(name for _, name in await self._completions())

    async def completion_order(self) -> tuple[int, list[str]]:
        """The place of the next step to complete, and the completed step keys in order."""
        count = int(await self._get(keys.COMPLETED_COUNT) or 0)
        completions = await self._completions()
        after = max(count, completions[-1][0] + 1) if completions else count
        return after, [name for _, name in completions]

    async def _completions(self) -> list[tuple[int, str]]:
        """``(place, step key)`` of every completed step, in completion order.

        A step's result carries its place (``meta.index``); ``mark_completed`` records a
        marker with its own (and older databases have markers only).
        """
        places: dict[str, int] = {}
        start = len(keys.COMPLETED_PREFIX)
        for key, index in (await self._keys.list(keys.COMPLETED_PREFIX)).items():
            places[keys.unescape(key[start:])] = int(index)
        for key, record in (await self._keys.list(keys.STEP_PREFIX)).items():
            index = _result_index(key, record)
            if index is not None:
                name = keys.unescape(key[len(keys.STEP_PREFIX) : -len(_RESULT)])
                places[name] = min(index, places.get(name, index))
        return sorted((index, name) for name, index in places.items())

    async def recovery_attempts(self) -> int:
        """How many recoveries ran without progress since the last durability point."""
        return int(await self._get(keys.RECOVERY_ATTEMPTS) or 0)

    async def count_recovery(self) -> int:
        """Count one more recovery; returns the new count."""
        async with self._keys.transaction():
            attempts = int(await self._get(keys.RECOVERY_ATTEMPTS) or 0) + 1
            await self._keys.put_batch(
                {keys.RECOVERY_ATTEMPTS: attempts, keys.LAST_RECOVERY_AT: self._runtime.now()}
            )
        return attempts

    async def forget_recoveries(self) -> None:
        """Forget past recoveries (a durability point was reached)."""
        await self._keys.delete(keys.RECOVERY_ATTEMPTS)

    async def last_recovery_at(self) -> int | None:
        """When the last recovery was counted."""
        value: int | None = await self._get(keys.LAST_RECOVERY_AT)
        return value

    async def record_cancel(self, reason: str | None = None) -> None:
        """Record that the instance was cancelled, with the user's reason."""
        await self._keys.put_batch({keys.CANCELLED: True, keys.CANCEL_REASON: reason})

    async def cancelled(self) -> bool:
        """Whether a cancel was recorded."""
        return bool(await self._get(keys.CANCELLED))

    async def cancel_reason(self) -> str | None:
        """The user's cancel reason, if any."""
        reason: str | None = await self._get(keys.CANCEL_REASON)
        return reason

    async def remember_resume_at(self, at: int) -> None:
        """Remember when a pause ends."""
        await self._keys.put(keys.PENDING_RESUME_AT, at)

    async def resume_at(self) -> int | None:
        """When the current pause ends, if any."""
        value: int | None = await self._get(keys.PENDING_RESUME_AT)
        return value

    async def forget_resume_at(self) -> None:
        """Forget the pause's end."""
        await self._keys.delete(keys.PENDING_RESUME_AT)

    # The original's operations, each answering a ``Result``.
    initialize = operation(create)
    get_status = operation(status)
    get_state = operation(state)
    apply_transition = operation(transition)
    check_recoverability = operation(recoverability)
    mark_step_completed = operation(mark_completed)
    get_completed_steps = operation(completed_steps)
    get_recovery_attempts = operation(recovery_attempts)
    increment_recovery_attempts = operation(count_recovery)
    reset_recovery_attempts = operation(forget_recoveries)
    get_last_recovery_at = operation(last_recovery_at)
    set_cancelled = operation(record_cancel)
    is_cancelled = operation(cancelled)
    get_cancel_reason = operation(cancel_reason)
    set_pending_resume_at = operation(remember_resume_at)
    get_pending_resume_at = operation(resume_at)
    clear_pending_resume_at = operation(forget_resume_at)
