"""Leases over SQLite: claiming due instances, renewing, releasing, expiring dead owners.

Plain functions over a connection, each one transaction, run by ``SqliteDatabase.run``.
"""

from __future__ import annotations

import socket
import sqlite3

from durably.adapters.sqlite.database import transaction
from durably.domain.owner import local_owner_is_dead
from durably.ports import Claimed

__all__ = ["claim_due", "acquire", "release", "release_all", "renew", "expire_dead_local_owners"]


def claim_due(
    conn: sqlite3.Connection, owner: str, now: int, lease_ms: int, limit: int
) -> list[Claimed]:
    """Take the lease of up to ``limit`` due instances whose lease is free or expired.

    Their alarms move to the lease's expiry: should this owner die, they come due then.
    """
    expires = now + lease_ms
    with transaction(conn):
        rows = conn.execute(
            "UPDATE instances SET lease_owner = ?, lease_expires_at = ?"
            " WHERE id IN (SELECT a.instance_id FROM alarms a"
            "   JOIN instances i ON i.id = a.instance_id"
            "   WHERE a.due_at <= ? AND (i.lease_owner IS NULL OR i.lease_expires_at <= ?)"
            "   ORDER BY a.due_at LIMIT ?)"
            " RETURNING id, inbox_seq",
            (owner, expires, now, now, limit),
        ).fetchall()
        claimed = [Claimed(str(r[0]), int(r[1])) for r in rows]
        conn.executemany(
            "UPDATE alarms SET due_at = ? WHERE instance_id = ?",
            [(expires, c.instance_id) for c in claimed],
        )
    return claimed


def acquire(
    conn: sqlite3.Connection, instance_id: str, owner: str, now: int, lease_ms: int
) -> bool:
    """Take the lease of one instance if it is free, expired or already ours."""
    with transaction(conn):
        rows = conn.execute(
            "UPDATE instances SET lease_owner = ?, lease_expires_at = ? WHERE id = ?"
            " AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at <= ?) RETURNING id",
            (owner, now + lease_ms, instance_id, owner, now),
        ).fetchall()
    return bool(rows)


def release(conn: sqlite3.Connection, instance_id: str, owner: str, wake_at: int | None) -> None:
    """Give the lease back (a no-op when it is not ours); with ``wake_at``, a running
    instance comes due then."""
    with transaction(conn):
        released = conn.execute(
            "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = ? AND lease_owner = ? RETURNING status",
            (instance_id, owner),
        ).fetchone()
        if wake_at is not None and released is not None and released[0] == "Running":
            conn.execute(
                "UPDATE alarms SET due_at = min(due_at, ?) WHERE instance_id = ?",
                (wake_at, instance_id),
            )


def release_all(conn: sqlite3.Connection, owner: str, now: int) -> int:
    """Give back every lease of ``owner``; its instances come due at ``now`` (a claim
    moved their alarms to the lease's expiry)."""
    with transaction(conn):
        conn.execute(
            "UPDATE alarms SET due_at = min(due_at, ?) WHERE instance_id IN"
            " (SELECT id FROM instances WHERE lease_owner = ?)",
            (now, owner),
        )
        released = conn.execute(
            "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE lease_owner = ?",
            (owner,),
        ).rowcount
    return int(released)


def renew(conn: sqlite3.Connection, owner: str, now: int, lease_ms: int) -> list[str]:
    """Extend every lease of ``owner`` (its heartbeat), and the alarms behind them; the ids
    of the instances whose lease it extended."""
    expires = now + lease_ms
    with transaction(conn):
        rows = conn.execute(
            "UPDATE instances SET lease_expires_at = ? WHERE lease_owner = ? RETURNING id",
            (expires, owner),
        ).fetchall()
        conn.execute(
            "UPDATE alarms SET due_at = ? WHERE due_at < ? AND instance_id IN"
            " (SELECT id FROM instances WHERE lease_owner = ? AND status = 'Running')",
            (expires, expires, owner),
        )
    return [str(r[0]) for r in rows]


def expire_dead_local_owners(conn: sqlite3.Connection, now: int) -> int:
    """Expire at once the leases held by dead processes of this host; returns how many."""
    host = socket.gethostname()
    owners = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT lease_owner FROM instances WHERE lease_owner LIKE ?", (f"{host}:%",)
        ).fetchall()
    ]
    dead = [o for o in owners if local_owner_is_dead(o)]
    for owner in dead:
        release_all(conn, owner, now)
    return len(dead)
