"""``SqliteHost``: the instances of one SQLite database file (the embedded default).

Every statement runs through ``SqliteDatabase.run`` (never waiting for a lock on the
event loop, ``database.py``). Commits of concurrent instances are grouped
(``GroupCommit``): one transaction, one fsync, for every plan that waits.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Collection, Sequence

from durably.adapters.clock import Clock, SystemClock
from durably.adapters.plan import CommitOutcome, CommitPlan
from durably.adapters.runtime import instance_runtime
from durably.adapters.sqlite.database import SqliteDatabase, Synchronous
from durably.adapters.sqlite.leases import (
    acquire,
    claim_due,
    expire_dead_local_owners,
    queue_stats,
    release,
    release_all,
    renew,
    save_queues,
)
from durably.adapters.sqlite.plans import append, pending_inbox, read_inbox, write_batch
from durably.adapters.sqlite.schedules import read_schedules, touch_schedules, write_schedule
from durably.adapters.store import GroupCommit
from durably.domain.errors import StorageError
from durably.domain.inbox import AppendOutcome, InboxMessage, Outgoing
from durably.domain.lease import LeaseHold
from durably.domain.queues import ClaimScope, Queue, QueueStats
from durably.domain.schedules import StoredSchedule
from durably.ports import Claimed, InstanceRow, InstanceRuntime

__all__ = ["SqliteHost"]


def _within(
    queues: Collection[str] | None, workflows: Collection[str] | None
) -> tuple[str, list[object]]:
    """The condition (on ``i``, the instances) of these queues and workflows."""
    parts: list[str] = ["1 = 1"]
    params: list[object] = []
    for column, names in (("queue", queues), ("workflow", workflows)):
        if names is not None:
            listed = sorted(names)
            parts.append(f"i.{column} IN ({', '.join('?' * len(listed))})")
            params.extend(listed)
    return " AND ".join(parts), params


_ROW = "id, workflow, status, created_at, updated_at, lease_owner, lease_expires_at"
_LISTED = ", ".join("i." + column for column in _ROW.split(", ")) + ", a.due_at"


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _row(values: Sequence[object]) -> InstanceRow:
    return InstanceRow(*values)  # type: ignore[arg-type]


class SqliteHost:
    """Hosts instances in one SQLite file (an ``InstanceHost`` and ``InstanceStore``)."""

    commits_renew_lease = False
    """A step's commit only reads its lease (one page written per step); the heartbeat
    and the commits that write a status extend it."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "FULL",
        clock: Clock | None = None,
        busy_timeout_ms: int = 10_000,
        read_only: bool = False,
    ) -> None:
        self.db = SqliteDatabase(
            path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms, read_only=read_only
        )
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._group = GroupCommit(self._write_batch, self._write_at_once)
        self.commits = 0
        """Transactions committed (grouped commits count once)."""

    @property
    def path(self) -> str:
        """The database file."""
        return self.db.path

    def now(self) -> int:
        """The host's clock (epoch ms)."""
        return self.clock.now()

    async def open(self) -> None:
        """Connect and migrate (read-only: check that the file is a durably database)."""
        await self.db.open()

    async def close(self) -> None:
        """Commit what waits, then close the connections."""
        await self._group.drain()
        await self.db.close()

    def runtime(self, instance_id: str, lease: LeaseHold | None = None) -> InstanceRuntime:
        """The runtime of one instance (fenced by ``lease`` when given)."""
        return instance_runtime(self, instance_id, lease)

    # -- commits ----------------------------------------------------------------------------

    async def commit(self, plan: CommitPlan) -> CommitOutcome:
        """Commit ``plan``, grouped with the plans of other instances that wait."""
        return await self._group.commit(plan)

    def _write_at_once(self, batch: list[CommitPlan]) -> list[CommitOutcome | StorageError] | None:
        """Commit ``batch`` on the loop's connection, unless the database is locked."""
        try:
            self.db.verify()  # a commit into a deleted file would be lost without a word
        except StorageError as e:
            return [e] * len(batch)
        try:
            outcomes = self.db.run_at_once(lambda conn: write_batch(conn, batch), "commit")
        except StorageError as e:
            return self._one_by_one(batch, e)
        if outcomes is not None:
            self.commits += 1
        return outcomes

    async def _write_batch(self, batch: list[CommitPlan]) -> list[CommitOutcome | StorageError]:
        """Commit ``batch``, waiting for the lock in the thread if need be."""
        try:
            self.db.verify()
            outcomes = await self.db.run(lambda conn: write_batch(conn, batch), "commit")
        except StorageError as e:
            return self._one_by_one(batch, e)
        self.commits += 1
        return outcomes

    def _one_by_one(
        self, batch: list[CommitPlan], error: StorageError
    ) -> list[CommitOutcome | StorageError]:
        """A batch failed as a whole: each plan's own outcome, so that a plan that breaks
        a transaction (a value the database refuses, say) fails alone."""
        if len(batch) == 1:
            return [error]
        outcomes: list[CommitOutcome | StorageError] = []
        for plan in batch:
            try:
                alone = self.db.run_at_once(functools.partial(write_batch, plans=[plan]), "commit")
            except StorageError as e:
                alone = [e]
            outcomes.append(error if alone is None else alone[0])
            if alone is not None and not isinstance(alone[0], StorageError):
                self.commits += 1
        return outcomes

    async def append(self, message: Outgoing, now: int) -> AppendOutcome:
        """Append ``message`` to its instance's inbox (``append``)."""
        outcome = await self.db.run(lambda conn: append(conn, message, now), "append")
        if outcome.seq is not None:
            self.commits += 1
        return outcome

    # -- reads ------------------------------------------------------------------------------

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        def query(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
            return conn.execute(sql, params).fetchall()

        return await self.db.run(query)

    async def read(self, instance_id: str, key: str) -> str | None:
        """The JSON text under ``key``."""
        rows = await self._query(
            "SELECT value FROM kv WHERE instance_id = ? AND key = ?", (instance_id, key)
        )
        return str(rows[0][0]) if rows else None

    async def read_many(self, instance_id: str, keys: Sequence[str]) -> dict[str, str]:
        """The JSON text of those of ``keys`` that exist."""
        marks = ",".join("?" * len(keys))
        rows = await self._query(
            f"SELECT key, value FROM kv WHERE instance_id = ? AND key IN ({marks})",
            (instance_id, *keys),
        )
        return {str(k): str(v) for k, v in rows}

    async def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """Every key under ``prefix`` with its JSON text."""
        if not prefix:
            rows = await self._query(
                "SELECT key, value FROM kv WHERE instance_id = ?", (instance_id,)
            )
        else:
            rows = await self._query(
                "SELECT key, value FROM kv WHERE instance_id = ? AND key >= ? AND key < ?",
                (instance_id, prefix, _prefix_end(prefix)),
            )
        return {str(k): str(v) for k, v in rows}

    async def read_alarm(self, instance_id: str) -> int | None:
        """The instance's alarm time."""
        rows = await self._query("SELECT due_at FROM alarms WHERE instance_id = ?", (instance_id,))
        return int(rows[0][0]) if rows else None  # type: ignore[call-overload]

    async def pending_inbox(self, instance_id: str) -> tuple[list[InboxMessage], int]:
        """The unconsumed messages, and the number of the last one."""
        return await self.db.run(lambda conn: pending_inbox(conn, instance_id))

    async def read_inbox(self, instance_id: str) -> list[InboxMessage]:
        """Every message of an instance, in delivery order."""
        return await self.db.run(lambda conn: read_inbox(conn, instance_id))

    async def instance(self, instance_id: str) -> InstanceRow | None:
        """The instance's row."""
        rows = await self._query(f"SELECT {_ROW} FROM instances WHERE id = ?", (instance_id,))
        return _row(rows[0]) if rows else None

    async def list_instances(
        self, status: str | None, workflow: str | None, limit: int
    ) -> list[InstanceRow]:
        """Instances by status and/or workflow, most recently updated first (indexed)."""
        where, params = [], []
        if status is not None:
            where.append("i.status = ?")
            params.append(status)
        if workflow is not None:
            where.append("i.workflow = ?")
            params.append(workflow)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._query(
            f"SELECT {_LISTED} FROM instances i LEFT JOIN alarms a ON a.instance_id = i.id"
            f"{clause} ORDER BY i.updated_at DESC, i.id LIMIT ?",
            [*params, limit],
        )
        return [_row(row) for row in rows]

    async def next_due(
        self, queues: Collection[str] | None = None, workflows: Collection[str] | None = None
    ) -> tuple[int | None, int | None]:
        """The earliest alarm of ``queues``' instances of ``workflows``, and of the others'
        (``InstanceHost.next_due``)."""
        if queues is None and workflows is None:
            rows = await self._query("SELECT MIN(due_at), NULL FROM alarms")
        elif workflows is None:
            where, params = _within(queues, None)
            rows = await self._query(
                "SELECT MIN(a.due_at), NULL FROM alarms a JOIN instances i"
                f" ON i.id = a.instance_id WHERE {where}",
                params,
            )
        else:
            where, params = _within(queues, None)
            flows = sorted(workflows)
            known = f"i.workflow IN ({', '.join('?' * len(flows))})"
            rows = await self._query(
                f"SELECT MIN(CASE WHEN {known} THEN a.due_at END),"
                f" MIN(CASE WHEN {known} THEN NULL ELSE a.due_at END)"
                f" FROM alarms a JOIN instances i ON i.id = a.instance_id WHERE {where}",
                [*flows, *flows, *params],
            )
        mine, other = rows[0] if rows else (None, None)
        return (
            None if mine is None else int(mine),  # type: ignore[call-overload]
            None if other is None else int(other),  # type: ignore[call-overload]
        )

    async def due_elsewhere(
        self, now: int, queues: Collection[str], workflows: Collection[str], limit: int
    ) -> list[InstanceRow]:
        """Due, free instances of ``queues`` whose workflow is none of ``workflows``."""
        names, flows = sorted(queues), sorted(workflows)
        rows = await self._query(
            f"SELECT {', '.join('i.' + c for c in _ROW.split(', '))} FROM alarms a"
            " JOIN instances i ON i.id = a.instance_id"
            " WHERE a.due_at <= ? AND (i.lease_owner IS NULL OR i.lease_expires_at <= ?)"
            f" AND i.queue IN ({', '.join('?' * len(names))})"
            f" AND i.workflow NOT IN ({', '.join('?' * len(flows))})"
            " ORDER BY a.due_at LIMIT ?",
            [now, now, *names, *flows, limit],
        )
        return [InstanceRow(*row) for row in rows]  # type: ignore[arg-type]

    # -- leases -----------------------------------------------------------------------------

    async def claim_due(
        self, owner: str, now: int, lease_ms: int, limit: int, scope: ClaimScope | None = None
    ) -> list[Claimed]:
        """Lease due instances (``leases.claim_due``)."""
        if limit <= 0:
            return []
        return await self.db.run(
            lambda conn: claim_due(conn, owner, now, lease_ms, limit, scope), "claim"
        )

    async def save_queues(self, queues: Sequence[Queue], now: int) -> None:
        """Store the queues' limits."""
        await self.db.run(lambda conn: save_queues(conn, list(queues), now), "save_queues")

    async def queue_stats(self) -> list[QueueStats]:
        """Waiting and running instances per queue, with the stored limits."""
        return await self.db.run(queue_stats, "queue_stats")

    async def read_schedules(self) -> list[StoredSchedule]:
        """Every stored schedule."""
        return await self.db.run(read_schedules, "read_schedules")

    async def write_schedule(
        self, row: StoredSchedule, expected: int | None, seen_at: int | None = None
    ) -> bool:
        """Store a schedule (a compare-and-set on its version)."""
        return await self.db.run(
            lambda conn: write_schedule(conn, row, expected, seen_at), "write_schedule"
        )

    async def touch_schedules(self, ids: Collection[str], now: int) -> None:
        """The heartbeat of an open engine's schedules."""
        await self.db.run(lambda conn: touch_schedules(conn, ids, now), "touch_schedules")

    async def acquire(self, instance_id: str, owner: str, now: int, lease_ms: int) -> bool:
        """Lease one instance."""
        return await self.db.run(
            lambda conn: acquire(conn, instance_id, owner, now, lease_ms), "acquire"
        )

    async def release(self, instance_id: str, owner: str, wake_at: int | None = None) -> None:
        """Give a lease back."""
        await self.db.run(lambda conn: release(conn, instance_id, owner, wake_at), "release")

    async def release_all(self, owner: str, now: int) -> int:
        """Give back every lease of ``owner``."""
        return await self.db.run(lambda conn: release_all(conn, owner, now), "release")

    async def renew(self, owner: str, now: int, lease_ms: int) -> list[str]:
        """Extend every lease of ``owner``."""
        return await self.db.run(lambda conn: renew(conn, owner, now, lease_ms), "renew")

    async def expire_dead_local_owners(self, now: int) -> int:
        """Expire the leases of dead local processes."""
        return await self.db.run(lambda conn: expire_dead_local_owners(conn, now), "expire")

    async def check(self) -> None:
        """``StorageError`` when the database file was deleted or replaced under us."""
        self.db.verify()

    async def wait_for_alarm(self, timeout_s: float) -> None:
        """SQLite cannot notify across processes: the worker polls at its interval."""
        await asyncio.sleep(timeout_s)
