"""A unit of work as statements inside a transaction (the grouped commit of PostgreSQL).

The transaction path of ``PostgresHost``: several units at once (each under a
savepoint), or a unit that does not fit one statement (``single.py``).
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from durably.adapters.commit_group import (
    InstanceExists,
    LeaseLost,
    Waiting,
    alarm_change,
    new_instance_row,
    releases_lease,
    status_tag,
)
from durably.adapters.postgres.steps import FENCED_KEYS
from durably.adapters.unit_of_work import UNCHANGED
from durably.domain import keys

__all__ = ["INSTANCE_COLUMNS", "UnitStatements"]

INSTANCE_COLUMNS = "id, workflow, status, created_at, updated_at, lease_owner, lease_expires_at"
_ROW = INSTANCE_COLUMNS


class UnitStatements:
    """Writes one unit through a cursor in an open transaction (tables of one schema)."""

    def __init__(self, kv: str, alarms: str, instances: str) -> None:
        self.kv, self.alarms, self.instances = kv, alarms, instances

    async def apply(self, cur: psycopg.AsyncCursor[Any], waiting: Waiting, now: int) -> bool:
        """Apply one unit; returns whether it set an alarm (to announce)."""
        iid, unit, owner = waiting.instance_id, waiting.unit, waiting.owner
        expires = now + waiting.lease_ms
        tag = waiting.tag = status_tag(unit.writes.get(keys.STATUS))
        name_text = unit.writes.get(keys.NAME)
        # The instance row first: it takes the row lock that serializes us against claims.
        if name_text is not None and not unit.cleared:
            await cur.execute(
                f"INSERT INTO {self.instances} ({_ROW}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                new_instance_row(waiting, tag, json.loads(name_text), now),
            )
            if cur.rowcount == 0:
                raise InstanceExists(f"instance {iid!r} already exists")
            waiting.observed = dict.fromkeys(FENCED_KEYS)  # a new instance: nobody cancelled it
        elif owner is not None:
            release = releases_lease(tag)
            # Fenced; and it reads back what a cancel from elsewhere may have written.
            await cur.execute(
                f"UPDATE {self.instances} SET"
                " lease_owner = CASE WHEN %s THEN NULL ELSE lease_owner END,"
                " lease_expires_at = CASE WHEN %s THEN NULL ELSE %s END,"
                " status = COALESCE(%s, status),"
                " updated_at = CASE WHEN %s::text IS NULL THEN updated_at ELSE %s END"
                " WHERE id = %s AND lease_owner = %s RETURNING "
                + ", ".join(
                    f"(SELECT value::text FROM {self.kv} WHERE instance_id = %s AND key = %s)"
                    for _ in FENCED_KEYS
                ),
                (
                    *(release, release, expires, tag, tag, now, iid, owner),
                    *(part for key in FENCED_KEYS for part in (iid, key)),
                ),
            )
            fence = await cur.fetchone()
            if fence is None:
                raise LeaseLost(f"lease of instance {iid!r} is no longer held by {owner}")
            waiting.observed = dict(zip(FENCED_KEYS, fence, strict=True))
        elif tag is not None:
            await cur.execute(
                f"UPDATE {self.instances} SET status = %s, updated_at = %s WHERE id = %s",
                (tag, now, iid),
            )
        if unit.cleared:
            await cur.execute(f"DELETE FROM {self.kv} WHERE instance_id = %s", (iid,))
        puts = [(iid, k, v) for k, v in unit.writes.items() if v is not None]
        if puts:
            await cur.executemany(
                f"INSERT INTO {self.kv} (instance_id, key, value) VALUES (%s, %s, %s::jsonb)"
                " ON CONFLICT (instance_id, key) DO UPDATE SET value = EXCLUDED.value",
                puts,
            )
        deletes = [(iid, k) for k, v in unit.writes.items() if v is None]
        if deletes:
            await cur.executemany(
                f"DELETE FROM {self.kv} WHERE instance_id = %s AND key = %s", deletes
            )
        change, due = alarm_change(waiting, tag, now)
        if change == "delete":
            await cur.execute(f"DELETE FROM {self.alarms} WHERE instance_id = %s", (iid,))
        elif change == "set":
            await cur.execute(
                f"INSERT INTO {self.alarms} (instance_id, due_at) VALUES (%s, %s)"
                " ON CONFLICT (instance_id) DO UPDATE SET due_at = EXCLUDED.due_at",
                (iid, due),
            )
            return unit.alarm is not UNCHANGED  # an alarm of its own: announce it
        return False
