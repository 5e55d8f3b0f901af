"""The PostgreSQL statements of a commit plan (``adapters/plan.py``) and of an inbox append.

A plan is **one statement** of data-modifying CTEs, whatever its shape, prepared once
(a generic plan) on the commit connection:

- the instance row first: inserted (``ON CONFLICT DO NOTHING``) for a creation, or
  updated only where the owner still holds the lease for a fenced plan; the row lock
  orders the commit against claims and appends, and a fenced plan renews its lease;
- every other write (key-value rows, alarm, consumed messages) targets only the
  instances that the first part returned, so a refused plan writes nothing and raises
  nothing: its result row says ``applied = 0``;
- the result brings back the number of the instance's last inbox message.

A batch of plans is the same statement executed once per plan, pipelined in one
transaction (one round trip, one WAL flush).
"""

from __future__ import annotations

import json
from typing import Any

from durably.adapters.plan import CommitPlan, Create, Fenced
from durably.adapters.unit_of_work import ClearAlarm, SetAlarm
from durably.domain.inbox import InboxMessage

__all__ = ["PlanStatements", "plan_params", "message_of"]


def plan_params(plan: CommitPlan, notify: bool) -> dict[str, Any]:
    """The parameters of ``PlanStatements.commit`` for ``plan``."""
    write = plan.write
    mode, owner, release, expires = "unfenced", None, False, None
    workflow = holder = holder_expires = None
    if isinstance(write, Create):
        mode, workflow = "create", write.workflow
        holder, holder_expires = write.lease_owner, write.lease_expires_at
    elif isinstance(write, Fenced):
        mode, owner, release, expires = "fenced", write.owner, write.release, write.lease_expires_at
    alarm = plan.alarm
    return {
        "id": plan.instance_id,
        "mode": mode,
        "owner": owner,
        "release": release,
        "expires": expires,
        "workflow": workflow,
        "holder": holder,
        "holder_expires": holder_expires,
        "status": plan.status,
        "create_status": plan.status or "Pending",
        "now": plan.now,
        "clear": plan.clear,
        "put_keys": [k for k, _ in plan.upserts],
        "put_values": [v for _, v in plan.upserts],
        "deleted": list(plan.deletes),
        "alarm": "set"
        if isinstance(alarm, SetAlarm)
        else "clear"
        if isinstance(alarm, ClearAlarm)
        else "keep",
        "due": alarm.at if isinstance(alarm, SetAlarm) else None,
        "consume": list(plan.consume),
        "notify": notify,
    }


