"""The schedules table over PostgreSQL: statements over a pooled connection."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import psycopg

from durably.adapters.schedule_rows import COLUMNS, schedule_of, values_of
from durably.domain.schedules import StoredSchedule

__all__ = ["ScheduleStatements"]

Connection = psycopg.AsyncConnection[Any]

_LIST = ", ".join(COLUMNS)


class ScheduleStatements:
    """The statements of the schedules table of one schema."""

    def __init__(self, schema: str) -> None:
        self.table = f"{schema}.schedules"

    async def read(self, conn: Connection) -> list[StoredSchedule]:
        """Every stored schedule, by id."""
        cur = await conn.execute(f"SELECT {_LIST} FROM {self.table} ORDER BY id")
        return [schedule_of(row) for row in await cur.fetchall()]

    async def write(
        self, conn: Connection, row: StoredSchedule, expected: int | None, seen_at: int | None
    ) -> bool:
        """Insert ``row`` if its id is free (``expected`` is ``None``), else replace the
        stored one if it is at version ``expected`` (and was seen at ``seen_at``)."""
        values = values_of(row)
        marks = ["%s"] * len(COLUMNS)
        marks[COLUMNS.index("pending")] = "%s::jsonb"
        if expected is None:
            cur = await conn.execute(
                f"INSERT INTO {self.table} ({_LIST}) VALUES ({', '.join(marks)})"
                " ON CONFLICT (id) DO NOTHING",
                values,
            )
        else:
            # The heartbeat never goes back (a writer's read may predate a touch).
            sets = ", ".join(
                f"{c} = greatest({c}, {m})" if c == "seen_at" else f"{c} = {m}"
                for c, m in zip(COLUMNS[1:], marks[1:], strict=True)
            )
            seen = "" if seen_at is None else " AND seen_at = %s"
            cur = await conn.execute(
                f"UPDATE {self.table} SET {sets} WHERE id = %s AND version = %s{seen}",
                (*values[1:], row.id, expected, *(() if seen_at is None else (seen_at,))),
            )
        return cur.rowcount == 1

    async def touch(self, conn: Connection, ids: Collection[str], now: int) -> None:
        """Mark ``ids`` seen at ``now`` (never back)."""
        await conn.execute(
            f"UPDATE {self.table} SET seen_at = greatest(seen_at, %s) WHERE id = ANY(%s)",
            (now, sorted(ids)),
        )
