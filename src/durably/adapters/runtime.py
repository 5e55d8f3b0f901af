"""One instance's storage, scheduler and inbox, over any ``InstanceStore``: written once.

The port semantics live here: values are copies kept as JSON text; a transaction sees
its own writes; the alarm and the consumed inbox messages join the storage's unit of
work; a commit is a ``CommitPlan`` (``plan.py``) that the backend executes.

A storage that holds the instance's lease caches: it reads the instance's keys once and
then answers from what it read and what it committed since. Only the lease holder ever
writes an instance's keys (everything from outside goes to the inbox), so the cache is
exact for as long as the lease is held, and a commit made after the lease was lost is
refused anyway. Each commit reports the number of the instance's last inbox message:
when it is beyond what the holder last read, ``has_news`` says so, without a query.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager

from returns.result import Failure, Result, Success

from durably.adapters.clock import ClockRuntime
from durably.adapters.plan import Create, Fenced, plan_commit
from durably.adapters.store import InstanceStore
from durably.adapters.unit_of_work import (
    CLEAR_ALARM,
    KeepAlarm,
    SetAlarm,
    UnitOfWork,
    active_unit,
    open_unit,
)
from durably.domain.errors import LeaseLost, SchedulerError, StorageError
from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing
from durably.domain.lease import LeaseHold
from durably.domain.records import JsonValue
from durably.domain.serialization import dumps, loads
from durably.ports import InstanceRuntime

__all__ = ["StoreStorage", "StoreScheduler", "StoreInbox", "instance_runtime"]


class StoreStorage:
    """``StorageAdapter`` of one instance over an ``InstanceStore``; fenced by ``lease``."""

    def __init__(self, store: InstanceStore, instance_id: str, lease: LeaseHold | None) -> None:
        self.store = store
        self.instance_id = instance_id
        self.lease = lease
        self.owner = (id(store), instance_id)
        """Identifies the instance's unit of work (shared with its scheduler and inbox)."""
        self._cache: dict[str, str] | None = None
        self.inbox_seq: int | None = None
        """The number of the last inbox message, as the last commit saw it."""
        self.inbox_read = 0
        """The number of the last inbox message when the inbox was last read."""

    # -- commits --------------------------------------------------------------------------

    async def commit_unit(self, unit: UnitOfWork) -> None:
        """Commit ``unit`` as a plan, and keep the cache and the lease hold in step."""
        lease = self.lease
        store = self.store
        plan = plan_commit(
            self.instance_id,
            unit,
            None if lease is None else lease.owner,
            0 if lease is None else lease.duration_ms,
            store.clock.now(),
            self.inbox_read,
        )
        started = time.monotonic()
        try:
            outcome = await store.commit(plan)
        except BaseException as e:
            # Whether it landed is not known everywhere (a lost connection): read again.
            self._cache = None
            if lease is not None and isinstance(e, StorageError) and isinstance(e.cause, LeaseLost):
                lease.given_back()
            raise
        self.inbox_seq = outcome.inbox_seq
        write = plan.write
        if lease is not None:
            if isinstance(write, Fenced):
                if write.release:
                    lease.given_back()
                elif plan.renews or store.commits_renew_lease:
                    lease.extended(started)
            elif isinstance(write, Create) and write.lease_owner is not None:
                lease.taken()
                lease.extended(started)
        if lease is None:
            return
        cache = self._cache
        if cache is None and isinstance(write, Create):
            cache = self._cache = {}  # a new instance: nothing else is stored under it
        if cache is not None:
            if unit.cleared:
                cache.clear()
            for key, text in unit.writes.items():
                if text is None:
                    cache.pop(key, None)
                else:
                    cache[key] = text

    async def _write(self, unit: UnitOfWork) -> Result[None, StorageError]:
        """Merge into the open unit of work, or commit alone."""
        current = active_unit(self.owner)
        if current is not None:
            current.merge(unit)
            return Success(None)
        try:
            await self.commit_unit(unit)
        except StorageError as e:
            return Failure(e)
        return Success(None)

    # -- reads ----------------------------------------------------------------------------

    async def _committed_many(self, wanted: Sequence[str]) -> dict[str, str]:
        if self.lease is None:
            if len(wanted) == 1:
                text = await self.store.read(self.instance_id, wanted[0])
                return {} if text is None else {wanted[0]: text}
            return await self.store.read_many(self.instance_id, wanted)
        cache = self._cache if self._cache is not None else await self._fill()
        return {key: cache[key] for key in wanted if key in cache}

    async def _committed_prefix(self, prefix: str) -> dict[str, str]:
        if self.lease is None:
            return await self.store.read_prefix(self.instance_id, prefix)
        cache = self._cache if self._cache is not None else await self._fill()
        return {k: v for k, v in cache.items() if k.startswith(prefix)}

    async def _fill(self) -> dict[str, str]:
        """Read every key of the instance once."""
        cache = self._cache = await self.store.read_prefix(self.instance_id, "")
        return cache

    async def _text(self, key: str) -> str | None:
        """The JSON text under ``key`` as this unit of work sees it (``None``: no key)."""
        unit = active_unit(self.owner)
        if unit is not None and (key in unit.writes or unit.cleared):
            return unit.writes.get(key)
        return (await self._committed_many((key,))).get(key)

    async def get(self, key: str) -> Result[JsonValue | None, StorageError]:
        """The value under ``key``, or ``None``."""
        try:
            text = await self._text(key)
        except StorageError as e:
            return Failure(e)
        return Success(None if text is None else loads(text))

    async def get_many(self, keys: Sequence[str]) -> Result[dict[str, JsonValue], StorageError]:
        """The values under ``keys`` that exist (one read of the backend at most)."""
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
            return Failure(StorageError("put", key, e, permanent=True))
        return await self._write(UnitOfWork(self.owner, writes={key: text}))

    async def put_batch(self, entries: Mapping[str, JsonValue]) -> Result[None, StorageError]:
        """Store every entry, or none when one cannot be stored."""
        texts: dict[str, str | None] = {}
        for key, value in entries.items():
            try:
                texts[key] = dumps(value)
            except (TypeError, ValueError) as e:
                return Failure(StorageError("put_batch", key, e, permanent=True))
        if not texts:
            return Success(None)
        return await self._write(UnitOfWork(self.owner, writes=texts))

    async def delete(self, key: str) -> Result[bool, StorageError]:
        """Remove ``key``; ``True`` when it existed."""
        try:
            if await self._text(key) is None:
                return Success(False)
        except StorageError as e:
            return Failure(e)
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
        """An atomic unit of work over this instance (joined by its scheduler and inbox)."""
        return open_unit(self.owner, self.commit_unit)


