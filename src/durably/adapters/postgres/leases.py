"""Leases over PostgreSQL: claiming due instances, renewing, releasing, expiring dead owners.

Plain statements over a pooled connection (``PostgresHost`` runs them); a claim takes
rows with ``FOR UPDATE SKIP LOCKED``, so workers never wait for each other's claims.
"""

from __future__ import annotations

from typing import Any

import psycopg

from durably.ports import Claimed

__all__ = ["LeaseStatements"]

Connection = psycopg.AsyncConnection[Any]


class LeaseStatements:
    """The lease statements over the tables of one schema."""

    def __init__(self, schema: str) -> None:
        self.instances, self.alarms = f"{schema}.instances", f"{schema}.alarms"

    async def claim_due(
        self, conn: Connection, owner: str, now: int, lease_ms: int, limit: int
    ) -> list[Claimed]:
        """Lease up to ``limit`` due instances; move their alarms to the lease's expiry,
        so that they come due again only if this owner dies."""
        expires = now + lease_ms
        async with conn.transaction():
            cur = await conn.execute(
                f"WITH due AS (SELECT i.id FROM {self.alarms} a"
                f" JOIN {self.instances} i ON i.id = a.instance_id"
                " WHERE a.due_at <= %s AND (i.lease_owner IS NULL OR i.lease_expires_at <= %s)"
                " ORDER BY a.due_at LIMIT %s FOR UPDATE OF i SKIP LOCKED)"
                f" UPDATE {self.instances} AS t SET lease_owner = %s, lease_expires_at = %s"
                " FROM due WHERE t.id = due.id RETURNING t.id, t.inbox_seq",
                (now, now, limit, owner, expires),
            )
            claimed = [Claimed(str(r[0]), int(r[1])) for r in await cur.fetchall()]
            ids = [c.instance_id for c in claimed]
            if ids:
                await conn.execute(
                    f"UPDATE {self.alarms} SET due_at = %s WHERE instance_id = ANY(%s)",
                    (expires, ids),
                )
        return claimed

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
