"""The SQLite backend: one WAL database file, commits grouped across instances, leases.

Commits of concurrent instances are grouped: each waits for the flush that the event
loop runs once it has nothing else ready, and one transaction (one fsync) serves every
unit of work that was waiting. Each unit is applied under a savepoint, so one unit
that loses its lease (fencing) or races a creation fails alone.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Literal

from durably.adapters.clock import Clock, SystemClock
from durably.adapters.commit_group import (
    LONGEST_WITHOUT_A_TURN_S,
    GivenBack,
    InstanceExists,
    LeaseLost,
    Waiting,
    alarm_change,
    loop_is_idle,
    new_instance_row,
    releases_lease,
    resolve,
    status_tag,
)
from durably.adapters.sqlite.leases import SqliteLeases
from durably.adapters.sqlite.schema import migrate
from durably.adapters.unit_of_work import UnitOfWork
from durably.domain import keys
from durably.domain.errors import StorageError
from durably.ports.host import InstanceRow

__all__ = ["SqliteBackend", "LeaseLost", "InstanceExists", "Synchronous"]

Synchronous = Literal["FULL", "NORMAL"]


# The lease holder and the keys a cancel from another process may have written.
_FENCE = (
    "SELECT i.lease_owner, s.value, c.value, r.value FROM instances AS i"
    " LEFT JOIN kv AS s ON s.instance_id = i.id AND s.key = ?"
    " LEFT JOIN kv AS c ON c.instance_id = i.id AND c.key = ?"
    " LEFT JOIN kv AS r ON r.instance_id = i.id AND r.key = ?"
    " WHERE i.id = ?"
)
_FENCED_KEYS = (keys.STATUS, keys.CANCELLED, keys.CANCEL_REASON)
_NOTHING_FENCED = dict.fromkeys(_FENCED_KEYS)


_ROWS_PER_INSERT = 100


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _upsert(rows: int) -> str:
    """One statement writing ``rows`` key-value rows (cheaper than ``executemany``)."""
    values = ", ".join(["(?, ?, ?)"] * rows)
    return (
        f"INSERT INTO kv (instance_id, key, value) VALUES {values}"
        " ON CONFLICT (instance_id, key) DO UPDATE SET value = excluded.value"
    )


def _prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class SqliteBackend(SqliteLeases):
    """Every instance of one database file: reads, grouped commits, alarms and leases."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "FULL",
        clock: Clock | None = None,
        busy_timeout_ms: int = 10_000,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = path
        self.synchronous = synchronous
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._waiting: list[Waiting] = []
        self._flush_scheduled = False
        self._last_turn = float("-inf")
        self.commits = 0
        self.given_back = GivenBack()
        self.schema_version_found: int | None = None

    # -- connection -----------------------------------------------------------------

    def open(self) -> None:
        """Connect, set WAL and the durability level, and run the migrations."""
        if self._conn is not None:
            return
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        except sqlite3.Error as e:
            raise StorageError("open", None, f"{self.path}: {e}") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            # The schema version is checked before anything else changes the file.
            self.schema_version_found = migrate(conn)
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except StorageError as e:
            conn.close()
            raise StorageError(e.operation, e.key, f"{self.path}: {e.cause}") from e
        except sqlite3.Error as e:
            conn.close()
            raise StorageError("open", None, f"{self.path}: {e}") from e
        self._conn = conn

    def close(self) -> None:
        """Close the connection (waiting commits are flushed first)."""
        if self._waiting:
            self._flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection."""
        if self._conn is None:
            raise StorageError("connect", None, "the SQLite backend is not open")
        return self._conn

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StorageError("read", None, e) from e

    # -- reads --------------------------------------------------------------------------

    def read(self, instance_id: str, key: str) -> str | None:
        """The JSON text under ``key``."""
        rows = self._query(
            "SELECT value FROM kv WHERE instance_id = ? AND key = ?", (instance_id, key)
        )
        return str(rows[0][0]) if rows else None

    def read_many(self, instance_id: str, keys: Sequence[str]) -> dict[str, str]:
        """The JSON text of those of ``keys`` that exist."""
        marks = ",".join("?" * len(keys))
        rows = self._query(
            f"SELECT key, value FROM kv WHERE instance_id = ? AND key IN ({marks})",
            (instance_id, *keys),
        )
        return {str(k): str(v) for k, v in rows}

    def read_prefix(self, instance_id: str, prefix: str) -> dict[str, str]:
        """Every key under ``prefix`` with its JSON text."""
        if not prefix:
            rows = self._query("SELECT key, value FROM kv WHERE instance_id = ?", (instance_id,))
        else:
            rows = self._query(
                "SELECT key, value FROM kv WHERE instance_id = ? AND key >= ? AND key < ?",
                (instance_id, prefix, _prefix_end(prefix)),
            )
        return {str(k): str(v) for k, v in rows}

    def read_alarm(self, instance_id: str) -> int | None:
        """The instance's alarm time."""
        rows = self._query("SELECT due_at FROM alarms WHERE instance_id = ?", (instance_id,))
        return int(rows[0][0]) if rows else None  # type: ignore[call-overload]

    def instance(self, instance_id: str) -> InstanceRow | None:
        """The instance's row."""
        rows = self._query(
            "SELECT id, workflow, status, created_at, updated_at, lease_owner, lease_expires_at"
            " FROM instances WHERE id = ?",
            (instance_id,),
        )
        return InstanceRow(*rows[0]) if rows else None  # type: ignore[arg-type]

    def list_instances(
        self, status: str | None, workflow: str | None, limit: int
    ) -> list[InstanceRow]:
        """Instances by status and/or workflow, most recently updated first (indexed)."""
        sql = (
            "SELECT id, workflow, status, created_at, updated_at, lease_owner, lease_expires_at"
            " FROM instances"
        )
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if workflow is not None:
            where.append("workflow = ?")
            params.append(workflow)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated_at DESC, id LIMIT ?"
        rows = self._query(sql, [*params, limit])
        return [InstanceRow(*row) for row in rows]  # type: ignore[arg-type]

    def next_due(self) -> int | None:
        """The earliest alarm time of any instance."""
        rows = self._query("SELECT MIN(due_at) FROM alarms")
        return None if not rows or rows[0][0] is None else int(rows[0][0])  # type: ignore[call-overload]

    # -- grouped commits ----------------------------------------------------------------

    async def commit(
        self, instance_id: str, unit: UnitOfWork, owner: str | None, lease_ms: int
    ) -> dict[str, str | None] | None:
        """Commit ``unit`` durably, grouped with whatever else is waiting.

        A fenced unit (``owner`` given) returns the cancel flag as its transaction read it.
        """
        if unit.is_empty():
            return None
        loop = asyncio.get_running_loop()
        if (
            not self._waiting
            and loop_is_idle(loop)
            and time.monotonic() - self._last_turn < LONGEST_WITHOUT_A_TURN_S
        ):
            # Nothing else is ready to run, so nothing could join a group before the next
            # turn of the loop: commit now, and spare the turn. (Not for long: timers such
            # as the lease heartbeat only run when the loop gets its turn.)
            alone = Waiting(instance_id, unit, owner, lease_ms, None)
            self._transaction([alone], [None])
            self.given_back.committed(alone)
            return alone.observed
        future = loop.create_future()
        waiting = Waiting(instance_id, unit, owner, lease_ms, future)
        self._waiting.append(waiting)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        await future
        self.given_back.committed(waiting)
        return waiting.observed

    def _flush(self) -> None:
        self._last_turn = time.monotonic()
        self._flush_scheduled = False
        batch, self._waiting = self._waiting, []
        if not batch:
            return
        errors: list[BaseException | None] = [None] * len(batch)
        try:
            self._transaction(batch, errors)
        except StorageError as e:
            errors = [e] * len(batch)
        resolve(batch, errors)

    def _transaction(self, batch: list[Waiting], errors: list[BaseException | None]) -> None:
        conn = self.conn
        now = self.clock.now()
        single = len(batch) == 1
        for attempt in range(5):
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if attempt == 4:
                    raise StorageError("commit", None, e) from e
                time.sleep(0.01 * 2**attempt)
        try:
            for i, waiting in enumerate(batch):
                try:
                    # A unit is refused before it writes anything: nothing to undo.
                    self._apply(conn, waiting, now)
                except (LeaseLost, InstanceExists) as e:
                    if single:
                        raise
                    errors[i] = StorageError("commit", keys.STATUS, e)
            conn.execute("COMMIT")
            self.commits += 1
        except (LeaseLost, InstanceExists) as e:
            conn.execute("ROLLBACK")
            raise StorageError("commit", keys.STATUS, e) from e
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError("commit", None, e) from e

    def _apply(self, conn: sqlite3.Connection, waiting: Waiting, now: int) -> None:
        iid, unit, owner = waiting.instance_id, waiting.unit, waiting.owner
        expires = now + waiting.lease_ms
        # First what may refuse the unit (a second creation, a lost lease), then the writes.
        tag = waiting.tag = status_tag(unit.writes.get(keys.STATUS))
        name_text = unit.writes.get(keys.NAME)
        if name_text is not None and not unit.cleared:
            try:
                conn.execute(
                    "INSERT INTO instances (id, workflow, status, created_at, updated_at,"
                    " lease_owner, lease_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    new_instance_row(waiting, tag, json.loads(name_text), now),
                )
            except sqlite3.IntegrityError as e:
                raise InstanceExists(f"instance {iid!r} already exists") from e
            waiting.observed = _NOTHING_FENCED  # a new instance: nobody could cancel it
        elif owner is not None:
            # Fencing is a read (a step's commit writes nothing else of the instance; the
            # heartbeat extends the lease), and the same read brings the keys that a
            # cancel from elsewhere may have written.
            fence = conn.execute(_FENCE, (*_FENCED_KEYS, iid)).fetchone()
            if fence is None or fence[0] != owner:
                raise LeaseLost(f"lease of instance {iid!r} is no longer held by {owner}")
            waiting.observed = dict(zip(_FENCED_KEYS, fence[1:], strict=True))
            if tag is not None:
                release = releases_lease(tag)
                conn.execute(
                    "UPDATE instances SET status = ?, updated_at = ?,"
                    " lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END,"
                    " lease_expires_at = CASE WHEN ? THEN NULL ELSE ? END"
                    " WHERE id = ?",
                    (tag, now, release, release, expires, iid),
                )
        elif tag is not None:
            conn.execute(
                "UPDATE instances SET status = ?, updated_at = ? WHERE id = ?", (tag, now, iid)
            )
        if unit.cleared:
            conn.execute("DELETE FROM kv WHERE instance_id = ?", (iid,))
        puts = [(k, v) for k, v in unit.writes.items() if v is not None]
        for start in range(0, len(puts), _ROWS_PER_INSERT):
            rows = puts[start : start + _ROWS_PER_INSERT]
            params: list[object] = []
            for key, value in rows:
                params += (iid, key, value)
            conn.execute(_upsert(len(rows)), params)
        deletes = [(iid, k) for k, v in unit.writes.items() if v is None]
        if deletes:
            conn.executemany("DELETE FROM kv WHERE instance_id = ? AND key = ?", deletes)
        change, due = alarm_change(waiting, tag, now)
        if change == "delete":
            conn.execute("DELETE FROM alarms WHERE instance_id = ?", (iid,))
        elif change == "set":
            conn.execute(
                "INSERT INTO alarms (instance_id, due_at) VALUES (?, ?)"
                " ON CONFLICT (instance_id) DO UPDATE SET due_at = excluded.due_at",
                (iid, due),
            )