class StoreScheduler:
    """``SchedulerAdapter``: the alarm joins the storage's unit of work."""

    def __init__(self, storage: StoreStorage) -> None:
        self.storage = storage

    async def _set(self, operation: str, unit: UnitOfWork) -> Result[None, SchedulerError]:
        current = active_unit(self.storage.owner)
        if current is not None:
            current.merge(unit)
            return Success(None)
        try:
            await self.storage.commit_unit(unit)
        except StorageError as e:
            return Failure(SchedulerError(operation, e))
        return Success(None)

    async def schedule(self, at: int) -> Result[None, SchedulerError]:
        """Set the alarm to ``at`` (epoch ms)."""
        if isinstance(at, bool) or not isinstance(at, int):
            return Failure(SchedulerError("schedule", TypeError(f"alarm time {at!r} is not int")))
        return await self._set("schedule", UnitOfWork(self.storage.owner, alarm=SetAlarm(at)))

    async def cancel(self) -> Result[None, SchedulerError]:
        """Clear the alarm."""
        return await self._set("cancel", UnitOfWork(self.storage.owner, alarm=CLEAR_ALARM))

    async def get_scheduled(self) -> Result[int | None, SchedulerError]:
        """The alarm time, or ``None``."""
        unit = active_unit(self.storage.owner)
        if unit is not None and not isinstance(unit.alarm, KeepAlarm):
            return Success(unit.alarm.at if isinstance(unit.alarm, SetAlarm) else None)
        try:
            return Success(await self.storage.store.read_alarm(self.storage.instance_id))
        except StorageError as e:
            return Failure(SchedulerError("get_scheduled", e))


class StoreInbox:
    """``InboxAdapter``: reads the inbox; consuming joins the storage's unit of work."""

    def __init__(self, storage: StoreStorage) -> None:
        self.storage = storage

    async def pending(self) -> Result[list[InboxMessage], StorageError]:
        """The unconsumed messages, in delivery order (one query)."""
        storage = self.storage
        try:
            messages, last = await storage.store.pending_inbox(storage.instance_id)
        except StorageError as e:
            return Failure(e)
        storage.inbox_read = max(storage.inbox_read, last)
        return Success(messages)

    def has_news(self) -> bool:
        """Whether a commit saw a message numbered beyond the last read."""
        seen = self.storage.inbox_seq
        return seen is not None and seen > self.storage.inbox_read

    async def consume(self, seqs: Iterable[int]) -> Result[None, StorageError]:
        """Mark messages consumed, with the open unit of work (or in a commit of its own)."""
        consumed = set(seqs)
        if not consumed:
            return Success(None)
        return await self.storage._write(UnitOfWork(self.storage.owner, consumed=consumed))

    async def send(self, message: Outgoing) -> Result[None, StorageError]:
        """Append ``message`` with the open unit of work (or in a commit of its own)."""
        return await self.storage._write(UnitOfWork(self.storage.owner, sends=[message]))

    async def append(self, message: Outgoing) -> Result[AppendOutcome, StorageError]:
        """Append ``message`` to its instance's inbox."""
        store = self.storage.store
        try:
            return Success(await store.append(message, store.clock.now()))
        except StorageError as e:
            return Failure(e)


def instance_runtime(
    store: InstanceStore, instance_id: str, lease: LeaseHold | None = None
) -> InstanceRuntime:
    """The runtime layer of one instance over ``store`` (fenced by ``lease`` when given)."""
    storage = StoreStorage(store, instance_id, lease)
    return InstanceRuntime(
        storage=storage,
        scheduler=StoreScheduler(storage),
        runtime=ClockRuntime(instance_id, store.clock),
        inbox=StoreInbox(storage),
        lease=lease,
    )
