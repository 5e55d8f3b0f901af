"""The in-memory backend: storage, alarms and a manual or system clock, all in one process.

Values are kept as JSON text, so a caller that mutates an object after ``put`` does
not change what is stored, and a value that the SQL backends would refuse is refused
here too.
"""

from __future__ import annotations

import attrs

from durably.adapters.buffered import BufferedScheduler, BufferedStorage
from durably.adapters.clock import Clock, ClockRuntime, ManualClock, SystemClock
from durably.adapters.unit_of_work import UNCHANGED, UnitOfWork

__all__ = [
    "MemoryBackend",
    "MemoryStorage",
    "MemoryScheduler",
    "MemoryRuntime",
    "ManualClock",
    "SystemClock",
    "Clock",
]


@attrs.define
class MemoryBackend:
    """Every instance's keys and alarm, in dicts."""

    data: dict[str, dict[str, str]] = attrs.field(factory=dict)
    alarms: dict[str, int] = attrs.field(factory=dict)
    commits: int = 0

    def apply(self, instance_id: str, unit: UnitOfWork) -> None:
        """Apply a unit of work (atomically: nothing here can fail half-way)."""
        if unit.is_empty():
            return
        keys = self.data.setdefault(instance_id, {})
        if unit.cleared:
            keys.clear()
        for key, text in unit.writes.items():
            if text is None:
                keys.pop(key, None)
            else:
                keys[key] = text
        if not keys:
            self.data.pop(instance_id, None)
        if unit.alarm is None:
            self.alarms.pop(instance_id, None)
        elif unit.alarm is not UNCHANGED:
            self.alarms[instance_id] = unit.alarm  # type: ignore[assignment]
        self.commits += 1


class MemoryStorage(BufferedStorage):
    """``StorageAdapter`` over a ``MemoryBackend``."""

    def __init__(self, backend: MemoryBackend, instance_id: str) -> None:
        self.backend = backend
        self.instance_id = instance_id
        self.owner = (id(backend), instance_id)

    async def _load(self, key: str) -> str | None:
        return self.backend.data.get(self.instance_id, {}).get(key)

    async def _load_prefix(self, prefix: str) -> dict[str, str]:
        keys = self.backend.data.get(self.instance_id, {})
        return {k: v for k, v in keys.items() if k.startswith(prefix)}

    async def _commit(self, unit: UnitOfWork) -> None:
        self.backend.apply(self.instance_id, unit)


class MemoryScheduler(BufferedScheduler):
    """``SchedulerAdapter`` over a ``MemoryBackend``."""

    def __init__(self, backend: MemoryBackend, instance_id: str) -> None:
        self.backend = backend
        self.instance_id = instance_id
        self.owner = (id(backend), instance_id)

    async def _load_alarm(self) -> int | None:
        return self.backend.alarms.get(self.instance_id)

    async def _commit(self, unit: UnitOfWork) -> None:
        self.backend.apply(self.instance_id, unit)


MemoryRuntime = ClockRuntime
"""The in-memory runtime adapter is the shared one: an instance id and a clock."""
