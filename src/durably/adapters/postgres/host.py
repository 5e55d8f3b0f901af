"""``PostgresHost``: instances in one PostgreSQL database, shared by any number of workers.

All I/O is asynchronous psycopg: nothing waits on the event loop. Commits of concurrent
instances are grouped (``GroupCommit``): the plans that wait are executed by one
pipelined transaction on the commit connection, each plan one prepared statement
(``plans.py``). Reads and lease statements use a pool. Claims use ``FOR UPDATE SKIP
LOCKED``; every commit of an owner checks and renews its lease (fencing); a new alarm or
a message that wakes an instance is announced with ``NOTIFY``, so idle workers wake at
once instead of at their next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from durably.adapters.clock import Clock, SystemClock
from durably.adapters.plan import CommitOutcome, CommitPlan, Create, Fenced
from durably.adapters.postgres.dsn import connect_failure, safe_dsn, target
from durably.adapters.postgres.leases import LeaseStatements
from durably.adapters.postgres.plans import PlanStatements, message_of
from durably.adapters.postgres.schedules import ScheduleStatements
from durably.adapters.postgres.schema import check_schema, migrate
from durably.adapters.runtime import instance_runtime
from durably.adapters.store import GroupCommit
from durably.domain.errors import DuplicateWorkflowError, InstanceExists, LeaseLost, StorageError
from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing, wakes
from durably.domain.lease import LeaseHold
from durably.domain.owner import local_owner_is_dead
from durably.domain.queues import ClaimScope, Queue, QueueStats
from durably.domain.schedules import StoredSchedule
from durably.domain.status import TERMINAL_TAGS
from durably.ports import Claimed, InstanceRow, InstanceRuntime

__all__ = ["PostgresHost", "CHANNEL", "safe_dsn"]

CHANNEL = "durably_alarms"
CONNECT_TIMEOUT_S = 5
_ROW = "id, workflow, status, created_at, updated_at, lease_owner, lease_expires_at"
_LISTED = ", ".join("i." + column for column in _ROW.split(", ")) + ", a.due_at"


def refuses_data(error: psycopg.Error) -> bool:
    """Whether PostgreSQL refused the data itself (a value it cannot store, a row over a
    limit), so that the same statement would fail again."""
    return isinstance(error, psycopg.errors.DataError | psycopg.errors.ProgramLimitExceeded)


def _refusal(plan: CommitPlan) -> StorageError:
    write = plan.write
    cause: Exception = (
        InstanceExists(plan.instance_id)
        if isinstance(write, Create)
        else LeaseLost(plan.instance_id, write.owner if isinstance(write, Fenced) else None)
    )
    return StorageError("commit", None, cause)


class PostgresHost:
    """Hosts instances in a PostgreSQL schema (``durably`` by default)."""

    commits_renew_lease = True
    """Every fenced commit updates its instance row (the fence), which renews the lease."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "durably",
        clock: Clock | None = None,
        min_size: int = 1,
        max_size: int = 8,
        read_only: bool = False,
    ) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"schema name {schema!r} must match [a-z_][a-z0-9_]*")
        self.dsn = dsn
        self.schema = schema
        self.read_only = read_only
        """Open without creating or migrating anything: the schema must exist, at this
        version (for commands that only read)."""
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._pool = AsyncConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
        )
        self._commit_conn: psycopg.AsyncConnection[Any] | None = None
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._group = GroupCommit(self._write_batch)
        self._plans = PlanStatements(schema, CHANNEL)
        self._leases = LeaseStatements(schema)
        self._schedules = ScheduleStatements(schema)
        self.commits = 0
        """Transactions committed (grouped commits count once)."""

    # -- lifecycle --------------------------------------------------------------------------

    def now(self) -> int:
        """The host's clock (epoch ms)."""
        return self.clock.now()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        """A connection of our own for commits: statements prepared once, generic plans
        (planned per call, a plan's statement costs about as much as running it)."""
        conn = await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, prepare_threshold=0
        )
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        return conn

    async def open(self) -> None:
        """Connect (failing within a few seconds, in one line naming the server, the
        database and the cause, when it cannot) and migrate the schema (read-only: check
        it, creating nothing); the pool fills in the background."""
        try:
            conn = await self._connect()
        except psycopg.Error as e:
            raise StorageError("open", None, connect_failure(self.dsn, e)) from None
        try:
            if self.read_only:
                await check_schema(conn, self.schema)
            else:
                await migrate(conn, self.schema)
        except psycopg.Error as e:
            await conn.close()
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StorageError("open", None, f"{target(self.dsn)}: {first}") from e
        except StorageError as e:
            await conn.close()
            raise StorageError(e.operation, e.key, f"{target(self.dsn)}: {e.cause}") from e
        except BaseException:
            await conn.close()
            raise
        self._commit_conn = conn
        await self._pool.open(wait=False)

    async def close(self) -> None:
        """Commit what waits, then close every connection."""
        try:
            await self._group.drain()
            for conn in (self._listener, self._commit_conn):
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        await conn.close()
            self._listener = self._commit_conn = None
        finally:
            await self._pool.close()

    def runtime(self, instance_id: str, lease: LeaseHold | None = None) -> InstanceRuntime:
        """The runtime of one instance (fenced by ``lease`` when given)."""
        return instance_runtime(self, instance_id, lease)

    # -- commits ----------------------------------------------------------------------------

    async def commit(self, plan: CommitPlan) -> CommitOutcome:
        """Commit ``plan``, grouped with the plans that wait while a commit is in flight."""
        return await self._group.commit(plan)

    async def _write_batch(self, batch: list[CommitPlan]) -> list[CommitOutcome | StorageError]:
        # The plans of one shape share a statement: executed together, in plan order.
        groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for index, plan in enumerate(batch):
            statement, params = self._plans.commit(plan)
            groups.setdefault(statement, []).append((index, params))
        rows: list[Any] = [None] * len(batch)
        try:
            conn = self._commit_conn
            if conn is None or conn.closed:
                conn = self._commit_conn = await self._connect()
            sends = any(plan.sends for plan in batch)
            if len(batch) == 1 and not sends:  # one statement, its own transaction
                ((statement, [(_, params)]),) = groups.items()
                cur = await conn.execute(statement, params)
                rows[0] = await cur.fetchone()
            else:
                async with conn.transaction():
                    cur = conn.cursor()
                    for statement, members in groups.items():
                        await cur.executemany(
                            statement, [params for _, params in members], returning=True
                        )
                        for position, (index, _) in enumerate(members):
                            if position:
                                cur.nextset()
                            rows[index] = await cur.fetchone()
                    # The messages of the plans that applied, in the same transaction.
                    for plan, row in zip(batch, rows, strict=True):
                        if plan.sends and row is not None and row[0] != 0:
                            for message in plan.sends:
                                await self._append_on(conn, message, plan.now)
        except psycopg.Error as e:
            if len(batch) == 1:
                return [StorageError("commit", None, e, permanent=refuses_data(e))]
            # One plan broke the transaction (a value the database refuses, say): commit
            # each alone, so that only that one fails.
            return [(await self._write_batch([plan]))[0] for plan in batch]
        except BaseException:
            # Cancelled in the middle of a statement: the connection's state is unknown.
            conn, self._commit_conn = self._commit_conn, None
            if conn is not None:
                await conn.close()
            raise
        self.commits += 1
        outcomes: list[CommitOutcome | StorageError] = []
        for plan, row in zip(batch, rows, strict=True):
            if row is None or row[0] == 0:
                outcomes.append(await self._refusal(plan))
            else:
                outcomes.append(CommitOutcome(None if row[1] is None else int(row[1])))
        return outcomes

    async def _refusal(self, plan: CommitPlan) -> StorageError:
        """Why ``plan`` was refused: a lease lost, an instance that exists, or (a creation
        with a dedupe id, whose instance does not exist) a dedupe id held by another."""
        write = plan.write
        if isinstance(write, Create) and write.dedupe_id is not None:
            try:
                rows = await self._fetch(
                    f"SELECT id FROM {self.schema}.instances WHERE id = %s", (plan.instance_id,)
                )
                if not rows:
                    holder = await self._fetch(
                        f"SELECT id FROM {self.schema}.instances WHERE queue = %s"
                        " AND dedupe_id = %s AND status NOT IN ('Completed', 'Failed',"
                        " 'Cancelled')",
                        (write.queue, write.dedupe_id),
                    )
                    cause = DuplicateWorkflowError(
                        write.queue, write.dedupe_id, str(holder[0][0]) if holder else None
                    )
                    return StorageError("commit", None, cause)
            except StorageError as e:
                return e
        return _refusal(plan)

    async def append(self, message: Outgoing, now: int) -> AppendOutcome:
        """Append ``message`` to its instance's inbox, waking the instance if it waits."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                outcome = await self._append_on(conn, message, now)
        except psycopg.Error as e:
            raise StorageError("append", None, e) from e
        if outcome.seq is not None:
            self.commits += 1
        return outcome

    async def _append_on(
        self, conn: psycopg.AsyncConnection[Any], message: Outgoing, now: int
    ) -> AppendOutcome:
        """``append`` in the open transaction of ``conn``."""
        iid = message.instance_id
        plans = self._plans
        cur = await conn.execute(plans.lock_instance, (iid,))
        row = await cur.fetchone()
        if row is None:
            return AppendOutcome(None)
        status, workflow = str(row[0]), str(row[2])
        if message.dedupe_key is not None:
            cur = await conn.execute(plans.duplicate, (iid, message.dedupe_key))
            if await cur.fetchone() is not None:
                return AppendOutcome(status, duplicate=True, workflow=workflow)
        if status in TERMINAL_TAGS:
            return AppendOutcome(status, workflow=workflow)
        cur = await conn.execute(
            plans.append,
            {
                "id": iid,
                "kind": message.kind,
                "name": message.name,
                "payload": message.payload,
                "dedupe": message.dedupe_key,
                "now": now,
                "wake": wakes(message.kind, status),
            },
        )
        appended = await cur.fetchone()
        if appended is None:  # pragma: no cover - the row is locked: it cannot vanish
            raise StorageError("append", None, f"instance {iid!r} vanished")
        return AppendOutcome(status, int(appended[0]), workflow=workflow)

    # -- reads ------------------------------------------------------------------------------

    async def _fetch(
        self, query: str, params: Sequence[object] | Mapping[str, object] = ()
    ) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchall()
        except psycopg.Error as e:
            raise StorageError("read", None, e) from e

    async def read(self, instance_id: str, key: str) -> str | None:
        """One stored value as JSON text."""
        rows = await self._fetch(
            f"SELECT value::text FROM {self.schema}.kv WHERE instance_id = %s AND key = %s",
            (instance_id, key),
        )
        return str(rows[0][0]) if rows else None

    async def read_many(self, instance_id: str, keys: Sequence[str]) -> dict[str, str]:
        """Those of ``keys`` that exist, as JSON text."""
        rows = await self._fetch(
            f"SELECT key, value::text FROM {self.schema}.kv"
            " WHERE instance_id = %s AND key = ANY(%s)",
            (instance_id, list(keys)),
        )
        return {str(k): str(v) for k, v in rows}

    async def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """Stored values under ``prefix`` (an indexed range)."""
        if not prefix:
            rows = await self._fetch(
                f"SELECT key, value::text FROM {self.schema}.kv WHERE instance_id = %s",
                (instance_id,),
            )
        else:
            end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            rows = await self._fetch(
                f"SELECT key, value::text FROM {self.schema}.kv WHERE instance_id = %s"
                " AND key >= %s AND key < %s",
                (instance_id, prefix, end),
            )
        return {str(k): str(v) for k, v in rows}

    async def read_alarm(self, instance_id: str) -> int | None:
        """The instance's alarm."""
        rows = await self._fetch(
            f"SELECT due_at FROM {self.schema}.alarms WHERE instance_id = %s", (instance_id,)
        )
        return int(rows[0][0]) if rows else None

    async def pending_inbox(self, instance_id: str) -> tuple[list[InboxMessage], int]:
        """The unconsumed messages, and the number of the last one (one snapshot)."""
        rows = await self._fetch(self._plans.pending, (instance_id,))
        if not rows:
            return [], 0
        return [message_of(row[1:]) for row in rows if row[1] is not None], int(rows[0][0])

    async def read_inbox(self, instance_id: str) -> list[InboxMessage]:
        """Every message of an instance, in delivery order."""
        rows = await self._fetch(self._plans.read_inbox, (instance_id,))
        return [message_of(row) for row in rows]

    async def instance(self, instance_id: str) -> InstanceRow | None:
        """The row of one instance."""
        rows = await self._fetch(
            f"SELECT {_ROW} FROM {self.schema}.instances WHERE id = %s", (instance_id,)
        )
        return InstanceRow(*rows[0]) if rows else None

    async def list_instances(
        self, status: str | None, workflow: str | None, limit: int
    ) -> list[InstanceRow]:
        """Instances by status and/or workflow, most recently updated first."""
        where, params = [], []
        if status is not None:
            where.append("i.status = %s")
            params.append(status)
        if workflow is not None:
            where.append("i.workflow = %s")
            params.append(workflow)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._fetch(
            f"SELECT {_LISTED} FROM {self.schema}.instances i"
            f" LEFT JOIN {self.schema}.alarms a ON a.instance_id = i.id{clause}"
            " ORDER BY i.updated_at DESC, i.id LIMIT %s",
            [*params, limit],
        )
        return [InstanceRow(*row) for row in rows]

    async def next_due(
        self, queues: Collection[str] | None = None, workflows: Collection[str] | None = None
    ) -> tuple[int | None, int | None]:
        """The earliest alarm of ``queues``' instances of ``workflows``, and of the others'
        (``InstanceHost.next_due``)."""
        if queues is None and workflows is None:
            rows = await self._fetch(f"SELECT min(due_at), NULL FROM {self.schema}.alarms")
        else:
            rows = await self._fetch(
                "SELECT min(a.due_at) FILTER (WHERE %(w)s::text[] IS NULL"
                " OR i.workflow = ANY(%(w)s::text[])),"
                " min(a.due_at) FILTER (WHERE i.workflow <> ALL(%(w)s::text[]))"
                f" FROM {self.schema}.alarms a"
                f" JOIN {self.schema}.instances i ON i.id = a.instance_id"
                " WHERE (%(q)s::text[] IS NULL OR i.queue = ANY(%(q)s::text[]))",
                {
                    "q": None if queues is None else sorted(queues),
                    "w": None if workflows is None else sorted(workflows),
                },
            )
        mine, other = rows[0] if rows else (None, None)
        return (None if mine is None else int(mine), None if other is None else int(other))

    async def due_elsewhere(
        self, now: int, queues: Collection[str], workflows: Collection[str], limit: int
    ) -> list[InstanceRow]:
        """Due, free instances of ``queues`` whose workflow is none of ``workflows``."""
        rows = await self._fetch(
            f"SELECT {', '.join('i.' + c for c in _ROW.split(', '))}"
            f" FROM {self.schema}.alarms a JOIN {self.schema}.instances i"
            " ON i.id = a.instance_id WHERE a.due_at <= %(now)s"
            " AND (i.lease_owner IS NULL OR i.lease_expires_at <= %(now)s)"
            " AND i.queue = ANY(%(q)s) AND NOT (i.workflow = ANY(%(w)s))"
            " ORDER BY a.due_at LIMIT %(limit)s",
            {"now": now, "q": sorted(queues), "w": sorted(workflows), "limit": limit},
        )
        return [InstanceRow(*row) for row in rows]

    # -- leases -----------------------------------------------------------------------------

    async def _lease_call(self, operation: str, call: Any) -> Any:
        try:
            async with self._pool.connection() as conn:
                return await call(conn)
        except psycopg.Error as e:
            raise StorageError(operation, None, e) from e

    async def claim_due(
        self, owner: str, now: int, lease_ms: int, limit: int, scope: ClaimScope | None = None
    ) -> list[Claimed]:
        """Lease up to ``limit`` due instances (``LeaseStatements.claim_due``)."""
        if limit <= 0:
            return []
        claimed: list[Claimed] = await self._lease_call(
            "claim",
            lambda conn: self._leases.claim_due(conn, owner, now, lease_ms, limit, scope),
        )
        return claimed

    async def save_queues(self, queues: Sequence[Queue], now: int) -> None:
        """Store the queues' limits."""
        await self._lease_call(
            "save_queues", lambda conn: self._leases.save_queues(conn, list(queues), now)
        )

    async def queue_stats(self) -> list[QueueStats]:
        """Waiting and running instances per queue, with the stored limits."""
        stats: list[QueueStats] = await self._lease_call("queue_stats", self._leases.queue_stats)
        return stats

    async def read_schedules(self) -> list[StoredSchedule]:
        """Every stored schedule."""
        rows: list[StoredSchedule] = await self._lease_call("read_schedules", self._schedules.read)
        return rows

    async def write_schedule(
        self, row: StoredSchedule, expected: int | None, seen_at: int | None = None
    ) -> bool:
        """Store a schedule (a compare-and-set on its version)."""
        written: bool = await self._lease_call(
            "write_schedule",
            lambda conn: self._schedules.write(conn, row, expected, seen_at),
        )
        return written

    async def touch_schedules(self, ids: Collection[str], now: int) -> None:
        """The heartbeat of an open engine's schedules."""
        await self._lease_call(
            "touch_schedules", lambda conn: self._schedules.touch(conn, ids, now)
        )

    async def acquire(self, instance_id: str, owner: str, now: int, lease_ms: int) -> bool:
        """Lease one instance if it is free, expired or already ours."""
        taken: bool = await self._lease_call(
            "acquire", lambda conn: self._leases.acquire(conn, instance_id, owner, now, lease_ms)
        )
        return taken

    async def release(self, instance_id: str, owner: str, wake_at: int | None = None) -> None:
        """Give the lease back (a no-op when it is not ours)."""
        await self._lease_call(
            "release", lambda conn: self._leases.release(conn, instance_id, owner, wake_at)
        )

    async def release_all(self, owner: str, now: int) -> int:
        """Give back every lease of ``owner``."""
        released: int = await self._lease_call(
            "release", lambda conn: self._leases.release_all(conn, owner, now)
        )
        return released

    async def renew(self, owner: str, now: int, lease_ms: int) -> list[str]:
        """Extend every lease of ``owner`` and the alarms behind its running instances."""
        renewed: list[str] = await self._lease_call(
            "renew", lambda conn: self._leases.renew(conn, owner, now, lease_ms)
        )
        return renewed

    async def expire_dead_local_owners(self, now: int) -> int:
        """Expire at once the leases held by dead processes of this host."""
        owners: list[str] = await self._lease_call("expire", self._leases.owners)
        dead = [o for o in owners if local_owner_is_dead(o)]
        for owner in dead:
            await self.release_all(owner, now)
        return len(dead)

    async def check(self) -> None:
        """Nothing to check: a lost server fails the next statement by itself."""

    async def wait_for_alarm(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for a ``NOTIFY`` of a new alarm from any process."""
        try:
            if self._listener is None or self._listener.closed:
                self._listener = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                )
                await self._listener.execute(f"LISTEN {CHANNEL}")
            async for _ in self._listener.notifies(timeout=timeout_s, stop_after=1):
                return
        except psycopg.Error:
            listener, self._listener = self._listener, None
            if listener is not None:
                with contextlib.suppress(psycopg.Error):
                    await listener.close()
            await asyncio.sleep(timeout_s)  # fall back to the poll interval
