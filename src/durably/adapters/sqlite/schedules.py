"""The schedules table over SQLite: plain functions over a connection, each one
transaction, run by ``SqliteDatabase.run``."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from durably.adapters.schedule_rows import COLUMNS, schedule_of, values_of
from durably.adapters.sqlite.database import transaction
from durably.domain.schedules import StoredSchedule

__all__ = ["read_schedules", "write_schedule", "touch_schedules"]

_LIST = ", ".join(COLUMNS)


def read_schedules(conn: sqlite3.Connection) -> list[StoredSchedule]:
    """Every stored schedule, by id."""
    rows = conn.execute(f"SELECT {_LIST} FROM schedules ORDER BY id").fetchall()
    return [schedule_of(row) for row in rows]


def write_schedule(
    conn: sqlite3.Connection, row: StoredSchedule, expected: int | None, seen_at: int | None
) -> bool:
    """Insert ``row`` if its id is free (``expected`` is ``None``), else replace the
    stored one if it is at version ``expected`` (and was seen at ``seen_at``, if given)."""
    values = values_of(row)
    with transaction(conn):
        if expected is None:
            cursor = conn.execute(
                f"INSERT INTO schedules ({_LIST}) VALUES ({', '.join('?' * len(COLUMNS))})"
                " ON CONFLICT (id) DO NOTHING",
                values,
            )
        else:
            # The heartbeat never goes back (a writer's read may predate a touch).
            sets = ", ".join(
                "seen_at = max(seen_at, ?)" if c == "seen_at" else f"{c} = ?" for c in COLUMNS[1:]
            )
            seen = "" if seen_at is None else " AND seen_at = ?"
            cursor = conn.execute(
                f"UPDATE schedules SET {sets} WHERE id = ? AND version = ?{seen}",
                (*values[1:], row.id, expected, *(() if seen_at is None else (seen_at,))),
            )
        return cursor.rowcount == 1


def touch_schedules(conn: sqlite3.Connection, ids: Collection[str], now: int) -> None:
    """Mark ``ids`` seen at ``now`` (never back)."""
    with transaction(conn):
        conn.executemany(
            "UPDATE schedules SET seen_at = max(seen_at, ?) WHERE id = ?",
            [(now, iid) for iid in sorted(ids)],
        )
