"""Storage and scheduler over any backend that can read a key and commit a unit of work.

Each backend supplies three reads and one commit; the port semantics (copies as JSON
text, transactions that see their own writes, the alarm joining the storage's
transaction) are written once, here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager

from returns.result import Failure, Result, Success

from durably.adapters.unit_of_work import UNCHANGED, UnitOfWork, active_unit, open_unit
from durably.domain.errors import SchedulerError, StorageError
from durably.domain.records import JsonValue
from durably.domain.serialization import dumps, loads

__all__ = ["BufferedStorage", "BufferedScheduler"]


class BufferedStorage:
    """``StorageAdapter`` template: subclasses read committed state and commit units."""

    owner: object
    """Identifies the instance's unit of work (shared with its scheduler)."""

    async def _load(self, key: str) -> str | None:
        raise NotImplementedError

    async def _load_prefix(self, prefix: str) -> dict[str, str]:
        raise NotImplementedError

    async def _load_many(self, keys: Sequence[str]) -> dict[str, str]:
        found = {}
        for key in keys:
            text = await self._load(key)
            if text is not None:
                found[key] = text
        return found

    async def _commit(self, unit: UnitOfWork) -> None:
        raise NotImplementedError

    async def _read(self, key: str) -> str | None:
        unit = active_unit(self.owner)
        if unit is not None:
            if key in unit.writes:
                return unit.writes[key]
            if unit.cleared:
                return None
        return await self._load(key)

    async def _write(self, unit: UnitOfWork) -> Result[None, StorageError]:
        """Merge into the open unit of work, or commit alone."""
        current = active_unit(self.owner)
        if current is not None:
            if unit.cleared:
                current.writes.clear()
                current.cleared = True
            current.writes.update(unit.writes)
            return Success(None)
        try:
            await self._commit(unit)
        except StorageError as e:
            return Failure(e)
        return Success(None)

    async def get(self, key: str) -> Result[JsonValue | None, StorageError]:
        """The value under ``key``, or ``None``."""
        try:
            text = await self._read(key)
        except StorageError as e:
            return Failure(e)
        return Success(None if text is None else loads(text))

    async def get_many(self, keys: Sequence[str]) -> Result[dict[str, JsonValue], StorageError]:
        """The values under ``keys`` that exist (one read of the backend)."""
        unit = active_unit(self.owner)
        texts: dict[str, str | None] = {}
        wanted = list(keys)
        if unit is not None:
            wanted = []
            for key in keys:
                if key in unit.writes:
                    texts[key] = unit.writes[key]
                elif not unit.cleared:
                    wanted.append(key)
        try:
            if wanted:
                texts.update(await self._load_many(wanted))
        except StorageError as e:
            return Failure(e)
        return Success({k: loads(t) for k, t in texts.items() if t is not None})

    async def put(self, key: str, value: JsonValue) -> Result[None, StorageError]:
        """Store a copy of ``value``."""
        try:
            text = dumps(value)
        except (TypeError, ValueError) as e:
            return Failure(StorageError("put", key, e))
        return await self._write(UnitOfWork(self.owner, writes={key: text}))

    async def put_batch(self, entries: Mapping[str, JsonValue]) -> Result[None, StorageError]:
        """Store every entry, or none when one cannot be stored."""
        texts: dict[str, str | None] = {}
        for key, value in entries.items():
            try:
                texts[key] = dumps(value)
            except (TypeError, ValueError) as e:
                return Failure(StorageError("put_batch", key, e))
        if not texts:
            return Success(None)
        return await self._write(UnitOfWork(self.owner, writes=texts))

    async def delete(self, key: str) -> Result[bool, StorageError]:
        """Remove ``key``; ``True`` when it existed."""
        try:
            existed = await self._read(key) is not None
        except StorageError as e:
            return Failure(e)
        if not existed:
            return Success(False)
        written = await self._write(UnitOfWork(self.owner, writes={key: None}))
        return written.map(lambda _: True)

    async def delete_all(self) -> Result[None, StorageError]:
        """Remove every key of the instance."""
        return await self._write(UnitOfWork(self.owner, cleared=True))

    async def list(self, prefix: str) -> Result[dict[str, JsonValue], StorageError]:
        """Entries under ``prefix``, in key order (the open unit of work included)."""
        unit = active_unit(self.owner)
        try:
            texts = {} if unit is not None and unit.cleared else await self._load_prefix(prefix)
        except StorageError as e:
            return Failure(e)
        if unit is not None:
            for key, text in unit.writes.items():
                if not key.startswith(prefix):
                    continue
                if text is None:
                    texts.pop(key, None)
                else:
                    texts[key] = text
        return Success({k: loads(texts[k]) for k in sorted(texts)})

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """An atomic unit of work over this instance (joined by its scheduler)."""
        return open_unit(self.owner, self._commit)


class BufferedScheduler:
    """``SchedulerAdapter`` template: the alarm joins the storage's unit of work."""

    owner: object

    async def _load_alarm(self) -> int | None:
        raise NotImplementedError

    async def _commit(self, unit: UnitOfWork) -> None:
        raise NotImplementedError

    async def _set(self, operation: str, at: int | None) -> Result[None, SchedulerError]:
        unit = active_unit(self.owner)
        if unit is not None:
            unit.alarm = at
            return Success(None)
        try:
            await self._commit(UnitOfWork(self.owner, alarm=at))
        except StorageError as e:
            return Failure(SchedulerError(operation, e))
        return Success(None)

    async def schedule(self, at: int) -> Result[None, SchedulerError]:
        """Set the alarm to ``at`` (epoch ms)."""
        if isinstance(at, bool) or not isinstance(at, int):
            return Failure(SchedulerError("schedule", TypeError(f"alarm time {at!r} is not int")))
        return await self._set("schedule", at)

    async def cancel(self) -> Result[None, SchedulerError]:
        """Clear the alarm."""
        return await self._set("cancel", None)

    async def get_scheduled(self) -> Result[int | None, SchedulerError]:
        """The alarm time, or ``None``."""
        unit = active_unit(self.owner)
        if unit is not None and unit.alarm is not UNCHANGED:
            return Success(unit.alarm)  # type: ignore[arg-type]
        try:
            return Success(await self._load_alarm())
        except StorageError as e:
            return Failure(SchedulerError("get_scheduled", e))
