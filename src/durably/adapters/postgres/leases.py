"""Leases over PostgreSQL: claiming due instances, renewing, releasing, expiring dead owners.

Plain statements over a pooled connection (``PostgresHost`` runs them); a claim takes
rows with ``FOR UPDATE SKIP LOCKED``, so workers never wait for each other's claims.
"""

from __future__ import annotations

from typing import Any

import psycopg

from durably.domain.queues import ClaimScope, Queue, QueueStats, admit, stats_of_queues
from durably.ports import Claimed

__all__ = ["LeaseStatements"]

Connection = psycopg.AsyncConnection[Any]


class LeaseStatements:
    """The lease statements over the tables of one schema."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.instances, self.alarms = f"{schema}.instances", f"{schema}.alarms"

    async def claim_due(
        self,
        conn: Connection,
        owner: str,
        now: int,
        lease_ms: int,
        limit: int,
        scope: ClaimScope | None = None,
    ) -> list[Claimed]:
        """Lease up to ``limit`` due instances (``InstanceHost.claim_due``), in one
        transaction; move their alarms to the lease's expiry, so that they come due again
        only if this owner dies.

        The starts of a limited queue are taken under a transaction-level advisory lock
        of that queue: the claims of every worker count its slots one after the other.
        """
        scope = scope if scope is not None else ClaimScope()
        expires = now + lease_ms
        limited = {q.name: q for q in scope.limits}
        capped = {name for name, _ in scope.room}
        served = set(scope.served)
        known = "" if scope.workflows is None else " AND i.workflow = ANY(%(workflows)s)"
        flows = {"workflows": sorted(scope.workflows or ())}
        async with conn.transaction():
            claimed: list[Claimed] = []
            general = sorted(served - capped)
            if general:
                claimed += await self._take(
                    conn,
                    "i.queue = ANY(%(queues)s) AND NOT (i.status = 'Queued' AND NOT i.slot"
                    f" AND i.queue = ANY(%(limited)s)){known}",
                    {"queues": general, "limited": sorted(limited), **flows},
                    "a.due_at",
                    limit,
                    owner,
                    now,
                    expires,
                    slot=False,
                )
            for name in sorted(capped & served):
                room = min(limit - len(claimed), scope.room_of(name) or 0)
                if room <= 0:
                    continue
                new_slot = (
                    " AND NOT (i.status = 'Queued' AND NOT i.slot)" if name in limited else ""
                )
                claimed += await self._take(
                    conn,
                    f"i.queue = %(queue)s{new_slot}{known}",
                    {"queue": name, **flows},
                    "a.due_at",
                    room,
                    owner,
                    now,
                    expires,
                    slot=False,
                )
            for name in sorted(set(limited) & served):
                room = limit - len(claimed)
                cap = scope.room_of(name)
                if cap is not None:
                    room = min(room, cap - sum(1 for c in claimed if c.queue == name))
                if room <= 0:
                    continue
                chosen = await self._admitted(conn, limited[name], now, room, scope.workflows)
                if chosen:
                    claimed += await self._take(
                        conn,
                        "i.id = ANY(%(ids)s)",
                        {"ids": chosen},
                        "i.priority, i.seq, i.id",
                        len(chosen),
                        owner,
                        now,
                        expires,
                        slot=True,
                    )
            ids = [c.instance_id for c in claimed]
            if ids:
                await conn.execute(
                    f"UPDATE {self.alarms} SET due_at = %s WHERE instance_id = ANY(%s)",
                    (expires, ids),
                )
        return claimed

    async def _take(
        self,
        conn: Connection,
        where: str,
        params: dict[str, Any],
        order: str,
        limit: int,
        owner: str,
        now: int,
        expires: int,
        *,
        slot: bool,
    ) -> list[Claimed]:
        """Lease up to ``limit`` due, free instances matching ``where`` (``slot``: they take
        a slot of their queue now), skipping rows locked by others."""
        slot_set = ", slot = true, slot_at = %(now)s" if slot else ""
        cur = await conn.execute(
            f"WITH due AS (SELECT i.id FROM {self.alarms} a"
            f" JOIN {self.instances} i ON i.id = a.instance_id"
            " WHERE a.due_at <= %(now)s"
            " AND (i.lease_owner IS NULL OR i.lease_expires_at <= %(now)s)"
            f" AND {where} ORDER BY {order} LIMIT %(limit)s FOR UPDATE OF i SKIP LOCKED)"
            f" UPDATE {self.instances} AS t SET lease_owner = %(owner)s,"
            f" lease_expires_at = %(expires)s{slot_set}"
            " FROM due WHERE t.id = due.id RETURNING t.id, t.inbox_seq, t.queue",
            {**params, "now": now, "limit": limit, "owner": owner, "expires": expires},
        )
        return [Claimed(str(r[0]), int(r[1]), str(r[2])) for r in await cur.fetchall()]

    async def _admitted(
        self,
        conn: Connection,
        queue: Queue,
        now: int,
        room: int,
        workflows: frozenset[str] | None = None,
    ) -> list[str]:
        """The waiting instances of ``queue`` that may start now (``admit``), counted under
        the queue's lock."""
        name = queue.name
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"durably:{self.schema}:{name}",)
        )
        cur = await conn.execute(
            f"SELECT count(*) FILTER (WHERE slot),"
            " count(*) FILTER (WHERE slot_at > %s)"
            f" FROM {self.instances} WHERE queue = %s AND (slot OR slot_at > %s)",
            (now - (queue.rate_limit or (0, 0))[1], name, now - (queue.rate_limit or (0, 0))[1]),
        )
        row = await cur.fetchone()
        started, recent = (int(row[0]), int(row[1])) if row else (0, 0)
        if queue.rate_limit is None:
            recent = 0
        by_partition: dict[str | None, int] = {}
        fetch = room
        if queue.partition_concurrency is not None:
            fetch = max(room * 20, 1000)  # full partitions are skipped: look further
            cur = await conn.execute(
                f"SELECT partition_key, count(*) FROM {self.instances}"
                " WHERE queue = %s AND slot GROUP BY partition_key",
                (name,),
            )
            for key, count in await cur.fetchall():
                by_partition[key] = int(count)
        cur = await conn.execute(
            f"SELECT i.id, i.partition_key FROM {self.alarms} a"
            f" JOIN {self.instances} i ON i.id = a.instance_id"
            " WHERE a.due_at <= %s AND (i.lease_owner IS NULL OR i.lease_expires_at <= %s)"
            " AND i.queue = %s AND i.status = 'Queued' AND NOT i.slot"
            " AND (%s::text[] IS NULL OR i.workflow = ANY(%s::text[]))"
            " ORDER BY i.priority, i.seq, i.id LIMIT %s",
            (
                now,
                now,
                name,
                None if workflows is None else sorted(workflows),
                None if workflows is None else sorted(workflows),
                fetch,
            ),
        )
        waiting = [(str(r[0]), r[1]) for r in await cur.fetchall()]
        return admit(queue, waiting, started, recent, by_partition, room)

    async def save_queues(self, conn: Connection, queues: list[Queue], now: int) -> None:
        """Store the queues' limits (replacing what another engine stored)."""
        async with conn.transaction():
            cur = conn.cursor()
            await cur.executemany(
                f"INSERT INTO {self.schema}.queues (name, concurrency, worker_concurrency,"
                " rate, partition_concurrency, updated_at) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency,"
                " worker_concurrency = EXCLUDED.worker_concurrency, rate = EXCLUDED.rate,"
                " partition_concurrency = EXCLUDED.partition_concurrency,"
                " updated_at = EXCLUDED.updated_at",
                [
                    (
                        q.name,
                        q.concurrency,
                        q.worker_concurrency,
                        q.rate,
                        q.partition_concurrency,
                        now,
                    )
                    for q in queues
                ],
            )

    async def queue_stats(self, conn: Connection) -> list[QueueStats]:
        """Waiting and running instances per queue, with the stored limits."""
        cur = await conn.execute(
            f"SELECT queue, status, count(*) FROM {self.instances}"
            " WHERE status IN ('Queued', 'Running', 'Paused') GROUP BY queue, status"
        )
        counts = await cur.fetchall()
        cur = await conn.execute(
            "SELECT name, concurrency, worker_concurrency, rate, partition_concurrency"
            f" FROM {self.schema}.queues"
        )
        return stats_of_queues(counts, await cur.fetchall())

    async def acquire(
        self, conn: Connection, instance_id: str, owner: str, now: int, lease_ms: int
    ) -> bool:
        """Lease one instance if it is free, expired or already ours."""
        cur = await conn.execute(
            f"UPDATE {self.instances} SET lease_owner = %s, lease_expires_at = %s WHERE id = %s"
            " AND (lease_owner IS NULL OR lease_owner = %s OR lease_expires_at <= %s) RETURNING id",
            (owner, now + lease_ms, instance_id, owner, now),
        )
        return bool(await cur.fetchall())

    async def release(
        self, conn: Connection, instance_id: str, owner: str, wake_at: int | None
    ) -> None:
        """Give the lease back (a no-op when it is not ours); with ``wake_at``, a running
        instance comes due then."""
        await conn.execute(
            f"WITH released AS (UPDATE {self.instances} SET lease_owner = NULL,"
            " lease_expires_at = NULL WHERE id = %(id)s AND lease_owner = %(owner)s"
            " RETURNING status)"
            f" UPDATE {self.alarms} SET due_at = LEAST(due_at, %(wake)s::bigint)"
            " WHERE instance_id = %(id)s AND %(wake)s::bigint IS NOT NULL"
            " AND (SELECT status FROM released) = 'Running'",
            {"id": instance_id, "owner": owner, "wake": wake_at},
        )

    async def release_all(self, conn: Connection, owner: str, now: int) -> int:
        """Give back every lease of ``owner``; its instances come due at ``now`` (a claim
        moved their alarms to the lease's expiry)."""
        cur = await conn.execute(
            f"WITH mine AS (SELECT id FROM {self.instances} WHERE lease_owner = %(owner)s"
            " ORDER BY id FOR UPDATE),"
            f" due AS (UPDATE {self.alarms} AS a SET due_at = LEAST(a.due_at, %(now)s)"
            " FROM mine WHERE a.instance_id = mine.id)"
            f" UPDATE {self.instances} AS i SET lease_owner = NULL, lease_expires_at = NULL"
            " FROM mine WHERE i.id = mine.id",
            {"owner": owner, "now": now},
        )
        return cur.rowcount

    async def renew(self, conn: Connection, owner: str, now: int, lease_ms: int) -> list[str]:
        """Extend every lease of ``owner`` and the alarms behind its running instances.

        Rows locked by a transaction in flight are skipped (``SKIP LOCKED``), never waited
        for: a grouped commit of this owner locks its instance rows in its own order, so
        waiting here could deadlock against it (and a fenced commit renews the lease of
        its instance anyway); whatever is skipped is extended at the next beat.
        """
        expires = now + lease_ms
        cur = await conn.execute(
            f"WITH mine AS (SELECT id, status FROM {self.instances}"
            " WHERE lease_owner = %(owner)s ORDER BY id FOR UPDATE SKIP LOCKED),"
            f" leases AS (UPDATE {self.instances} AS i SET lease_expires_at = %(expires)s"
            " FROM mine WHERE i.id = mine.id RETURNING i.id),"
            f" due AS (SELECT a.instance_id FROM {self.alarms} AS a"
            " JOIN mine ON mine.id = a.instance_id"
            " WHERE mine.status = 'Running' AND a.due_at < %(expires)s"
            " FOR UPDATE OF a SKIP LOCKED),"
            f" moved AS (UPDATE {self.alarms} AS a SET due_at = %(expires)s"
            " FROM due WHERE a.instance_id = due.instance_id)"
            " SELECT id FROM leases",
            {"owner": owner, "expires": expires},
        )
        return [str(r[0]) for r in await cur.fetchall()]

    async def owners(self, conn: Connection) -> list[str]:
        """Every owner that holds a lease."""
        cur = await conn.execute(
            f"SELECT DISTINCT lease_owner FROM {self.instances} WHERE lease_owner IS NOT NULL"
        )
        return [str(r[0]) for r in await cur.fetchall()]
