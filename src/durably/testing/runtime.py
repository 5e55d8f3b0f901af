"""The in-memory runtime for tests: a virtual clock, the alarm slot and the stored keys in reach."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar

import attrs
from returns.result import Failure, Result

from durably.adapters.memory import ManualClock, MemoryBackend
from durably.adapters.runtime import instance_runtime
from durably.domain.errors import StorageError
from durably.domain.records import JsonValue
from durably.domain.serialization import loads
from durably.ports import InstanceRuntime, StorageAdapter

__all__ = [
    "VirtualClockHandle",
    "TestRuntimeHandle",
    "FailingStorage",
    "create_in_memory_runtime",
]


@attrs.define(eq=False)
class VirtualClockHandle:
    """The part of a test handle that moves the virtual clock (shared by every backend's)."""

    __test__ = False  # not a pytest test class

    clock: ManualClock

    def now(self) -> int:
        """The virtual clock's time (ms)."""
        return self.clock.time_ms

    def advance_time(self, ms: int) -> int:
        """Move the clock forward by ``ms``; returns the new time."""
        if ms < 0:
            raise ValueError(f"advance_time takes a non-negative number of ms, got {ms}")
        self.clock.time_ms += ms
        return self.clock.time_ms

    def set_time(self, ms: int) -> None:
        """Set the clock to ``ms``."""
        self.clock.time_ms = ms


@attrs.define(eq=False)
class TestRuntimeHandle(VirtualClockHandle):
    """The test's grip on an in-memory runtime: move its clock, look at its alarm and keys."""

    __test__ = False  # not a pytest test class

    backend: MemoryBackend
    instance_id: str

    def scheduled_time(self) -> int | None:
        """When the instance's alarm is set for, or ``None``."""
        return self.backend.alarms.get(self.instance_id)

    def should_alarm_fire(self) -> bool:
        """Whether an alarm is set and due at the clock's time."""
        at = self.scheduled_time()
        return at is not None and at <= self.clock.time_ms

    def clear_alarm(self) -> None:
        """Clear the alarm (as the host does before it fires one)."""
        self.backend.alarms.pop(self.instance_id, None)

    def storage_snapshot(self) -> dict[str, JsonValue]:
        """A copy of every stored key and value of the instance."""
        keys = self.backend.data.get(self.instance_id, {})
        return {k: loads(v) for k, v in sorted(keys.items())}

    @property
    def commits(self) -> int:
        """How many commits the backend has applied (to count durability points)."""
        return self.backend.commits


def create_in_memory_runtime(
    instance_id: str | None = None,
    initial_time: int | None = None,
    *,
    backend: MemoryBackend | None = None,
) -> tuple[InstanceRuntime, TestRuntimeHandle]:
    """A runtime layer in memory with a virtual clock, and the handle that drives it.

    Args:
        instance_id: the instance's id (a new UUID when omitted).
        initial_time: the clock's start, in epoch ms (0 when omitted).
        backend: share one ``MemoryBackend`` (and its clock) between several runtimes.
    """
    iid = instance_id if instance_id is not None else str(uuid.uuid4())
    store = backend if backend is not None else MemoryBackend()
    clock = store.clock
    if not isinstance(clock, ManualClock):
        raise TypeError("create_in_memory_runtime needs a backend with a ManualClock")
    if initial_time is not None or backend is None:
        clock.time_ms = initial_time or 0  # runtimes of one backend share its clock
    return instance_runtime(store, iid), TestRuntimeHandle(
        clock=clock, backend=store, instance_id=iid
    )


_WRITES = frozenset({"put", "put_batch", "delete", "delete_all"})
_IN_TX: ContextVar[frozenset[int]] = ContextVar("durably_failing_tx", default=frozenset())


@attrs.define(eq=False)
class FailingStorage:
    """A storage that fails the chosen operations with ``StorageError`` (fault tests).

    ``fail_on`` names operations (``get``, ``put``, ``put_batch``, ``delete``,
    ``delete_all``, ``list``, ``commit``); change it at any time. A failed commit
    discards the whole unit of work, as a real backend's rollback does; a write outside
    a transaction is a commit by itself, so ``commit`` fails it too.
    """

    inner: StorageAdapter
    fail_on: set[str] = attrs.field(factory=set)
    failures: int = 0
    permanent: bool = False
    """The faults say the storage refused the data itself (a retry cannot help)."""

    def _fails(self, operation: str, key: str | None) -> Failure[StorageError] | None:
        if operation in self.fail_on:
            self.failures += 1
            return Failure(StorageError(operation, key, "injected fault", self.permanent))
        if operation in _WRITES and "commit" in self.fail_on and id(self) not in _IN_TX.get():
            self.failures += 1
            return Failure(StorageError("commit", key, "injected fault", self.permanent))
        return None

    async def get(self, key: str) -> Result[JsonValue | None, StorageError]:
        """Read, unless ``get`` fails."""
        return self._fails("get", key) or await self.inner.get(key)

    async def get_many(self, keys: Sequence[str]) -> Result[dict[str, JsonValue], StorageError]:
        """Read many, unless ``get_many`` fails."""
        return self._fails("get_many", None) or await self.inner.get_many(keys)

    async def put(self, key: str, value: JsonValue) -> Result[None, StorageError]:
        """Write, unless ``put`` fails."""
        return self._fails("put", key) or await self.inner.put(key, value)

    async def put_batch(self, entries: Mapping[str, JsonValue]) -> Result[None, StorageError]:
        """Write many, unless ``put_batch`` fails."""
        return self._fails("put_batch", None) or await self.inner.put_batch(entries)

    async def delete(self, key: str) -> Result[bool, StorageError]:
        """Delete, unless ``delete`` fails."""
        return self._fails("delete", key) or await self.inner.delete(key)

    async def delete_all(self) -> Result[None, StorageError]:
        """Delete all, unless ``delete_all`` fails."""
        return self._fails("delete_all", None) or await self.inner.delete_all()

    async def list(self, prefix: str) -> Result[dict[str, JsonValue], StorageError]:
        """List, unless ``list`` fails."""
        return self._fails("list", prefix) or await self.inner.list(prefix)

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """The inner transaction, whose commit fails when ``commit`` does."""
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        token = _IN_TX.set(_IN_TX.get() | {id(self)})
        try:
            async with self.inner.transaction():
                yield
                failure = self._fails("commit", None)
                if failure is not None:
                    raise failure.failure()
        finally:
            _IN_TX.reset(token)
