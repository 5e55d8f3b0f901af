"""Leases over SQLite: claiming due instances, renewing, releasing, expiring dead owners."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from durably.adapters.commit_group import GivenBack
from durably.adapters.owner import local_owner_is_dead
from durably.domain.errors import StorageError

__all__ = ["SqliteLeases"]


class SqliteLeases:
    """The lease statements of ``SqliteBackend`` (which provides ``conn`` and ``_query``)."""

    commits: int
    given_back: GivenBack

    @property
    def conn(self) -> sqlite3.Connection:  # pragma: no cover - provided by the backend
        """The open connection."""
        raise NotImplementedError

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        raise NotImplementedError  # pragma: no cover - provided by the backend

    @contextmanager
    def _immediate(self, operation: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StorageError(operation, None, e) from e
        self.commits += 1

    def _write(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        with self._immediate("write") as conn:
            return conn.execute(sql, params).fetchall()

    def claim_due(self, owner: str, now: int, lease_ms: int, limit: int) -> list[str]:
        """Take the lease of up to ``limit`` due instances whose lease is free or expired.

        Their alarms move to the lease's expiry: should this owner die, they come due then.
        """
        if limit <= 0:
            return []
        expires = now + lease_ms
        with self._immediate("claim") as conn:
            rows = conn.execute(
                "UPDATE instances SET lease_owner = ?, lease_expires_at = ?"
                " WHERE id IN (SELECT a.instance_id FROM alarms a"
                "   JOIN instances i ON i.id = a.instance_id"
                "   WHERE a.due_at <= ? AND (i.lease_owner IS NULL OR i.lease_expires_at <= ?)"
                "   ORDER BY a.due_at LIMIT ?)"
                " RETURNING id",
                (owner, expires, now, now, limit),
            ).fetchall()
            ids = [str(r[0]) for r in rows]
            self.given_back.taken(ids, owner)
            conn.executemany(
                "UPDATE alarms SET due_at = ? WHERE instance_id = ?",
                [(expires, i) for i in ids],
            )
        return ids

    def acquire(self, instance_id: str, owner: str, now: int, lease_ms: int) -> bool:
        """Take the lease of one instance if it is free, expired or already ours."""
        rows = self._write(
            "UPDATE instances SET lease_owner = ?, lease_expires_at = ? WHERE id = ?"
            " AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at <= ?) RETURNING id",
            (owner, now + lease_ms, instance_id, owner, now),
        )
        if rows:
            self.given_back.taken((instance_id,), owner)
        return bool(rows)

    def release(self, instance_id: str, owner: str) -> None:
        """Give the lease back (a no-op when it is not ours)."""
        self._write(
            "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL"
            " WHERE id = ? AND lease_owner = ?",
            (instance_id, owner),
        )

    def renew(self, owner: str, now: int, lease_ms: int) -> None:
        """Extend every lease of ``owner`` (its heartbeat), and the alarms behind them."""
        expires = now + lease_ms
        with self._immediate("renew") as conn:
            conn.execute(
                "UPDATE instances SET lease_expires_at = ? WHERE lease_owner = ?",
                (expires, owner),
            )
            conn.execute(
                "UPDATE alarms SET due_at = ? WHERE due_at < ? AND instance_id IN"
                " (SELECT id FROM instances WHERE lease_owner = ? AND status = 'Running')",
                (expires, expires, owner),
            )

    def expire_dead_local_owners(self, now: int) -> int:
        """Expire at once the leases held by dead processes of this host; returns how many."""
        host = socket.gethostname()
        owners = [
            str(r[0])
            for r in self._query(
                "SELECT DISTINCT lease_owner FROM instances WHERE lease_owner LIKE ?",
                (f"{host}:%",),
            )
        ]
        dead = [o for o in owners if local_owner_is_dead(o)]
        for owner in dead:
            self._write(
                "UPDATE alarms SET due_at = ? WHERE instance_id IN"
                " (SELECT id FROM instances WHERE lease_owner = ?)",
                (now, owner),
            )
            self._write(
                "UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL"
                " WHERE lease_owner = ?",
                (owner,),
            )
        return len(dead)
