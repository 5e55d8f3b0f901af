"""Leases over PostgreSQL: claiming due instances, renewing, releasing, expiring dead owners."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from durably.adapters.commit_group import GivenBack
from durably.adapters.owner import local_owner_is_dead
from durably.domain.errors import StorageError

__all__ = ["PostgresLeases"]


class PostgresLeases:
    """The lease statements of ``PostgresHost`` (which provides the pool and table names)."""

    _pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]
    instances: str
    alarms: str
    commits: int
    given_back: GivenBack

    async def _fetch(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError  # pragma: no cover - provided by the host

    async def _write(self, query: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(query, params)
                rows = await cur.fetchall() if cur.description else []
        except psycopg.Error as e:
            raise StorageError("write", None, e) from e
        self.commits += 1
        return rows

    async def claim_due(self, owner: str, now: int, lease_ms: int, limit: int) -> list[str]:
        """Lease up to ``limit`` due instances (``FOR UPDATE SKIP LOCKED``); move their alarms
        to the lease's expiry, so that they come due again only if this owner dies."""
        if limit <= 0:
            return []
        expires = now + lease_ms
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    f"WITH due AS (SELECT i.id FROM {self.alarms} a"
                    f" JOIN {self.instances} i ON i.id = a.instance_id"
                    " WHERE a.due_at <= %s AND (i.lease_owner IS NULL OR i.lease_expires_at <= %s)"
                    " ORDER BY a.due_at LIMIT %s FOR UPDATE OF i SKIP LOCKED)"
                    f" UPDATE {self.instances} AS t SET lease_owner = %s, lease_expires_at = %s"
                    " FROM due WHERE t.id = due.id RETURNING t.id",
                    (now, now, limit, owner, expires),
                )
                ids = [str(r[0]) for r in await cur.fetchall()]
                self.given_back.taken(ids, owner)
                if ids:
                    await conn.execute(
                        f"UPDATE {self.alarms} SET due_at = %s WHERE instance_id = ANY(%s)",
                        (expires, ids),
                    )
        except psycopg.Error as e:
            raise StorageError("claim", None, e) from e
        self.commits += 1
        return ids

    async def acquire(self, instance_id: str, owner: str, now: int, lease_ms: int) -> bool:
        """Lease one instance if it is free, expired or already ours."""
        rows = await self._write(
            f"UPDATE {self.instances} SET lease_owner = %s, lease_expires_at = %s WHERE id = %s"
            " AND (lease_owner IS NULL OR lease_owner = %s OR lease_expires_at <= %s) RETURNING id",
            (owner, now + lease_ms, instance_id, owner, now),
        )
        if rows:
            self.given_back.taken((instance_id,), owner)
        return bool(rows)

    async def release(self, instance_id: str, owner: str) -> None:
        """Give the lease back (a no-op when it is not ours)."""
        await self._write(
            f"UPDATE {self.instances} SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = %s AND lease_owner = %s",
            (instance_id, owner),
        )

    def released_by_commit(self, instance_id: str, owner: str) -> bool:
        """Whether a commit of ``owner`` gave the lease back since ``owner`` took it."""
        return self.given_back.pop(instance_id, owner)

    async def renew(self, owner: str, now: int, lease_ms: int) -> None:
        """Extend every lease of ``owner`` and the alarms behind its running instances.

        Rows locked by a transaction in flight are skipped (``SKIP LOCKED``), never waited
        for: a grouped commit of this owner locks its instance rows in its own order, so
        waiting here would deadlock against it (and a fenced commit extends the lease of
        its instance anyway); whatever is skipped is extended at the next beat.
        """
        expires = now + lease_ms
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    f"WITH mine AS (SELECT id, status FROM {self.instances}"
                    " WHERE lease_owner = %(owner)s ORDER BY id FOR UPDATE SKIP LOCKED),"
                    f" leases AS (UPDATE {self.instances} AS i SET lease_expires_at = %(expires)s"
                    " FROM mine WHERE i.id = mine.id),"
                    f" due AS (SELECT a.instance_id FROM {self.alarms} AS a"
                    " JOIN mine ON mine.id = a.instance_id"
                    " WHERE mine.status = 'Running' AND a.due_at < %(expires)s"
                    " FOR UPDATE OF a SKIP LOCKED)"
                    f" UPDATE {self.alarms} AS a SET due_at = %(expires)s"
                    " FROM due WHERE a.instance_id = due.instance_id",
                    {"owner": owner, "expires": expires},
                )
        except psycopg.Error as e:
            raise StorageError("renew", None, e) from e

    async def expire_dead_local_owners(self, now: int) -> int:
        """Expire at once the leases held by dead processes of this host."""
        rows = await self._fetch(
            f"SELECT DISTINCT lease_owner FROM {self.instances} WHERE lease_owner IS NOT NULL"
        )
        dead = [str(r[0]) for r in rows if local_owner_is_dead(str(r[0]))]
        for owner in dead:
            await self._write(
                f"UPDATE {self.alarms} SET due_at = %s WHERE instance_id IN"
                f" (SELECT id FROM {self.instances} WHERE lease_owner = %s)",
                (now, owner),
            )
            await self._write(
                f"UPDATE {self.instances} SET lease_owner = NULL, lease_expires_at = NULL"
                " WHERE lease_owner = %s",
                (owner,),
            )
        return len(dead)
