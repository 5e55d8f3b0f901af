"""Purge: deleting a finished instance's data after a delay, keeping a tombstone."""

from __future__ import annotations

import attrs

from durably.domain import keys
from durably.domain.errors import DurablyError
from durably.domain.events import WorkflowPurged
from durably.domain.records import Tombstone
from durably.domain.results import as_result, ok
from durably.domain.serialization import decode, encode
from durably.domain.status import WorkflowStatus, is_terminal
from durably.ports import RuntimeAdapter, SchedulerAdapter, StorageAdapter
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
    """Schedules and executes the purge of a terminal instance."""

    def __init__(
        self,
        storage: StorageAdapter,
        scheduler: SchedulerAdapter,
        runtime: RuntimeAdapter,
        config: PurgeConfig,
        events: EventEmitter,
    ) -> None:
        self._storage = storage
        self._scheduler = scheduler
        self._runtime = runtime
        self.config = config
        self._events = events

    @as_result(DurablyError)
    async def schedule_purge(self) -> int | None:
        """Store the purge time and set the alarm to it (joins the caller's transaction)."""
        if not self.config.enabled:
            return None
        at = self._runtime.now() + self.config.delay_ms
        async with self._storage.transaction():
            ok(await self._storage.put(keys.PURGE_AT, at))
            ok(await self._scheduler.schedule(at))
        return at

    @as_result(DurablyError)
    async def get_purge_at(self) -> int | None:
        """When the purge is due, if one is scheduled."""
        at = ok(await self._storage.get(keys.PURGE_AT))
        return None if at is None else int(at)

    @as_result(DurablyError)
    async def execute_purge_if_due(self) -> bool:
        """Purge now if due (keeping a tombstone); re-arm an early alarm. ``True`` if purged."""
        at = ok(await self.get_purge_at())
        if at is None:
            return False
        now = self._runtime.now()
        if now < at:
            ok(await self._scheduler.schedule(at))  # fix: an early alarm is re-armed, not lost
            return False
        return ok(await self.purge_now())

    @as_result(DurablyError)
    async def purge_now(self) -> bool:
        """Purge a terminal instance now, keeping its tombstone; ``False`` if not terminal."""
        now = self._runtime.now()
        async with self._storage.transaction():
            raw = ok(await self._storage.get(keys.STATUS))
            status: WorkflowStatus | None = (
                None if raw is None else decode(raw, WorkflowStatus, key=keys.STATUS)
            )
            if status is None or not is_terminal(status):
                ok(await self._storage.delete(keys.PURGE_AT))
                return False
            name = ok(await self._storage.get(keys.NAME))
            workflow_name = name if isinstance(name, str) else "unknown"
            execution_id = ok(await self._storage.get(keys.EXECUTION_ID))  # for the event
            tombstone = Tombstone(workflow_name=workflow_name, status=status, purged_at=now)
            ok(await self._storage.delete_all())
            ok(
                await self._storage.put_batch(
                    {
                        keys.STATUS: raw,
                        keys.NAME: workflow_name,
                        keys.TOMBSTONE: encode(tombstone, key=keys.TOMBSTONE),
                    }
                )
            )
            ok(await self._scheduler.cancel())
        self._events.emit(
            WorkflowPurged, workflow_name, execution_id if isinstance(execution_id, str) else None
        )
        return True

    @as_result(DurablyError)
    async def get_tombstone(self) -> Tombstone | None:
        """The tombstone of a purged instance, if it was purged."""
        raw = ok(await self._storage.get(keys.TOMBSTONE))
        tombstone: Tombstone | None = (
            None if raw is None else decode(raw, Tombstone, key=keys.TOMBSTONE)
        )
        return tombstone
