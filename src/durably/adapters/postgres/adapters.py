"""The PostgreSQL storage and scheduler of one instance."""

from __future__ import annotations

from collections.abc import Sequence

from durably.adapters.buffered import BufferedScheduler, BufferedStorage, Observed
from durably.adapters.clock import ClockRuntime
from durably.adapters.postgres.host import PostgresHost
from durably.adapters.unit_of_work import UnitOfWork
from durably.ports import InstanceRuntime

__all__ = ["PostgresStorage", "PostgresScheduler", "postgres_runtime"]


class PostgresStorage(BufferedStorage):
    """``StorageAdapter`` over a ``PostgresHost``; with an ``owner``, every commit is fenced."""

    def __init__(
        self, host: PostgresHost, instance_id: str, owner: str | None = None, lease_ms: int = 0
    ) -> None:
        self.host = host
        self.instance_id = instance_id
        self.lease_owner = owner
        self.lease_ms = lease_ms
        self.owner = (id(host), instance_id)
        self.caching = owner is not None  # a lease holder: nobody else commits meanwhile

    async def _load(self, key: str) -> str | None:
        return await self.host.read(self.instance_id, key)

    async def _load_prefix(self, prefix: str) -> dict[str, str]:
        return await self.host.read_prefix(self.instance_id, prefix)

    async def _load_many(self, keys: Sequence[str]) -> dict[str, str]:
        return await self.host.read_many(self.instance_id, keys)

    async def _commit(self, unit: UnitOfWork) -> Observed | None:
        return await self.host.commit(self.instance_id, unit, self.lease_owner, self.lease_ms)


class PostgresScheduler(BufferedScheduler):
    """``SchedulerAdapter`` over a ``PostgresHost`` (commits through the instance's storage)."""

    def __init__(self, storage: PostgresStorage) -> None:
        self.storage = storage
        self.owner = storage.owner

    async def _load_alarm(self) -> int | None:
        return await self.storage.host.read_alarm(self.storage.instance_id)

    async def _commit(self, unit: UnitOfWork) -> None:
        await self.storage.commit_unit(unit)


def postgres_runtime(
    host: PostgresHost, instance_id: str, owner: str | None = None, lease_ms: int = 30_000
) -> InstanceRuntime:
    """The runtime layer of one instance over ``host``."""
    storage = PostgresStorage(host, instance_id, owner, lease_ms)
    return InstanceRuntime(
        storage=storage,
        scheduler=PostgresScheduler(storage),
        runtime=ClockRuntime(instance_id, host.clock),
    )
