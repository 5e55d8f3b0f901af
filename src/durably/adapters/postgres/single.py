"""One unit of work, one statement: the start and the end of a workflow over PostgreSQL.

A grouped commit that carries a single unit (every commit of a workflow run alone) does
not need a transaction of four or five statements: the unit's whole effect is one
statement of data-modifying CTEs, in autocommit (its own transaction, one round trip).

- A creation (the unit writes the workflow's name) inserts the instance row with
  ``ON CONFLICT DO NOTHING``; its rows and its alarm are written only when the row was
  inserted, so an instance that exists already is refused and left untouched.
- A fenced unit (its owner's lease) updates the instance row only where the lease is
  still held, and writes its rows, deletions and alarm only where it did; the keys a
  cancel from another process may write are read back, as the step statement does.

Units of any other shape (a clear, an unfenced status change) take the transaction path.
"""

from __future__ import annotations

import json
from typing import Any

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
from durably.domain.errors import StorageError

__all__ = ["SingleStatements", "fits_one_statement"]


def fits_one_statement(waiting: Waiting) -> bool:
    """Whether ``waiting`` is a creation or a fenced unit (and no clear)."""
    unit = waiting.unit
    if unit.cleared:
        return False
    if keys.NAME in unit.writes:
        return unit.writes[keys.NAME] is not None
    return waiting.owner is not None


class SingleStatements:
    """The two statements over tables ``kv``, ``alarms``, ``instances`` of one schema."""

    def __init__(self, kv: str, alarms: str, instances: str, channel: str) -> None:
        rows = (
            "unnest(%(put_keys)s::text[], %(put_values)s::text[]) AS r(key, value)"
            " ON CONFLICT (instance_id, key) DO UPDATE SET value = EXCLUDED.value"
        )
        tail = (
            f" del AS (DELETE FROM {kv} WHERE instance_id IN (SELECT id FROM t)"
            " AND key = ANY(%(deleted)s::text[])),"
            f" unset AS (DELETE FROM {alarms} WHERE instance_id IN (SELECT id FROM t)"
            " AND %(alarm)s::text = 'delete'),"
            f" alarm AS (INSERT INTO {alarms} (instance_id, due_at)"
            " SELECT id, %(due)s::bigint FROM t WHERE %(alarm)s::text = 'set'"
            " ON CONFLICT (instance_id) DO UPDATE SET due_at = EXCLUDED.due_at)"
        )
        # pg_notify in the final SELECT: a CTE that only reads runs only if used.
        notify = f"CASE WHEN %(notify)s::boolean THEN pg_notify('{channel}', '') END"
        self.create = (
            f"WITH t AS (INSERT INTO {instances} (id, workflow, status, created_at,"
            " updated_at, lease_owner, lease_expires_at) VALUES (%(id)s::text,"
            " %(workflow)s::text, %(tag)s::text, %(now)s::bigint, %(now)s::bigint,"
            " %(holder)s::text, %(expires)s::bigint)"
            " ON CONFLICT (id) DO NOTHING RETURNING id),"
            f" put AS (INSERT INTO {kv} (instance_id, key, value)"
            f" SELECT t.id, r.key, r.value::jsonb FROM t, {rows}),"
            f"{tail} SELECT t.id, {notify} FROM t"
        )
        read_back = ", ".join(
            f"(SELECT value::text FROM {kv} WHERE instance_id = t.id AND key = '{key}')"
            for key in FENCED_KEYS
        )
        self.fenced = (
            f"WITH t AS (UPDATE {instances} SET"
            " lease_owner = CASE WHEN %(release)s::boolean THEN NULL ELSE lease_owner END,"
            " lease_expires_at = CASE WHEN %(release)s::boolean THEN NULL"
            " ELSE %(expires)s::bigint END,"
            " status = COALESCE(%(tag)s::text, status),"
            " updated_at = CASE WHEN %(tag)s::text IS NULL THEN updated_at ELSE %(now)s::bigint END"
            # By primary key only, whatever the generic plan (as in steps.py: the index on
            # lease_owner cannot serve IS NOT DISTINCT FROM; the owner is never NULL here).
            " WHERE id = %(id)s::text AND lease_owner IS NOT DISTINCT FROM %(owner)s::text"
            " RETURNING id),"
            f" put AS (INSERT INTO {kv} (instance_id, key, value)"
            f" SELECT t.id, r.key, r.value::jsonb FROM t, {rows}),"
            f"{tail} SELECT t.id, {notify}, {read_back} FROM t"
        )

    def query(self, waiting: Waiting, now: int) -> tuple[str, dict[str, Any]]:
        """The statement that commits ``waiting`` (it ``fits_one_statement``), and its
        parameters."""
        iid, unit, owner = waiting.instance_id, waiting.unit, waiting.owner
        expires = now + waiting.lease_ms
        tag = waiting.tag = status_tag(unit.writes.get(keys.STATUS))
        name_text = unit.writes.get(keys.NAME)
        alarm, due = alarm_change(waiting, tag, now)
        params: dict[str, Any] = {
            "id": iid,
            "now": now,
            "tag": tag,
            "expires": expires,
            "put_keys": [k for k, v in unit.writes.items() if v is not None],
            "put_values": [v for v in unit.writes.values() if v is not None],
            "deleted": [k for k, v in unit.writes.items() if v is None],
            "alarm": alarm,
            "due": due,
            "notify": alarm == "set" and unit.alarm is not UNCHANGED,
        }
        if name_text is not None:
            row = new_instance_row(waiting, tag, json.loads(name_text), now)
            params["workflow"], params["tag"] = row[1], row[2]
            params["holder"], params["expires"] = row[5], row[6]
            query = self.create
        else:
            params["owner"] = owner
            params["release"] = releases_lease(tag)
            query = self.fenced
        return query, params

    @staticmethod
    def settle(waiting: Waiting, rows: list[tuple[Any, ...]]) -> None:
        """From the rows of ``query``: the unit's ``observed`` keys; ``StorageError`` when
        it was refused (an instance that exists, a lease that is gone)."""
        iid, owner = waiting.instance_id, waiting.owner
        row = rows[0] if rows else None
        creating = keys.NAME in waiting.unit.writes
        if row is None:
            refused: Exception = (
                InstanceExists(f"instance {iid!r} already exists")
                if creating
                else LeaseLost(f"lease of instance {iid!r} is no longer held by {owner}")
            )
            raise StorageError("commit", keys.STATUS, refused) from refused
        if creating:
            waiting.observed = dict.fromkeys(FENCED_KEYS)  # a new instance: nobody cancelled it
        else:
            waiting.observed = dict(zip(FENCED_KEYS, row[2:], strict=True))