class PlanStatements:
    """The statements over the tables of one schema."""

    def __init__(self, schema: str, channel: str) -> None:
        kv, alarms = f"{schema}.kv", f"{schema}.alarms"
        instances, inbox = f"{schema}.instances", f"{schema}.inbox"
        self.commit = (
            "WITH created AS ("
            f" INSERT INTO {instances} (id, workflow, status, created_at, updated_at,"
            " lease_owner, lease_expires_at)"
            " SELECT %(id)s::text, %(workflow)s::text, %(create_status)s::text,"
            " %(now)s::bigint, %(now)s::bigint, %(holder)s::text, %(holder_expires)s::bigint"
            " WHERE %(mode)s::text = 'create'"
            " ON CONFLICT (id) DO NOTHING RETURNING id, inbox_seq),"
            f" updated AS (UPDATE {instances} SET"
            " status = COALESCE(%(status)s::text, status),"
            " updated_at = CASE WHEN %(status)s::text IS NULL THEN updated_at"
            " ELSE %(now)s::bigint END,"
            " lease_owner = CASE WHEN %(release)s::boolean THEN NULL ELSE lease_owner END,"
            " lease_expires_at = CASE WHEN %(release)s::boolean THEN NULL"
            " WHEN %(mode)s::text = 'fenced' THEN %(expires)s::bigint ELSE lease_expires_at END"
            # By primary key only, whatever the generic plan.
            " WHERE id = %(id)s::text AND %(mode)s::text <> 'create'"
            " AND (%(mode)s::text = 'unfenced' OR lease_owner = %(owner)s::text)"
            " RETURNING id, inbox_seq),"
            " target AS (SELECT id FROM created"
            " UNION ALL SELECT id FROM updated WHERE %(mode)s::text = 'fenced'"
            " UNION ALL SELECT %(id)s::text WHERE %(mode)s::text = 'unfenced'),"
            f" cleared AS (DELETE FROM {kv} WHERE %(clear)s::boolean"
            " AND instance_id IN (SELECT id FROM target)"
            " AND NOT (key = ANY(%(put_keys)s::text[]))),"
            f" cleared_inbox AS (DELETE FROM {inbox} WHERE %(clear)s::boolean"
            " AND instance_id IN (SELECT id FROM target)),"
            f" put AS (INSERT INTO {kv} (instance_id, key, value)"
            " SELECT t.id, r.key, r.value::jsonb FROM target AS t,"
            " unnest(%(put_keys)s::text[], %(put_values)s::text[]) AS r(key, value)"
            " ON CONFLICT (instance_id, key) DO UPDATE SET value = EXCLUDED.value),"
            f" deleted AS (DELETE FROM {kv} WHERE instance_id IN (SELECT id FROM target)"
            " AND key = ANY(%(deleted)s::text[])),"
            f" unset AS (DELETE FROM {alarms} WHERE %(alarm)s::text = 'clear'"
            " AND instance_id IN (SELECT id FROM target)),"
            f" alarm AS (INSERT INTO {alarms} (instance_id, due_at)"
            " SELECT id, %(due)s::bigint FROM target WHERE %(alarm)s::text = 'set'"
            " ON CONFLICT (instance_id) DO UPDATE SET due_at = EXCLUDED.due_at),"
            f" consumed AS (UPDATE {inbox} SET consumed = true"
            " WHERE instance_id IN (SELECT id FROM target)"
            " AND seq = ANY(%(consume)s::bigint[]))"
            " SELECT (SELECT count(*) FROM target),"
            " (SELECT inbox_seq FROM created UNION ALL SELECT inbox_seq FROM updated LIMIT 1),"
            # pg_notify in the final SELECT: a CTE that only reads runs only if used.
            f" CASE WHEN %(notify)s::boolean THEN pg_notify('{channel}', '') END"
        )
        # An append locks the instance row first (every append to one instance is then
        # in turn), and only then, in statements of their own (so with a snapshot taken
        # after the lock), looks for a duplicate and takes the next number.
        self.lock_instance = f"SELECT status, inbox_seq FROM {instances} WHERE id = %s FOR UPDATE"
        self.duplicate = f"SELECT 1 FROM {inbox} WHERE instance_id = %s AND dedupe_key = %s"
        self.append = (
            f"WITH bumped AS (UPDATE {instances} SET inbox_seq = inbox_seq + 1"
            " WHERE id = %(id)s::text RETURNING inbox_seq),"
            f" message AS (INSERT INTO {inbox} (instance_id, seq, kind, name, payload,"
            " dedupe_key, sent_at) SELECT %(id)s::text, inbox_seq, %(kind)s::text,"
            " %(name)s::text, %(payload)s::jsonb, %(dedupe)s::text, %(now)s::bigint"
            " FROM bumped),"
            f" woken AS (INSERT INTO {alarms} (instance_id, due_at)"
            " SELECT %(id)s::text, %(now)s::bigint WHERE %(wake)s::boolean"
            " ON CONFLICT (instance_id) DO UPDATE SET due_at = LEAST("
            f"{alarms}.due_at, EXCLUDED.due_at))"
            " SELECT inbox_seq,"
            f" CASE WHEN %(wake)s::boolean THEN pg_notify('{channel}', '') END FROM bumped"
        )
        columns = "seq, kind, name, payload::text, sent_at, dedupe_key, consumed"
        self.pending = (
            f"SELECT i.inbox_seq, m.seq, m.kind, m.name, m.payload::text, m.sent_at,"
            f" m.dedupe_key, m.consumed FROM {instances} AS i LEFT JOIN {inbox} AS m"
            " ON m.instance_id = i.id AND NOT m.consumed WHERE i.id = %s ORDER BY m.seq"
        )
        self.read_inbox = f"SELECT {columns} FROM {inbox} WHERE instance_id = %s ORDER BY seq"


def message_of(row: tuple[Any, ...]) -> InboxMessage:
    """An ``InboxMessage`` from the columns ``seq, kind, name, payload, sent_at,
    dedupe_key, consumed``."""
    seq, kind, name, payload, sent_at, dedupe_key, consumed = row
    return InboxMessage(
        int(seq), str(kind), name, json.loads(payload), int(sent_at), dedupe_key, bool(consumed)
    )
