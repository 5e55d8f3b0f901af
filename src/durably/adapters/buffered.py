"""Storage and scheduler over any backend that can read a key and commit a unit of work.

Each backend supplies three reads and one commit; the port semantics (copies as JSON
text, transactions that see their own writes, the alarm joining the storage's
transaction) are written once, here.

A storage that holds the instance's lease (``caching``) reads the instance's keys once
and then answers from what it read and what it committed since: while the lease is
held, nobody else can commit to the instance (every commit is fenced), except for the
``VOLATILE_KEYS`` that a cancel from another process may write. Those are read from
the backend again once what was last read or committed of them is ``FRESH_S`` old
(each fenced commit reads them in its own transaction); docs/decisions.md, "Reads
while holding the lease".
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Final, TypeAlias

from returns.result import Failure, Result, Success

from durably.adapters.unit_of_work import UNCHANGED, UnitOfWork, active_unit, open_unit
from durably.domain import keys as stored_keys
from durably.domain.errors import SchedulerError, StorageError
from durably.domain.records import JsonValue
from durably.domain.serialization import dumps, loads

__all__ = ["BufferedStorage", "BufferedScheduler", "Observed", "VOLATILE_KEYS", "FRESH_S"]

Observed: TypeAlias = Mapping[str, str | None]
"""Volatile keys a commit read inside its own transaction (JSON text, ``None``: absent)."""

VOLATILE_KEYS: Final = frozenset(
    {stored_keys.STATUS, stored_keys.CANCELLED, stored_keys.CANCEL_REASON}
)
"""Keys a process without the lease may write (a cancel): never answered from the cache."""

FRESH_S: Final = 0.1
"""How long a volatile key's last read (or commit) stands in for reading it again (s)."""


@functools.lru_cache(maxsize=64)
def _covers_volatile(prefix: str) -> bool:
    """Whether a listing of ``prefix`` includes keys that are never cached."""
    return any(key.startswith(prefix) for key in VOLATILE_KEYS)


class BufferedStorage:
    """``StorageAdapter`` template: subclasses read committed state and commit units."""

    owner: object
    """Identifies the instance's unit of work (shared with its scheduler)."""

    caching: bool = False
    """Whether reads may be answered from what this storage read and committed before."""

    _cache: dict[str, str] | None = None
    _volatile: dict[str, tuple[str | None, float]] | None = None

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

    async def _commit(self, unit: UnitOfWork) -> Observed | None:
        raise NotImplementedError

    async def commit_unit(self, unit: UnitOfWork) -> None:
        """Commit ``unit`` through the backend, and keep the cache in step with it."""
        try:
            observed = await self._commit(unit)
        except BaseException:
            # Whether it landed is not known everywhere (a lost connection): read again.
            self._cache = None
            self._volatile = None
            raise
        cache = self._cache
        if cache is None and self.caching and stored_keys.NAME in unit.writes and not unit.cleared:
            # The backends commit the name only when they create the instance (and refuse
            # it when it exists): nothing else is stored under it yet.
            cache = self._cache = {}
        if cache is not None:
            if unit.cleared:
                cache.clear()
            for key, text in unit.writes.items():
                if text is None:
                    cache.pop(key, None)
                elif key not in VOLATILE_KEYS:
                    cache[key] = text
        if not self.caching:
            return
        # The volatile keys as they stand once this unit landed: what it wrote, else what
        # its transaction read of them (a fenced commit reads them), else unknown.
        volatile = self._volatile
        if volatile is None:
            volatile = self._volatile = {}
        now = time.monotonic()
        for key in VOLATILE_KEYS:
            if key in unit.writes:
                volatile[key] = (unit.writes[key], now)
            elif observed is not None and key in observed:
                volatile[key] = (None if unit.cleared else observed[key], now)
            elif unit.cleared:
                volatile[key] = (None, now)
            else:
                volatile.pop(key, None)

    def _fresh(self, key: str) -> tuple[bool, str | None]:
        """Whether ``key`` was read or committed less than ``FRESH_S`` ago, and its text."""
        entry = None if self._volatile is None else self._volatile.get(key)
        if entry is not None and time.monotonic() - entry[1] < FRESH_S:
            return True, entry[0]
        return False, None

    def _saw(self, wanted: Sequence[str], found: Mapping[str, str]) -> None:
        """Remember what a read of volatile keys ``wanted`` found."""
        volatile = self._volatile
        if volatile is None:
            volatile = self._volatile = {}
        now = time.monotonic()
        for key in wanted:
            volatile[key] = (found.get(key), now)

    async def _committed(self, key: str) -> str | None:
        """The committed text of ``key`` (from the cache when the storage may cache it)."""
        if not self.caching:
            return await self._load(key)
        return (await self._committed_many((key,))).get(key)

    async def _committed_many(self, wanted: Sequence[str]) -> dict[str, str]:
        if not self.caching:
            return await self._load_many(wanted)
        found: dict[str, str] = {}
        direct: list[str] = []
        cache = self._cache
        for key in wanted:
            if key in VOLATILE_KEYS:
                known, text = self._fresh(key)
                if not known:
                    direct.append(key)
                elif text is not None:
                    found[key] = text
                continue
            if cache is None:
                cache = await self._fill()
            text = cache.get(key)
            if text is not None:
                found[key] = text
        if len(direct) == 1:  # a point read is the cheaper query
            text = await self._load(direct[0])
            loaded = {} if text is None else {direct[0]: text}
        else:
            loaded = await self._load_many(direct) if direct else {}
        if direct:
            self._saw(direct, loaded)
            found.update(loaded)
        return found

    async def _committed_prefix(self, prefix: str) -> dict[str, str]:
        if not self.caching or _covers_volatile(prefix):
            return await self._load_prefix(prefix)
        cache = self._cache
        if cache is None:
            cache = await self._fill()
        return {k: v for k, v in cache.items() if k.startswith(prefix)}

    async def _fill(self) -> dict[str, str]:
        """Read every key of the instance once (the volatile ones are never kept)."""
        everything = await self._load_prefix("")
        cache = {k: v for k, v in everything.items() if k not in VOLATILE_KEYS}
        self._cache = cache
        return cache

    async def _read(self, key: str) -> str | None:
        unit = active_unit(self.owner)
        if unit is not None:
            if key in unit.writes:
                return unit.writes[key]
            if unit.cleared:
                return None
        return await self._committed(key)

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
            await self.commit_unit(unit)
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
                texts.update(await self._committed_many(wanted))
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
            texts = (
                {} if unit is not None and unit.cleared else await self._committed_prefix(prefix)
            )
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
        return open_unit(self.owner, self.commit_unit)


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
