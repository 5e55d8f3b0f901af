"""Purge: deleting a finished instance's data after a delay, keeping a tombstone."""

from __future__ import annotations

import attrs

from durably.domain import keys
from durably.domain.events import WorkflowPurged
from durably.domain.records import Tombstone
from durably.domain.results import operation
from durably.domain.serialization import decode, encode
from durably.domain.status import WorkflowStatus, is_terminal
from durably.ports import RuntimeAdapter, SchedulerAdapter, StorageAdapter
from durably.services.namespace import Namespace
from durably.services.trackers import EventEmitter

__all__ = ["PurgeConfig", "PurgeManager"]


def _non_negative(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative int of ms, got {value!r}")


@attrs.frozen
class PurgeConfig:
    """Whether finished instances are purged, and how long after they finish."""

    enabled: bool = False
    delay_ms: int = attrs.field(default=60_000, validator=_non_negative)


class PurgeManager:
    """Schedules and executes the purge of a terminal instance (methods raise; the
    original's operations, at the end of the class, return a ``Result``)."""

    def __init__(
        self,
        storage: StorageAdapter,
        scheduler: SchedulerAdapter,
        runtime: RuntimeAdapter,
        config: PurgeConfig,
        events: EventEmitter,
    ) -> None:
        self._keys = Namespace(storage, scheduler)
        self._runtime = runtime
        self.config = config
        self._events = events

    async def schedule(self) -> int | None:
        """Store the purge time and set the alarm to it (joins the caller's transaction)."""
        if not self.config.enabled:
            return None
        at = self._runtime.now() + self.config.delay_ms
        async with self._keys.transaction():
            await self._keys.put(keys.PURGE_AT, at)
            await self._keys.schedule(at)
        return at

    async def purge_at(self) -> int | None:
        """When the purge is due, if one is scheduled."""
        at = await self._keys.get(keys.PURGE_AT)
        return None if at is None else int(at)

    async def purge_if_due(self) -> bool:
        """Purge now if due (keeping a tombstone); re-arm an early alarm. ``True`` if purged."""
        at = await self.purge_at()
        if at is None:
            return False
        now = self._runtime.now()
        if now < at:
            await self._keys.schedule(at)  # fix: an early alarm is re-armed, not lost
            return False
        return await self.purge()

    async def purge(self) -> bool:
        """Purge a terminal instance now, keeping its tombstone; ``False`` if not terminal."""
        now = self._runtime.now()
        async with self._keys.transaction():
            raw = await self._keys.get(keys.STATUS)
            status: WorkflowStatus | None = (
                None if raw is None else decode(raw, WorkflowStatus, key=keys.STATUS)
            )
            if status is None or not is_terminal(status):
                await self._keys.delete(keys.PURGE_AT)
                return False
            name = await self._keys.get(keys.NAME)
            workflow_name = name if isinstance(name, str) else "unknown"
            execution_id = await self._keys.get(keys.EXECUTION_ID)  # for the event
            tombstone = Tombstone(workflow_name=workflow_name, status=status, purged_at=now)
            await self._keys.delete_all()
            await self._keys.put_batch(
                {
                    keys.STATUS: raw,
                    keys.NAME: workflow_name,
                    keys.TOMBSTONE: encode(tombstone, key=keys.TOMBSTONE),
                }
            )
            await self._keys.clear_alarm()
        self._events.emit(
            WorkflowPurged, workflow_name, execution_id if isinstance(execution_id, str) else None
        )
        return True

    async def tombstone(self) -> Tombstone | None:
        """The tombstone of a purged instance, if it was purged."""
        raw = await self._keys.get(keys.TOMBSTONE)
        found: Tombstone | None = (
            None if raw is None else decode(raw, Tombstone, key=keys.TOMBSTONE)
        )
        return found

    # The original's operations, each answering a ``Result``.
    schedule_purge = operation(schedule)
    get_purge_at = operation(purge_at)
    execute_purge_if_due = operation(purge_if_due)
    purge_now = operation(purge)
    get_tombstone = operation(tombstone)
