"""PostgreSQL runtimes for the engine tests: one schema per store in the session's database.

The tests make their runtimes synchronously, sometimes outside the event loop, while a
``PostgresHost`` (an ``AsyncConnectionPool``) must be opened inside the loop that uses it.
So the hosts made here open themselves on their first use (``LazyPostgresHost``): every
read and commit of a runtime first awaits the host's opening, which runs once, in the
test's loop. The handle's methods are synchronous: they read and clear through a separate
synchronous connection of the host (a host not yet opened has written nothing, so they
answer "nothing" without one). ``PostgresRuntimes.close`` is async, so that the fixture
closes the hosts in the loop that opened them, then drops their schemas.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from typing import Any

import attrs
import psycopg
from psycopg import sql

from durably.adapters.clock import ManualClock
from durably.adapters.plan import CommitOutcome, CommitPlan
from durably.adapters.postgres import PostgresHost
from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing
from durably.domain.records import JsonValue
from durably.domain.serialization import loads
from durably.ports import InstanceRow, InstanceRuntime
from durably.testing.runtime import VirtualClockHandle
from tests.support.runtimes import RuntimeHandle

__all__ = ["LazyPostgresHost", "PostgresRuntimeHandle", "PostgresRuntimes"]


class LazyPostgresHost(PostgresHost):
    """A ``PostgresHost`` that opens itself, in the running loop, on its first use."""

    def __init__(self, dsn: str, *, schema: str, clock: ManualClock) -> None:
        super().__init__(dsn, schema=schema, clock=clock, max_size=4)
        self.manual_clock = clock
        self._opening: asyncio.Task[None] | None = None
        self._sync: psycopg.Connection[tuple[Any, ...]] | None = None

    @property
    def opened(self) -> bool:
        """Whether the host has been opened (its schema exists)."""
        return self._opening is not None and self._opening.done()

    async def ensure_open(self) -> None:
        """Open the pool and migrate the schema, once."""
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self.open())
        await self._opening

    async def read(self, instance_id: str, key: str) -> str | None:
        """``PostgresHost.read``, once open."""
        await self.ensure_open()
        return await super().read(instance_id, key)

    async def read_many(self, instance_id: str, keys_: Sequence[str]) -> dict[str, str]:
        """``PostgresHost.read_many``, once open."""
        await self.ensure_open()
        return await super().read_many(instance_id, keys_)

    async def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """``PostgresHost.read_prefix``, once open."""
        await self.ensure_open()
        return await super().read_prefix(instance_id, prefix)

    async def read_alarm(self, instance_id: str) -> int | None:
        """``PostgresHost.read_alarm``, once open."""
        await self.ensure_open()
        return await super().read_alarm(instance_id)

    async def instance(self, instance_id: str) -> InstanceRow | None:
        """``PostgresHost.instance``, once open."""
        await self.ensure_open()
        return await super().instance(instance_id)

    async def pending_inbox(self, instance_id: str) -> tuple[list[InboxMessage], int]:
        """``PostgresHost.pending_inbox``, once open."""
        await self.ensure_open()
        return await super().pending_inbox(instance_id)

    async def commit(self, plan: CommitPlan) -> CommitOutcome:
        """``PostgresHost.commit``, once open."""
        await self.ensure_open()
        return await super().commit(plan)

    async def append(self, message: Outgoing, now: int) -> AppendOutcome:
        """``PostgresHost.append``, once open."""
        await self.ensure_open()
        return await super().append(message, now)

    # -- the handle's synchronous side ----------------------------------------------------

    def query(self, query: sql.Composed, params: Sequence[object]) -> list[tuple[Any, ...]]:
        """Run ``query`` on the host's synchronous connection (autocommit)."""
        if self._sync is None:
            self._sync = psycopg.connect(self.dsn, autocommit=True)
            # Never wait forever behind a transaction of this very thread's event loop.
            self._sync.execute("SET lock_timeout = '10s'")
        cur = self._sync.execute(query, params)
        return cur.fetchall() if cur.description else []

    def table(self, name: str) -> sql.Composed:
        """``<schema>.<name>`` as SQL."""
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    async def shut(self) -> None:
        """Close the pool (when it was opened) and the synchronous connection."""
        try:
            if self._opening is not None:
                if not self._opening.done():
                    self._opening.cancel()
                await asyncio.gather(self._opening, return_exceptions=True)
                await self.close()
        finally:
            if self._sync is not None:
                self._sync.close()
                self._sync = None


@attrs.define(eq=False)
class PostgresRuntimeHandle(VirtualClockHandle):
    """Drives a PostgreSQL-backed runtime like ``TestRuntimeHandle`` drives the in-memory one."""

    __test__ = False

    backend: LazyPostgresHost
    instance_id: str

    def scheduled_time(self) -> int | None:
        """When the instance's alarm is set for, or ``None``."""
        if not self.backend.opened:
            return None
        rows = self.backend.query(
            sql.SQL("SELECT due_at FROM {} WHERE instance_id = %s").format(
                self.backend.table("alarms")
            ),
            (self.instance_id,),
        )
        return int(rows[0][0]) if rows else None

    def should_alarm_fire(self) -> bool:
        """Whether an alarm is set and due at the clock's time."""
        at = self.scheduled_time()
        return at is not None and at <= self.clock.time_ms

    def clear_alarm(self) -> None:
        """Clear the alarm (the host's bookkeeping, not a counted commit)."""
        if self.backend.opened:
            self.backend.query(
                sql.SQL("DELETE FROM {} WHERE instance_id = %s").format(
                    self.backend.table("alarms")
                ),
                (self.instance_id,),
            )

    def storage_snapshot(self) -> dict[str, JsonValue]:
        """A copy of every stored key and value of the instance."""
        if not self.backend.opened:
            return {}
        rows = self.backend.query(
            sql.SQL("SELECT key, value::text FROM {} WHERE instance_id = %s").format(
                self.backend.table("kv")
            ),
            (self.instance_id,),
        )
        return {str(k): loads(str(v)) for k, v in sorted(rows)}

    @property
    def commits(self) -> int:
        """How many transactions the host has committed."""
        return self.backend.commits


class PostgresRuntimes:
    """PostgreSQL runtimes: one schema per store, in the database at ``dsn``."""

    name = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.hosts: list[LazyPostgresHost] = []

    def __call__(
        self,
        instance_id: str | None = None,
        initial_time: int | None = None,
        *,
        backend: object = None,
    ) -> tuple[InstanceRuntime, RuntimeHandle]:
        """A runtime over a new schema, or over ``backend``'s."""
        iid = instance_id if instance_id is not None else str(uuid.uuid4())
        if backend is None:
            schema = f"s_{os.urandom(6).hex()}"
            host = LazyPostgresHost(self.dsn, schema=schema, clock=ManualClock(initial_time or 0))
            self.hosts.append(host)
        elif isinstance(backend, LazyPostgresHost):
            host = backend
            if initial_time is not None:
                host.manual_clock.time_ms = initial_time
        else:
            raise TypeError(f"not a store of the postgres backend: {backend!r}")
        return host.runtime(iid), PostgresRuntimeHandle(host.manual_clock, host, iid)

    async def close(self) -> None:
        """Close every host, then drop their schemas."""
        errors = await asyncio.gather(*(h.shut() for h in self.hosts), return_exceptions=True)
        schemas = [h.schema for h in self.hosts]
        if schemas:
            await asyncio.to_thread(self._drop, schemas)
        for error in errors:
            if isinstance(error, BaseException):
                raise error

    def _drop(self, schemas: list[str]) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
