"""``PostgresHost``: instances in one PostgreSQL database, shared by any number of workers.

Commits of concurrent instances are grouped: while one transaction is in flight, the
units of work that arrive wait, and the next transaction carries all of them (each
under a savepoint, so a unit that lost its lease fails alone). Claims use
``FOR UPDATE SKIP LOCKED``; every commit of an owner checks its lease (fencing); a new
alarm is announced with ``NOTIFY``, so idle workers wake without polling fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from durably.adapters.clock import Clock, SystemClock
from durably.adapters.commit_group import (
    GivenBack,
    InstanceExists,
    LeaseLost,
    Waiting,
    resolve,
    status_tag,
)
from durably.adapters.postgres.leases import PostgresLeases
from durably.adapters.postgres.schema import migrate
from durably.adapters.postgres.single import SingleStatements, fits_one_statement
from durably.adapters.postgres.steps import (
    FENCED_KEYS,
    commit_steps,
    split_steps,
    statement,
    statement_of_one,
)
from durably.adapters.unit_of_work import UNCHANGED, UnitOfWork
from durably.domain import keys
from durably.domain.errors import StorageError
from durably.ports import InstanceRow, InstanceRuntime

__all__ = ["PostgresHost", "LeaseLost", "InstanceExists"]

CHANNEL = "durably_alarms"
_ROW = "id, workflow, status, created_at, updated_at, lease_owner, lease_expires_at"


class PostgresHost(PostgresLeases):
    """Hosts instances in a PostgreSQL schema (``durably`` by default)."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "durably",
        clock: Clock | None = None,
        min_size: int = 1,
        max_size: int = 8,
    ) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"schema name {schema!r} must match [a-z_][a-z0-9_]*")
        self.dsn = dsn
        self.schema = schema
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._pool = AsyncConnectionPool(
            dsn, min_size=min_size, max_size=max_size, open=False, kwargs={"autocommit": True}
        )
        self._waiting: list[Waiting] = []
        self._flusher: asyncio.Task[None] | None = None
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._steps_conn: psycopg.AsyncConnection[Any] | None = None
        """The connection of one-statement commits (one flusher at a time uses it)."""
        self.commits = 0
        self.given_back = GivenBack()
        s = schema
        self.kv, self.alarms, self.instances = f"{s}.kv", f"{s}.alarms", f"{s}.instances"
        self._steps_queries = (
            statement(self.kv, self.instances),
            statement_of_one(self.kv, self.instances),
        )
        self._single = SingleStatements(self.kv, self.alarms, self.instances, CHANNEL)

    # -- lifecycle ------------------------------------------------------------------------

    def now(self) -> int:
        """The host's clock (epoch ms)."""
        return self.clock.now()

    async def open(self) -> None:
        """Open the pool and migrate the schema."""
        try:
            await self._pool.open(wait=True, timeout=30)
            async with self._pool.connection() as conn:
                await migrate(conn, self.schema)
        except psycopg.Error as e:
            raise StorageError("open", None, f"{self._safe_dsn()}: {e}") from e

    async def close(self) -> None:
        """Flush waiting commits and close every connection."""
        try:
            if self._flusher is not None:
                with contextlib.suppress(Exception):  # its waiters got the error already
                    await asyncio.shield(self._flusher)
            if self._listener is not None:
                await self._listener.close()
                self._listener = None
            if self._steps_conn is not None:
                await self._steps_conn.close()
                self._steps_conn = None
        finally:
            await self._pool.close()

    def _safe_dsn(self) -> str:
        return re.sub(r":[^:@/]*@", ":***@", self.dsn)

    def runtime(self, instance_id: str, owner: str | None, lease_ms: int) -> InstanceRuntime:
        """The runtime of one instance; with ``owner``, every commit is fenced."""
        from durably.adapters.postgres.adapters import postgres_runtime

        return postgres_runtime(self, instance_id, owner, lease_ms)

    # -- reads ----------------------------------------------------------------------------

    async def _fetch(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchall()
        except psycopg.Error as e:
            raise StorageError("read", None, e) from e

    async def read(self, instance_id: str, key: str) -> str | None:
        """One stored value as JSON text."""
        rows = await self._fetch(
            f"SELECT value::text FROM {self.kv} WHERE instance_id = %s AND key = %s",
            (instance_id, key),
        )
        return str(rows[0][0]) if rows else None

    async def read_many(self, instance_id: str, keys_: Sequence[str]) -> dict[str, str]:
        """Those of ``keys_`` that exist, as JSON text."""
        rows = await self._fetch(
            f"SELECT key, value::text FROM {self.kv} WHERE instance_id = %s AND key = ANY(%s)",
            (instance_id, list(keys_)),
        )
        return {str(k): str(v) for k, v in rows}

    async def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """Stored values under ``prefix`` (an indexed range)."""
        if not prefix:
            rows = await self._fetch(
                f"SELECT key, value::text FROM {self.kv} WHERE instance_id = %s", (instance_id,)
            )
        else:
            end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            rows = await self._fetch(
                f"SELECT key, value::text FROM {self.kv} WHERE instance_id = %s"
                " AND key >= %s AND key < %s",
                (instance_id, prefix, end),
            )
        return {str(k): str(v) for k, v in rows}

    async def read_alarm(self, instance_id: str) -> int | None:
        """The instance's alarm."""
        rows = await self._fetch(
            f"SELECT due_at FROM {self.alarms} WHERE instance_id = %s", (instance_id,)
        )
        return int(rows[0][0]) if rows else None

    async def instance(self, instance_id: str) -> InstanceRow | None:
        """The row of one instance."""
        rows = await self._fetch(
            f"SELECT {_ROW} FROM {self.instances} WHERE id = %s", (instance_id,)
        )
        return InstanceRow(*rows[0]) if rows else None

    async def list_instances(
        self, status: str | None, workflow: str | None, limit: int
    ) -> list[InstanceRow]:
        """Instances by status and/or workflow, most recently updated first."""
        where, params = [], []
        if status is not None:
            where.append("status = %s")
            params.append(status)
        if workflow is not None:
            where.append("workflow = %s")
            params.append(workflow)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetch(
            f"SELECT {_ROW} FROM {self.instances}{clause} ORDER BY updated_at DESC, id LIMIT %s",
            [*params, limit],
        )
        return [InstanceRow(*row) for row in rows]

    async def next_due(self) -> int | None:
        """The earliest alarm of any instance."""
        rows = await self._fetch(f"SELECT min(due_at) FROM {self.alarms}")
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    # -- grouped commits ------------------------------------------------------------------

    async def commit(
        self, instance_id: str, unit: UnitOfWork, owner: str | None, lease_ms: int
    ) -> dict[str, str | None] | None:
        """Commit ``unit``, grouped with the units that arrive while a commit is in flight.

        A fenced unit (``owner`` given) returns the cancel flag as its transaction read it.
        """
        if unit.is_empty():
            return None
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        waiting = Waiting(instance_id, unit, owner, lease_ms, future)
        self._waiting.append(waiting)
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await future
        self.given_back.committed(waiting)
        return waiting.observed

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the units that are ready join this transaction
        while self._waiting:
            batch, self._waiting = self._waiting, []
            steps, others = split_steps(batch)
            try:
                alone = len(others) == 1 and fits_one_statement(others[0])
                other_commit = self._commit_single if alone else self._transaction
                for group, commit in ((steps, self._commit_steps), (others, other_commit)):
                    if not group:
                        continue
                    errors: list[BaseException | None] = [None] * len(group)
                    try:
                        await commit(group, errors)
                    except StorageError as e:
                        errors = [e] * len(group)
                    resolve(group, errors)
            except BaseException as e:  # cancelled mid-commit: nothing is known to be durable
                for waiting in batch:
                    if waiting.future is not None and not waiting.future.done():
                        waiting.future.set_exception(StorageError("commit", None, e))
                raise

    async def _statement_conn(self) -> psycopg.AsyncConnection[Any]:
        """The connection of one-statement commits, where they are prepared with a generic
        plan: planning them each time would cost about as much as running them."""
        conn = self._steps_conn
        if conn is None or conn.closed:
            conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            self._steps_conn = conn
        return conn

    async def _commit_steps(self, batch: list[Waiting], errors: list[BaseException | None]) -> None:
        """Commit units that only write rows of leased instances: one statement."""
        await self._one_statement(
            lambda conn: commit_steps(conn, self._steps_queries, batch, self.clock.now(), errors)
        )

    async def _commit_single(
        self, batch: list[Waiting], errors: list[BaseException | None]
    ) -> None:
        """Commit one creation or fenced unit: one statement (``single.py``)."""
        await self._one_statement(
            lambda conn: self._single.commit(conn, batch[0], self.clock.now())
        )

    async def _one_statement(
        self, run: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]
    ) -> None:
        conn = None
        try:
            conn = await self._statement_conn()
            await run(conn)
        except psycopg.Error as e:
            raise StorageError("commit", None, e) from e
        except StorageError:
            if conn is not None and conn.broken:
                self._steps_conn = None  # reconnect at the next commit
            raise
        self.commits += 1

    async def _transaction(self, batch: list[Waiting], errors: list[BaseException | None]) -> None:
        now = self.clock.now()
        single = len(batch) == 1
        notify = False
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = conn.cursor()
                for i, waiting in enumerate(batch):
                    try:
                        if single:
                            notify |= await self._apply(cur, waiting, now)
                        else:
                            async with conn.transaction():  # a savepoint per unit
                                notify |= await self._apply(cur, waiting, now)
                    except (LeaseLost, InstanceExists) as e:
                        if single:
                            raise
                        errors[i] = StorageError("commit", keys.STATUS, e)
                if notify:
                    await cur.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        except (LeaseLost, InstanceExists) as e:
            raise StorageError("commit", keys.STATUS, e) from e
        except psycopg.Error as e:
            raise StorageError("commit", None, e) from e
        self.commits += 1

    async def _apply(self, cur: psycopg.AsyncCursor[Any], waiting: Waiting, now: int) -> bool:
        """Apply one unit; returns whether it set an alarm (to announce)."""
        iid, unit, owner = waiting.instance_id, waiting.unit, waiting.owner
        expires = now + waiting.lease_ms
        tag = waiting.tag = status_tag(unit.writes.get(keys.STATUS))
        name_text = unit.writes.get(keys.NAME)
        # The instance row first: it takes the row lock that serializes us against claims.
        if name_text is not None and not unit.cleared:
            holder = owner if tag == "Running" else None
            await cur.execute(
                f"INSERT INTO {self.instances} ({_ROW}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (
                    iid,
                    json.loads(name_text),
                    tag or "Pending",
                    now,
                    now,
                    holder,
                    expires if holder else None,
                ),
            )
            if cur.rowcount == 0:
                raise InstanceExists(f"instance {iid!r} already exists")
            waiting.observed = dict.fromkeys(FENCED_KEYS)  # a new instance: nobody cancelled it
        elif owner is not None:
            release = tag is not None and tag != "Running"
            # Fenced; and it reads back what a cancel from elsewhere may have written.
            await cur.execute(
                f"UPDATE {self.instances} SET"
                " lease_owner = CASE WHEN %s THEN NULL ELSE lease_owner END,"
                " lease_expires_at = CASE WHEN %s THEN NULL ELSE %s END,"
                " status = COALESCE(%s, status),"
                " updated_at = CASE WHEN %s::text IS NULL THEN updated_at ELSE %s END"
                " WHERE id = %s AND lease_owner = %s RETURNING "
                + ", ".join(
                    f"(SELECT value::text FROM {self.kv} WHERE instance_id = %s AND key = %s)"
                    for _ in FENCED_KEYS
                ),
                (
                    *(release, release, expires, tag, tag, now, iid, owner),
                    *(part for key in FENCED_KEYS for part in (iid, key)),
                ),
            )
            fence = await cur.fetchone()
            if fence is None:
                raise LeaseLost(f"lease of instance {iid!r} is no longer held by {owner}")
            waiting.observed = dict(zip(FENCED_KEYS, fence, strict=True))
        elif tag is not None:
            await cur.execute(
                f"UPDATE {self.instances} SET status = %s, updated_at = %s WHERE id = %s",
                (tag, now, iid),
            )
        if unit.cleared:
            await cur.execute(f"DELETE FROM {self.kv} WHERE instance_id = %s", (iid,))
        puts = [(iid, k, v) for k, v in unit.writes.items() if v is not None]
        if puts:
            await cur.executemany(
                f"INSERT INTO {self.kv} (instance_id, key, value) VALUES (%s, %s, %s::jsonb)"
                " ON CONFLICT (instance_id, key) DO UPDATE SET value = EXCLUDED.value",
                puts,
            )
        deletes = [(iid, k) for k, v in unit.writes.items() if v is None]
        if deletes:
            await cur.executemany(
                f"DELETE FROM {self.kv} WHERE instance_id = %s AND key = %s", deletes
            )
        if unit.alarm is None:
            await cur.execute(f"DELETE FROM {self.alarms} WHERE instance_id = %s", (iid,))
        elif unit.alarm is not UNCHANGED:
            await cur.execute(
                f"INSERT INTO {self.alarms} (instance_id, due_at) VALUES (%s, %s)"
                " ON CONFLICT (instance_id) DO UPDATE SET due_at = EXCLUDED.due_at",
                (iid, unit.alarm),
            )
            return True
        elif tag == "Running" and owner is not None:
            # Running under a lease always has an alarm: at the lease's expiry.
            await cur.execute(
                f"INSERT INTO {self.alarms} (instance_id, due_at) VALUES (%s, %s)"
                " ON CONFLICT (instance_id) DO UPDATE SET due_at = EXCLUDED.due_at",
                (iid, expires),
            )
        return False

    async def wait_for_alarm(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for a ``NOTIFY`` of a new alarm from any process."""
        try:
            if self._listener is None or self._listener.closed:
                self._listener = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                await self._listener.execute(f"LISTEN {CHANNEL}")
            async for _ in self._listener.notifies(timeout=timeout_s, stop_after=1):
                return
        except psycopg.Error:
            listener, self._listener = self._listener, None
            if listener is not None:
                with contextlib.suppress(psycopg.Error):
                    await listener.close()
            await asyncio.sleep(timeout_s)  # fall back to the poll interval
