"""The workflow state machine: an instance's status, its transitions and its bookkeeping."""

from __future__ import annotations

from typing import Any

import attrs

from durably.domain import keys
from durably.domain.errors import DurablyError
from durably.domain.records import JsonValue
from durably.domain.results import as_result, ok
from durably.domain.serialization import decode, encode
from durably.domain.status import Paused, Pending, Queued, Running, WorkflowStatus, is_terminal
from durably.domain.transitions import Transition, apply_transition
from durably.ports import RuntimeAdapter, StorageAdapter

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
    """Reads and changes one instance's status; every change is one read-check-write commit."""

    def __init__(self, storage: StorageAdapter, runtime: RuntimeAdapter) -> None:
        self._storage = storage
        self._runtime = runtime
        self._last_status: tuple[JsonValue, WorkflowStatus] | None = None
        """The status last read or written, with its stored form: read again, not decoded."""

    async def _get(self, key: str, cls: Any = Any) -> Any:
        data = ok(await self._storage.get(key))
        return None if data is None else decode(data, cls, key=key)

    async def _put(self, key: str, value: object) -> None:
        ok(await self._storage.put(key, encode(value, key=key)))

    @as_result(DurablyError)
    async def initialize(
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
        ok(await self._storage.put_batch(entries))

    @as_result(DurablyError)
    async def get_status(self) -> WorkflowStatus | None:
        """The current status, or ``None`` when there is no workflow."""
        data = ok(await self._storage.get(keys.STATUS))
        if data is None:
            return None
        last = self._last_status
        if last is not None and last[0] == data:
            return last[1]  # statuses are immutable: the same stored form, the same status
        status: WorkflowStatus = decode(data, WorkflowStatus, key=keys.STATUS)
        self._last_status = (data, status)
        return status

    @as_result(DurablyError)
    async def get_state(self) -> WorkflowState | None:
        """The instance's whole state, or ``None`` when there is no workflow."""
        # One read of the few workflow keys, one of the completion markers.
        found = ok(
            await self._storage.get_many(
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
            completed_steps=ok(await self.get_completed_steps()),
            recovery_attempts=int(found.get(keys.RECOVERY_ATTEMPTS) or 0),
            cancelled=bool(found.get(keys.CANCELLED)),
            cancel_reason=found.get(keys.CANCEL_REASON),
        )

    @as_result(DurablyError)
    async def apply_transition(self, transition: Transition) -> WorkflowStatus:
        """Apply ``transition`` to the stored status (read, check, write in one commit)."""
        async with self._storage.transaction():
            current = ok(await self.get_status())
            new = ok(apply_transition(current, transition, self._runtime.now()))
            data = encode(new, key=keys.STATUS)
            ok(await self._storage.put(keys.STATUS, data))
        self._last_status = (data, new)
        return new

    @as_result(DurablyError)
    async def check_recoverability(self, stale_threshold_ms: int) -> RecoverabilityInfo:
        """Whether the instance needs (and allows) recovery, given a staleness threshold."""
        status = ok(await self.get_status())
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

    @as_result(DurablyError)
    async def mark_step_completed(self, step_name: str) -> None:
        """Record that ``step_name`` completed (idempotent, O(1))."""
        marker = keys.completed(step_name)
        async with self._storage.transaction():
            if ok(await self._storage.get(marker)) is not None:
                return
            count = await self._get(keys.COMPLETED_COUNT) or 0
            ok(await self._storage.put_batch({marker: count, keys.COMPLETED_COUNT: count + 1}))

    @as_result(DurablyError)
    async def get_completed_steps(self) -> tuple[str, ...]:
        """Completed step keys, in the order they first completed."""
        return tuple(name for _, name in await self._completions())

    @as_result(DurablyError)
    async def completion_order(self) -> tuple[int, list[str]]:
        """The place of the next step to complete, and the completed step keys in order."""
        count = int(await self._get(keys.COMPLETED_COUNT) or 0)
        completions = await self._completions()
        after = max(count, completions[-1][0] + 1) if completions else count
        return after, [name for _, name in completions]

    async def _completions(self) -> list[tuple[int, str]]:
        """``(place, step key)`` of every completed step, in completion order.

        A step's result carries its place (``meta.index``); ``mark_step_completed``
        records a marker with its own (and older databases have markers only).
        """
        places: dict[str, int] = {}
        start = len(keys.COMPLETED_PREFIX)
        for key, index in ok(await self._storage.list(keys.COMPLETED_PREFIX)).items():
            places[keys.unescape(key[start:])] = int(index)
        for key, record in ok(await self._storage.list(keys.STEP_PREFIX)).items():
            index = _result_index(key, record)
            if index is not None:
                name = keys.unescape(key[len(keys.STEP_PREFIX) : -len(_RESULT)])
                places[name] = min(index, places.get(name, index))
        return sorted((index, name) for name, index in places.items())

    @as_result(DurablyError)
    async def get_recovery_attempts(self) -> int:
        """How many recoveries ran since the last execution segment ended."""
        return int(await self._get(keys.RECOVERY_ATTEMPTS) or 0)

    @as_result(DurablyError)
    async def increment_recovery_attempts(self) -> int:
        """Count one more recovery; returns the new count."""
        async with self._storage.transaction():
            attempts = int(await self._get(keys.RECOVERY_ATTEMPTS) or 0) + 1
            ok(
                await self._storage.put_batch(
                    {keys.RECOVERY_ATTEMPTS: attempts, keys.LAST_RECOVERY_AT: self._runtime.now()}
                )
            )
        return attempts

    @as_result(DurablyError)
    async def reset_recovery_attempts(self) -> None:
        """Forget past recoveries (an execution segment ended)."""
        ok(await self._storage.delete(keys.RECOVERY_ATTEMPTS))

    @as_result(DurablyError)
    async def get_last_recovery_at(self) -> int | None:
        """When the last recovery was counted."""
        value: int | None = await self._get(keys.LAST_RECOVERY_AT)
        return value

    @as_result(DurablyError)
    async def set_cancelled(self, reason: str | None = None) -> None:
        """Raise the cancel flag, with the user's reason."""
        ok(await self._storage.put_batch({keys.CANCELLED: True, keys.CANCEL_REASON: reason}))

    @as_result(DurablyError)
    async def is_cancelled(self) -> bool:
        """Whether a cancel was requested."""
        return bool(await self._get(keys.CANCELLED))

    @as_result(DurablyError)
    async def get_cancel_reason(self) -> str | None:
        """The user's cancel reason, if any."""
        reason: str | None = await self._get(keys.CANCEL_REASON)
        return reason

    @as_result(DurablyError)
    async def set_pending_resume_at(self, at: int) -> None:
        """Remember when a pause ends."""
        ok(await self._storage.put(keys.PENDING_RESUME_AT, at))

    @as_result(DurablyError)
    async def get_pending_resume_at(self) -> int | None:
        """When the current pause ends, if any."""
        value: int | None = await self._get(keys.PENDING_RESUME_AT)
        return value

    @as_result(DurablyError)
    async def clear_pending_resume_at(self) -> None:
        """Forget the pause's end."""
        ok(await self._storage.delete(keys.PENDING_RESUME_AT))
