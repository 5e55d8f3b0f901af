"""The SQLite storage and scheduler of one instance, and the runtime bundle."""

from __future__ import annotations

from collections.abc import Sequence

from durably.adapters.buffered import BufferedScheduler, BufferedStorage, Observed
from durably.adapters.clock import ClockRuntime
from durably.adapters.sqlite.backend import SqliteBackend
from durably.adapters.unit_of_work import UnitOfWork
from durably.ports import InstanceRuntime

__all__ = ["SqliteStorage", "SqliteScheduler", "sqlite_runtime"]


class SqliteStorage(BufferedStorage):
    """``StorageAdapter`` over a ``SqliteBackend``; with an ``owner``, every commit is fenced."""

    def __init__(
        self, backend: SqliteBackend, instance_id: str, owner: str | None = None, lease_ms: int = 0
    ) -> None:
        self.backend = backend
        self.instance_id = instance_id
        self.lease_owner = owner
        self.lease_ms = lease_ms
        self.owner = (id(backend), instance_id)
        self.caching = owner is not None  # a lease holder: nobody else commits meanwhile

    async def _load(self, key: str) -> str | None:
        return self.backend.read(self.instance_id, key)

    async def _load_prefix(self, prefix: str) -> dict[str, str]:
        return self.backend.read_prefix(self.instance_id, prefix)

    async def _load_many(self, keys: Sequence[str]) -> dict[str, str]:
        return self.backend.read_many(self.instance_id, keys)

    async def _commit(self, unit: UnitOfWork) -> Observed | None:
        return await self.backend.commit(self.instance_id, unit, self.lease_owner, self.lease_ms)


class SqliteScheduler(BufferedScheduler):
    """``SchedulerAdapter`` over a ``SqliteBackend`` (commits through the instance's storage)."""

    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage
        self.owner = storage.owner

    async def _load_alarm(self) -> int | None:
        return self.storage.backend.read_alarm(self.storage.instance_id)

    async def _commit(self, unit: UnitOfWork) -> None:
        await self.storage.commit_unit(unit)


def sqlite_runtime(
    backend: SqliteBackend, instance_id: str, owner: str | None = None, lease_ms: int = 30_000
) -> InstanceRuntime:
    """The runtime layer of one instance over ``backend`` (fenced by ``owner`` when given)."""
    storage = SqliteStorage(backend, instance_id, owner, lease_ms)
    return InstanceRuntime(
        storage=storage,
        scheduler=SqliteScheduler(storage),
        runtime=ClockRuntime(instance_id, backend.clock),
    )
