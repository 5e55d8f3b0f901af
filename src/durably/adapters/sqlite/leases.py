"""Leases over SQLite: claiming due instances, renewing, releasing, expiring dead owners.

Plain functions over a connection, each one transaction, run by ``SqliteDatabase.run``.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Sequence

from durably.adapters.sqlite.database import transaction
from durably.domain.owner import local_owner_is_dead
from durably.domain.queues import ClaimScope, Queue, QueueStats, admit, stats_of_queues
from durably.ports import Claimed

__all__ = [
    "claim_due",
    "acquire",
    "release",
    "release_all",
    "renew",
    "expire_dead_local_owners",
    "save_queues",
    "queue_stats",
]


_FREE = "(i.lease_owner IS NULL OR i.lease_expires_at <= ?)"


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def claim_due(
    conn: sqlite3.Connection,
    owner: str,
    now: int,
    lease_ms: int,
    limit: int,
    scope: ClaimScope | None = None,
) -> list[Claimed]:
    """Take the lease of up to ``limit`` due instances (``InstanceHost.claim_due``), in
    one transaction: the write lock serializes every claim on the file, so the counts of
    the limited queues cannot change under it.

    Their alarms move to the lease's expiry: should this owner die, they come due then.
    """
    scope = scope if scope is not None else ClaimScope()
    expires = now + lease_ms
    limited = {q.name: q for q in scope.limits}
    served = sorted(scope.served)
    known, known_params = _known(scope)
    with transaction(conn):
        claimed: list[Claimed] = []
        # Those that need no new slot, in due order; a queue with a cap for this worker
        # is claimed apart, so that the cap holds.
        capped = {name for name, _ in scope.room}
        general = [q for q in served if q not in capped]
        if general:
            claimed += _take(
                conn,
                f"i.queue IN ({_marks(len(general))}) AND NOT (i.status = 'Queued' AND i.slot = 0"
                f" AND i.queue IN ({_marks(len(limited))})){known}",
                [*general, *limited, *known_params],
                "a.due_at",
                limit,
                owner,
                now,
                expires,
                slot=False,
            )
        for name in sorted(capped & set(served)):
            room = min(limit - len(claimed), scope.room_of(name) or 0)
            if room <= 0:
                continue
            new_slot = " AND NOT (i.status = 'Queued' AND i.slot = 0)" if name in limited else ""
            claimed += _take(
                conn,
                f"i.queue = ?{new_slot}{known}",
                [name, *known_params],
                "a.due_at",
                room,
                owner,
                now,
                expires,
                slot=False,
            )
        # Starts of the limited queues: best first, as many as their limits allow.
        for name in sorted(set(limited) & set(served)):
            room = limit - len(claimed)
            cap = scope.room_of(name)
            if cap is not None:
                room = min(room, cap - sum(1 for c in claimed if c.queue == name))
            if room <= 0:
                continue
            chosen = _admitted(conn, limited[name], now, room, known, known_params)
            if chosen:
                claimed += _take(
                    conn,
                    f"i.id IN ({_marks(len(chosen))})",
                    chosen,
                    "i.priority, i.seq, i.created_at, i.id",
                    len(chosen),
                    owner,
                    now,
                    expires,
                    slot=True,
                )
        conn.executemany(
            "UPDATE alarms SET due_at = ? WHERE instance_id = ?",
            [(expires, c.instance_id) for c in claimed],
        )
    return claimed


def _take(
    conn: sqlite3.Connection,
    where: str,
    params: Sequence[object],
    order: str,
    limit: int,
    owner: str,
    now: int,
    expires: int,
    *,
    slot: bool,
) -> list[Claimed]:
    """Lease up to ``limit`` due, free instances matching ``where`` (``slot``: they take a
    slot of their queue now)."""
    slot_set = ", slot = 1, slot_at = ?" if slot else ""
    rows = conn.execute(
        f"UPDATE instances SET lease_owner = ?, lease_expires_at = ?{slot_set}"
        " WHERE id IN (SELECT a.instance_id FROM alarms a"
        "   JOIN instances i ON i.id = a.instance_id"
        f"   WHERE a.due_at <= ? AND {_FREE} AND {where}"
        f"   ORDER BY {order} LIMIT ?)"
        " RETURNING id, inbox_seq, queue",
        (owner, expires, *((now,) if slot else ()), now, now, *params, limit),
    ).fetchall()
    return [Claimed(str(r[0]), int(r[1]), str(r[2])) for r in rows]


def _known(scope: ClaimScope) -> tuple[str, list[object]]:
    """The condition that keeps a claim to the workflows its worker has (and its values)."""
    if scope.workflows is None:
        return "", []
    names = sorted(scope.workflows)
    return f" AND i.workflow IN ({_marks(len(names))})", list(names)


def _admitted(
    conn: sqlite3.Connection,
    queue: Queue,
    now: int,
    room: int,
    known: str = "",
    known_params: Sequence[object] = (),
) -> list[str]:
    """The waiting instances of ``queue`` that may start now (``admit``)."""
    name = queue.name
    started = int(
        conn.execute(
            "SELECT count(*) FROM instances WHERE queue = ? AND slot = 1", (name,)
        ).fetchone()[0]
    )
    recent = 0
    window = queue.rate_limit
    if window is not None:
        recent = int(
            conn.execute(
                "SELECT count(*) FROM instances WHERE queue = ? AND slot_at > ?",
                (name, now - window[1]),
            ).fetchone()[0]
        )
    by_partition: dict[str | None, int] = {}
    fetch = room
    if queue.partition_concurrency is not None:
        fetch = max(room * 20, 1000)  # full partitions are skipped: look further
        for key, count in conn.execute(
            "SELECT partition_key, count(*) FROM instances WHERE queue = ? AND slot = 1"
            " GROUP BY partition_key",
            (name,),
        ).fetchall():
            by_partition[None if key is None else str(key)] = int(count)
    candidates = conn.execute(
        "SELECT i.id, i.partition_key FROM alarms a JOIN instances i ON i.id = a.instance_id"
        f" WHERE a.due_at <= ? AND {_FREE} AND i.queue = ? AND i.status = 'Queued'"
        f" AND i.slot = 0{known} ORDER BY i.priority, i.seq, i.created_at, i.id LIMIT ?",
        (now, now, name, *known_params, fetch),
    ).fetchall()
    waiting = [(str(r[0]), None if r[1] is None else str(r[1])) for r in candidates]
    return admit(queue, waiting, started, recent, by_partition, room)


def save_queues(conn: sqlite3.Connection, queues: list[Queue], now: int) -> None:
    """Store the queues' limits (replacing what another engine stored)."""
    with transaction(conn):
        conn.executemany(
            "INSERT INTO queues (name, concurrency, worker_concurrency, rate,"
            " partition_concurrency, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency,"
            " worker_concurrency = excluded.worker_concurrency, rate = excluded.rate,"
            " partition_concurrency = excluded.partition_concurrency,"
            " updated_at = excluded.updated_at",
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


def queue_stats(conn: sqlite3.Connection) -> list[QueueStats]:
    """Waiting and running instances per queue, with the stored limits."""
    counts = conn.execute(
        "SELECT queue, status, count(*) FROM instances"
        " WHERE status IN ('Queued', 'Running', 'Paused') GROUP BY queue, status"
    ).fetchall()
    limits = conn.execute(
        "SELECT name, concurrency, worker_concurrency, rate, partition_concurrency FROM queues"
    ).fetchall()
    return stats_of_queues(counts, limits)


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
