"""``PostgresHost``: instances in one PostgreSQL database, shared by any number of workers.

Commits of concurrent instances are grouped: while one commit is in flight, the units
of work that arrive wait, and the next commit carries all of them: the step units in
one statement (``steps.py``), the rest in one transaction, each under a savepoint, so a
unit that lost its lease fails alone (``transaction.py``). A unit alone is one
statement (``single.py``), committed in its caller's task when nothing else is ready
to run. Claims use
``FOR UPDATE SKIP LOCKED``; every commit of an owner checks its lease (fencing); a new
alarm is announced with ``NOTIFY``, so idle workers wake without polling fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from durably.adapters.clock import Clock, SystemClock
from durably.adapters.commit_group import (
    LONGEST_WITHOUT_A_TURN_S,
    GivenBack,
    InstanceExists,
    LeaseLost,
    Waiting,
    loop_is_idle,
    resolve,
)
from durably.adapters.postgres.leases import PostgresLeases
from durably.adapters.postgres.schema import migrate
from durably.adapters.postgres.single import SingleStatements, fits_one_statement
from durably.adapters.postgres.statements import StatementConnections
from durably.adapters.postgres.steps import (
    settle_steps,
    split_steps,
    statement,
    statement_of_one,
    steps_query,
)
from durably.adapters.postgres.transaction import INSTANCE_COLUMNS as _ROW
from durably.adapters.postgres.transaction import UnitStatements
from durably.adapters.unit_of_work import UnitOfWork
from durably.domain import keys
from durably.domain.errors import StorageError
from durably.ports import InstanceRow, InstanceRuntime

__all__ = ["PostgresHost", "LeaseLost", "InstanceExists"]

CHANNEL = "durably_alarms"


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
        self._inline = False
        """Whether a unit is being committed in its caller's task (``commit``)."""
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._statements = StatementConnections(dsn)
        """The connections of one-statement commits (one commit at a time uses them)."""
        self.commits = 0
        self.given_back = GivenBack()
        s = schema
        self.kv, self.alarms, self.instances = f"{s}.kv", f"{s}.alarms", f"{s}.instances"
        self._steps_queries = (
            statement(self.kv, self.instances),
            statement_of_one(self.kv, self.instances),
        )
        self._single = SingleStatements(self.kv, self.alarms, self.instances, CHANNEL)
        self._units = UnitStatements(self.kv, self.alarms, self.instances)

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
            await self._statements.close()
        finally:
            await self._pool.close()

    def _safe_dsn(self) -> str:
        return re.sub(r":[^:@/]*@", ":***@", self.dsn)

    def runtime(self, instance_id: str, owner: str | None, lease_ms: int) -> InstanceRuntime:
        """The runtime of one instance; with ``owner``, every commit is fenced."""
        from durably.adapters.postgres.adapters import postgres_runtime

        return postgres_runtime(self, instance_id, owner, lease_ms)

    # -- reads ----------------------------------------------------------------------------

    async def _fetch(
        self, query: str, params: Sequence[object] = (), *, one_instance: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of a read; a read of one instance's rows may be made blocking (as a
        commit is, when nothing else is ready: ``statements.py``)."""
        if one_instance and loop_is_idle(asyncio.get_running_loop()) and self._had_a_turn():
            rows = self._statements.run_blocking(query, params, operation="read")
            if rows is not None:
                return rows
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(query, params)
                rows = await cur.fetchall()
        except psycopg.Error as e:
            raise StorageError("read", None, e) from e
        self._statements.last_turn = time.monotonic()  # the loop had its turns meanwhile
        return rows

    async def read(self, instance_id: str, key: str) -> str | None:
        """One stored value as JSON text."""
        rows = await self._fetch(
            f"SELECT value::text FROM {self.kv} WHERE instance_id = %s AND key = %s",
            (instance_id, key),
            one_instance=True,
        )
        return str(rows[0][0]) if rows else None

    async def read_many(self, instance_id: str, keys_: Sequence[str]) -> dict[str, str]:
        """Those of ``keys_`` that exist, as JSON text."""
        rows = await self._fetch(
            f"SELECT key, value::text FROM {self.kv} WHERE instance_id = %s AND key = ANY(%s)",
            (instance_id, list(keys_)),
            one_instance=True,
        )
        return {str(k): str(v) for k, v in rows}

    async def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """Stored values under ``prefix`` (an indexed range)."""
        if not prefix:
            rows = await self._fetch(
                f"SELECT key, value::text FROM {self.kv} WHERE instance_id = %s",
                (instance_id,),
                one_instance=True,
            )
        else:
            end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            rows = await self._fetch(
                f"SELECT key, value::text FROM {self.kv} WHERE instance_id = %s"
                " AND key >= %s AND key < %s",
                (instance_id, prefix, end),
                one_instance=True,
            )
        return {str(k): str(v) for k, v in rows}

    async def read_alarm(self, instance_id: str) -> int | None:
        """The instance's alarm."""
        rows = await self._fetch(
            f"SELECT due_at FROM {self.alarms} WHERE instance_id = %s",
            (instance_id,),
            one_instance=True,
        )
        return int(rows[0][0]) if rows else None

    async def instance(self, instance_id: str) -> InstanceRow | None:
        """The row of one instance."""
        rows = await self._fetch(
            f"SELECT {_ROW} FROM {self.instances} WHERE id = %s", (instance_id,), one_instance=True
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
        idle = self._flusher is None or self._flusher.done()
        if idle and not self._inline and not self._waiting and loop_is_idle(loop):
            # Nothing else is ready to run, so nothing could join a group now: commit in
            # this task, sparing the flusher's turns of the loop. Units that arrive while
            # it is in flight wait for it, and then form the next group.
            waiting = Waiting(instance_id, unit, owner, lease_ms, None)
            self._inline = True
            try:
                # Without a turn of the loop too, if it had one lately (statements.py).
                blocking = self._had_a_turn()
                (error,) = await self._commit_batch([waiting], blocking=blocking)
            finally:
                self._inline = False
                if self._waiting:
                    self._flusher = loop.create_task(self._flush())
            if error is not None:
                raise error
        else:
            future = loop.create_future()
            waiting = Waiting(instance_id, unit, owner, lease_ms, future)
            self._waiting.append(waiting)
            if idle and not self._inline:
                self._flusher = loop.create_task(self._flush())
            await future
        self.given_back.committed(waiting)
        return waiting.observed

    def _had_a_turn(self) -> bool:
        """Whether the loop had a turn less than ``LONGEST_WITHOUT_A_TURN_S`` ago: until then
        a statement may be made without leaving it, on the blocking connection."""
        return time.monotonic() - self._statements.last_turn < LONGEST_WITHOUT_A_TURN_S

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the units that are ready join this transaction
        self._statements.last_turn = time.monotonic()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._commit_batch(batch)
            except BaseException as e:  # cancelled mid-commit: nothing is known to be durable
                for waiting in batch:
                    if waiting.future is not None and not waiting.future.done():
                        waiting.future.set_exception(StorageError("commit", None, e))
                raise

    async def _commit_batch(
        self, batch: list[Waiting], *, blocking: bool = False
    ) -> list[BaseException | None]:
        """Commit ``batch``: its step units by one statement, the rest by another (a unit
        alone) or by one transaction. Wakes the units; returns their errors, in order."""
        steps, others = split_steps(batch)
        alone = len(others) == 1 and fits_one_statement(others[0])
        other_commit = self._commit_single if alone else self._transaction
        outcome: dict[int, BaseException | None] = {}
        for group, commit in ((steps, self._commit_steps), (others, other_commit)):
            if not group:
                continue
            errors: list[BaseException | None] = [None] * len(group)
            try:
                await commit(group, errors, blocking)
            except StorageError as e:
                errors = [e] * len(group)
            resolve(group, errors)
            outcome.update(zip(map(id, group), errors, strict=True))
        return [outcome[id(waiting)] for waiting in batch]

    async def _commit_steps(
        self, batch: list[Waiting], errors: list[BaseException | None], blocking: bool = False
    ) -> None:
        """Commit units that only write rows of leased instances: one statement."""
        query, params = steps_query(self._steps_queries, batch, self.clock.now())
        settle_steps(batch, await self._one_statement(query, params, blocking), errors)

    async def _commit_single(
        self, batch: list[Waiting], errors: list[BaseException | None], blocking: bool = False
    ) -> None:
        """Commit one creation or fenced unit: one statement (``single.py``)."""
        query, params = self._single.query(batch[0], self.clock.now())
        self._single.settle(batch[0], await self._one_statement(query, params, blocking))

    async def _one_statement(
        self, query: str, params: dict[str, Any], blocking: bool
    ) -> list[tuple[Any, ...]]:
        rows = await self._statements.run(query, params, blocking=blocking)
        self.commits += 1
        return rows

    async def _transaction(
        self, batch: list[Waiting], errors: list[BaseException | None], blocking: bool = False
    ) -> None:
        now = self.clock.now()
        single = len(batch) == 1
        notify = False
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = conn.cursor()
                for i, waiting in enumerate(batch):
                    try:
                        if single:
                            notify |= await self._units.apply(cur, waiting, now)
                        else:
                            async with conn.transaction():  # a savepoint per unit
                                notify |= await self._units.apply(cur, waiting, now)
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
