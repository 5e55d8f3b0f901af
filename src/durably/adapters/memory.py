"""The in-memory backend: storage, alarms and a manual or system clock, all in one process.

Values are kept as JSON text, so a caller that mutates an object after ``put`` does
not change what is stored, and a value that the SQL backends would refuse is refused
here too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

import attrs
from returns.result import Failure, Result, Success

from durably.adapters.unit_of_work import UNCHANGED, UnitOfWork, active_unit, open_unit
from durably.domain.errors import SchedulerError, StorageError
from durably.domain.records import JsonValue
from durably.domain.serialization import dumps, loads

__all__ = [
    "MemoryBackend",
    "MemoryStorage",
    "MemoryScheduler",
    "MemoryRuntime",
    "ManualClock",
    "SystemClock",
    "Clock",
]


class Clock:
    """Anything with ``now() -> int`` (epoch ms)."""

    def now(self) -> int:  # pragma: no cover - interface
        """The current time in epoch milliseconds."""
        raise NotImplementedError


@attrs.define
class ManualClock(Clock):
    """A clock that moves only when told to (tests)."""

    time_ms: int = 0

    def now(self) -> int:
        """The clock's current time."""
        return self.time_ms


class SystemClock(Clock):
    """The machine's wall clock."""

    def now(self) -> int:
        """The current wall-clock time in epoch ms."""
        return time.time_ns() // 1_000_000


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


@attrs.define(eq=False)
class MemoryStorage:
    """``StorageAdapter`` over a ``MemoryBackend``."""

    backend: MemoryBackend
    instance_id: str

    @property
    def _owner(self) -> tuple[int, str]:
        return (id(self.backend), self.instance_id)

    def _keys(self) -> dict[str, str]:
        return self.backend.data.get(self.instance_id, {})

    def _read(self, key: str) -> str | None:
        unit = active_unit(self._owner)
        if unit is not None:
            if key in unit.writes:
                return unit.writes[key]
            if unit.cleared:
                return None
        return self._keys().get(key)

    def _write(self, key: str, text: str | None) -> None:
        unit = active_unit(self._owner)
        if unit is not None:
            unit.writes[key] = text
        else:
            single = UnitOfWork(self._owner, writes={key: text})
            self.backend.apply(self.instance_id, single)

    async def get(self, key: str) -> Result[JsonValue | None, StorageError]:
        """The value under ``key``, or ``None``."""
        text = self._read(key)
        return Success(None if text is None else loads(text))

    async def put(self, key: str, value: JsonValue) -> Result[None, StorageError]:
        """Store a copy of ``value``."""
        try:
            text = dumps(value)
        except (TypeError, ValueError) as e:
            return Failure(StorageError("put", key, e))
        self._write(key, text)
        return Success(None)

    async def put_batch(self, entries: Mapping[str, JsonValue]) -> Result[None, StorageError]:
        """Store every entry, or none when one cannot be stored."""
        texts: dict[str, str | None] = {}
        for key, value in entries.items():
            try:
                texts[key] = dumps(value)
            except (TypeError, ValueError) as e:
                return Failure(StorageError("put_batch", key, e))
        unit = active_unit(self._owner)
        if unit is not None:
            unit.writes.update(texts)
        else:
            self.backend.apply(self.instance_id, UnitOfWork(self._owner, writes=texts))
        return Success(None)

    async def delete(self, key: str) -> Result[bool, StorageError]:
        """Remove ``key``."""
        existed = self._read(key) is not None
        if existed:
            self._write(key, None)
        return Success(existed)

    async def delete_all(self) -> Result[None, StorageError]:
        """Remove every key of the instance."""
        unit = active_unit(self._owner)
        if unit is not None:
            unit.writes.clear()
            unit.cleared = True
        else:
            self.backend.apply(self.instance_id, UnitOfWork(self._owner, cleared=True))
        return Success(None)

    async def list(self, prefix: str) -> Result[dict[str, JsonValue], StorageError]:
        """Entries under ``prefix``, in key order."""
        unit = active_unit(self._owner)
        texts = {} if unit is not None and unit.cleared else dict(self._keys())
        if unit is not None:
            for key, text in unit.writes.items():
                if text is None:
                    texts.pop(key, None)
                else:
                    texts[key] = text
        return Success({k: loads(texts[k]) for k in sorted(texts) if k.startswith(prefix)})

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """An atomic unit of work over this instance (joined by its scheduler)."""
        return open_unit(self._owner, self._commit)

    async def _commit(self, unit: UnitOfWork) -> None:
        self.backend.apply(self.instance_id, unit)


@attrs.define(eq=False)
class MemoryScheduler:
    """``SchedulerAdapter`` over a ``MemoryBackend``."""

    backend: MemoryBackend
    instance_id: str

    @property
    def _owner(self) -> tuple[int, str]:
        return (id(self.backend), self.instance_id)

    def _set(self, at: int | None) -> None:
        unit = active_unit(self._owner)
        if unit is not None:
            unit.alarm = at
        else:
            self.backend.apply(self.instance_id, UnitOfWork(self._owner, alarm=at))

    async def schedule(self, at: int) -> Result[None, SchedulerError]:
        """Set the alarm."""
        if isinstance(at, bool) or not isinstance(at, int):
            return Failure(SchedulerError("schedule", TypeError(f"alarm time {at!r} is not int")))
        self._set(at)
        return Success(None)

    async def cancel(self) -> Result[None, SchedulerError]:
        """Clear the alarm."""
        self._set(None)
        return Success(None)

    async def get_scheduled(self) -> Result[int | None, SchedulerError]:
        """The alarm time, or ``None``."""
        unit = active_unit(self._owner)
        if unit is not None and unit.alarm is not UNCHANGED:
            return Success(unit.alarm)  # type: ignore[arg-type]
        return Success(self.backend.alarms.get(self.instance_id))


@attrs.frozen
class MemoryRuntime:
    """``RuntimeAdapter``: an instance id and a clock."""

    instance_id: str
    clock: Clock

    def now(self) -> int:
        """The clock's time."""
        return self.clock.now()
