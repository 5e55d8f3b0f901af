"""``SqliteHost``: the ``InstanceHost`` of a SQLite database file."""

from __future__ import annotations

import asyncio

from durably.adapters.clock import Clock
from durably.adapters.sqlite.adapters import sqlite_runtime
from durably.adapters.sqlite.backend import SqliteBackend, Synchronous
from durably.ports import InstanceRow, InstanceRuntime

__all__ = ["SqliteHost"]


class SqliteHost:
    """Hosts instances in one SQLite file; the queries are short, so they run inline."""

    def __init__(
        self, path: str, *, synchronous: Synchronous = "FULL", clock: Clock | None = None
    ) -> None:
        self.backend = SqliteBackend(path, synchronous=synchronous, clock=clock)

    def now(self) -> int:
        """The backend's clock."""
        return self.backend.clock.now()

    async def open(self) -> None:
        """Open and migrate the database."""
        self.backend.open()

    async def close(self) -> None:
        """Close the database."""
        self.backend.close()

    def runtime(self, instance_id: str, owner: str | None, lease_ms: int) -> InstanceRuntime:
        """The runtime of one instance over this file."""
        return sqlite_runtime(self.backend, instance_id, owner, lease_ms)

    async def instance(self, instance_id: str) -> InstanceRow | None:
        """The row of one instance."""
        return self.backend.instance(instance_id)

    async def list_instances(
        self, status: str | None, workflow: str | None, limit: int
    ) -> list[InstanceRow]:
        """Instances by status and/or workflow."""
        return self.backend.list_instances(status, workflow, limit)

    async def read(self, instance_id: str, key: str) -> str | None:
        """One stored value."""
        return self.backend.read(instance_id, key)

    async def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """Stored values under a prefix."""
        return self.backend.read_prefix(instance_id, prefix)

    async def next_due(self) -> int | None:
        """The earliest alarm."""
        return self.backend.next_due()

    async def claim_due(self, owner: str, now: int, lease_ms: int, limit: int) -> list[str]:
        """Lease due instances."""
        return self.backend.claim_due(owner, now, lease_ms, limit)

    async def acquire(self, instance_id: str, owner: str, now: int, lease_ms: int) -> bool:
        """Lease one instance."""
        return self.backend.acquire(instance_id, owner, now, lease_ms)

    async def release(self, instance_id: str, owner: str) -> None:
        """Give a lease back."""
        self.backend.release(instance_id, owner)

    def released_by_commit(self, instance_id: str, owner: str) -> bool:
        """Whether a commit of ``owner`` gave the lease back since ``owner`` took it."""
        return self.backend.given_back.pop(instance_id, owner)

    async def renew(self, owner: str, now: int, lease_ms: int) -> None:
        """Extend every lease of ``owner``."""
        self.backend.renew(owner, now, lease_ms)

    async def expire_dead_local_owners(self, now: int) -> int:
        """Expire the leases of dead local processes."""
        return self.backend.expire_dead_local_owners(now)

    async def wait_for_alarm(self, timeout_s: float) -> None:
        """SQLite cannot notify across processes: the worker polls at its interval."""
        await asyncio.sleep(timeout_s)
