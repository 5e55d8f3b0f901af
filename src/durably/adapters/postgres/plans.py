"""The PostgreSQL statements of a commit plan (``adapters/plan.py``) and of an inbox append.

A plan is **one statement** of data-modifying CTEs, assembled from the parts its shape
needs (``PlanShape``: a step's commit is two parts, a creation or an end a few more)
and prepared once per shape (a generic plan) on the commit connection:

- the instance row first: inserted (``ON CONFLICT DO NOTHING``) for a creation, or
  updated only where the owner still holds the lease for a fenced plan (which renews
  the lease); the row lock orders the commit against claims and appends;
- every other write (key-value rows, alarm, consumed messages) targets only the rows
  that the first part returned, so a refused plan writes nothing and raises nothing:
  its result says ``applied = 0``;
- the result brings back the number of the instance's last inbox message;
- a plan under the **news** rule (``plan.py``) picks its alarm from the row that the
  first part returned: that row is the one locked, so an append that committed while
  the plan waited for the lock is counted in its ``inbox_seq`` (the other parts read
  the statement's snapshot, taken before the lock: they could miss it).

A batch of plans is executed in one transaction (one WAL flush), the plans of one shape
together (``executemany``, pipelined: one round trip).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Literal

import attrs

from durably.adapters.plan import CommitPlan, Create, Fenced
from durably.adapters.unit_of_work import ClearAlarm, SetAlarm
from durably.domain.inbox import WAKING_STATUSES, InboxMessage
from durably.domain.status import TERMINAL_TAGS

__all__ = ["PlanShape", "PlanStatements", "message_of"]


@attrs.frozen
class PlanShape:
    """What a plan's statement must contain (plans of one shape share one statement)."""

    mode: Literal["create", "fenced", "unfenced"]
    status: bool
    release: bool
    clear: bool
    upserts: Literal["none", "one", "many"]
    deletes: bool
    alarm: Literal["keep", "set", "clear"]
    consume: bool
    notify: bool
    news: bool

    @classmethod
    def of(cls, plan: CommitPlan) -> PlanShape:
        """The shape of ``plan``; a new due alarm (not a lease's expiry) is announced."""
        write = plan.write
        mode: Literal["create", "fenced", "unfenced"] = (
            "create"
            if isinstance(write, Create)
            else "fenced"
            if isinstance(write, Fenced)
            else "unfenced"
        )
        alarm = plan.alarm
        kind: Literal["keep", "set", "clear"] = (
            "set"
            if isinstance(alarm, SetAlarm)
            else "clear"
            if isinstance(alarm, ClearAlarm)
            else "keep"
        )
        count = len(plan.upserts)
        return cls(
            mode=mode,
            status=plan.status is not None,
            release=isinstance(write, Fenced) and write.release,
            clear=plan.clear,
            upserts="none" if count == 0 else "one" if count == 1 and not plan.clear else "many",
            deletes=bool(plan.deletes),
            alarm=kind,
            consume=bool(plan.consume),
            notify=(kind == "set" and plan.status != "Running") or plan.news_after is not None,
            news=plan.news_after is not None,
        )


def plan_params(plan: CommitPlan) -> dict[str, Any]:
    """Every parameter a plan's statement may name."""
    write = plan.write
    params: dict[str, Any] = {
        "id": plan.instance_id,
        "now": plan.now,
        "status": plan.status,
        "ends": plan.status in TERMINAL_TAGS,
    }
    if isinstance(write, Create):
        params.update(
            workflow=write.workflow,
            create_status=plan.status or "Pending",
            holder=write.lease_owner,
            holder_expires=write.lease_expires_at,
            queue=write.queue,
            priority=write.priority,
            partition=write.partition_key,
            dedupe_id=write.dedupe_id,
        )
    elif isinstance(write, Fenced):
        params.update(owner=write.owner, expires=write.lease_expires_at)
    if len(plan.upserts) == 1:
        ((params["key"], params["value"]),) = plan.upserts
    params["put_keys"] = [k for k, _ in plan.upserts]
    params["put_values"] = [v for _, v in plan.upserts]
    params["deleted"] = list(plan.deletes)
    if isinstance(plan.alarm, SetAlarm):
        params["due"] = plan.alarm.at
    params["consume"] = list(plan.consume)
    params["seen"] = plan.news_after
    return params


class PlanStatements:
    """The statements over the tables of one schema."""

    def __init__(self, schema: str, channel: str) -> None:
        self.schema, self.channel = schema, channel
        kv, alarms = f"{schema}.kv", f"{schema}.alarms"
        instances, inbox = f"{schema}.instances", f"{schema}.inbox"
        self.kv, self.alarms, self.instances, self.inbox = kv, alarms, instances, inbox
        # An append locks the instance row first (every append to one instance is then
        # in turn), and only then, in statements of their own (so with a snapshot taken
        # after the lock), looks for a duplicate and takes the next number.
        self.lock_instance = (
            f"SELECT status, inbox_seq, workflow FROM {instances} WHERE id = %s FOR UPDATE"
        )
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
            "SELECT i.inbox_seq, m.seq, m.kind, m.name, m.payload::text, m.sent_at,"
            f" m.dedupe_key, m.consumed FROM {instances} AS i LEFT JOIN {inbox} AS m"
            " ON m.instance_id = i.id AND NOT m.consumed WHERE i.id = %s ORDER BY m.seq"
        )
        self.read_inbox = f"SELECT {columns} FROM {inbox} WHERE instance_id = %s ORDER BY seq"

    def commit(self, plan: CommitPlan) -> tuple[str, dict[str, Any]]:
        """The statement that commits ``plan``, and its parameters."""
        return self.statement(PlanShape.of(plan)), plan_params(plan)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - a few shapes, one instance per host
    def statement(self, shape: PlanShape) -> str:
        """The statement of every plan of ``shape``."""
        parts = [self._target(shape)]
        kv, t = self.kv, "(SELECT id FROM t)"
        if shape.clear:  # a purge: the inbox goes too
            parts.append(
                f"cleared AS (DELETE FROM {kv} WHERE instance_id IN {t}"
                " AND NOT (key = ANY(%(put_keys)s::text[])))"
            )
            parts.append(f"cleared_inbox AS (DELETE FROM {self.inbox} WHERE instance_id IN {t})")
        conflict = " ON CONFLICT (instance_id, key) DO UPDATE SET value = EXCLUDED.value"
        if shape.upserts == "one":  # a step: scalars cost less than arrays
            parts.append(
                f"put AS (INSERT INTO {kv} (instance_id, key, value)"
                f" SELECT id, %(key)s::text, %(value)s::jsonb FROM t{conflict})"
            )
        elif shape.upserts == "many":
            parts.append(
                f"put AS (INSERT INTO {kv} (instance_id, key, value)"
                " SELECT t.id, r.key, r.value::jsonb FROM t,"
                f" unnest(%(put_keys)s::text[], %(put_values)s::text[]) AS r(key, value){conflict})"
            )
        if shape.deletes:
            parts.append(
                f"deleted AS (DELETE FROM {kv} WHERE instance_id IN {t}"
                " AND key = ANY(%(deleted)s::text[]))"
            )
        upsert_alarm = (
            f"INSERT INTO {self.alarms} (instance_id, due_at) SELECT id, {{due}} FROM t{{where}}"
            " ON CONFLICT (instance_id) DO UPDATE SET due_at = EXCLUDED.due_at"
        )
        news = (  # false, not null, for an instance without a row
            "COALESCE(t.inbox_seq > %(seen)s::bigint"
            f" AND t.status IN ({', '.join(repr(s) for s in WAKING_STATUSES)}), false)"
        )
        if shape.alarm == "set":
            due = f"CASE WHEN {news} THEN %(now)s::bigint ELSE %(due)s::bigint END"
            parts.append(
                "alarm AS ("
                + upsert_alarm.format(due=due if shape.news else "%(due)s::bigint", where="")
                + ")"
            )
        elif shape.alarm == "clear" and not shape.news:
            parts.append(f"alarm AS (DELETE FROM {self.alarms} WHERE instance_id IN {t})")
        elif shape.alarm == "clear":
            parts.append(
                f"alarm AS (DELETE FROM {self.alarms} WHERE instance_id IN"
                f" (SELECT id FROM t WHERE NOT {news}))"
            )
            woken = upsert_alarm.format(due="%(now)s::bigint", where=f" WHERE {news}")
            parts.append(f"woken AS ({woken})")
        if shape.consume:
            parts.append(
                f"consumed AS (UPDATE {self.inbox} SET consumed = true"
                f" WHERE instance_id IN {t} AND seq = ANY(%(consume)s::bigint[]))"
            )
        # pg_notify in the final SELECT: a CTE that only reads runs only if used.
        notify = (
            f", CASE WHEN count(*) > 0 THEN pg_notify('{self.channel}', '') END"
            if shape.notify
            else ""
        )
        return f"WITH {', '.join(parts)} SELECT count(*), max(inbox_seq){notify} FROM t"

    def _target(self, shape: PlanShape) -> str:
        """The part that checks and writes the instance row: ``t(id, inbox_seq)`` holds the
        instance when the plan applies, nothing when it is refused."""
        instances = self.instances
        if shape.mode == "create":
            return (
                f"t AS (INSERT INTO {instances} (id, workflow, status, created_at, updated_at,"
                " lease_owner, lease_expires_at, queue, priority, partition_key, dedupe_id)"
                " VALUES (%(id)s::text, %(workflow)s::text,"
                " %(create_status)s::text, %(now)s::bigint, %(now)s::bigint,"
                " %(holder)s::text, %(holder_expires)s::bigint, %(queue)s::text,"
                " %(priority)s::integer, %(partition)s::text, %(dedupe_id)s::text)"
                # No conflict target: a dedupe id held by another instance refuses it too.
                " ON CONFLICT DO NOTHING RETURNING id, inbox_seq, status)"
            )
        status = (
            ", status = %(status)s::text, updated_at = %(now)s::bigint,"
            " slot = slot AND NOT %(ends)s::boolean"
            if shape.status
            else ""
        )
        if shape.mode == "fenced":
            lease = (
                "lease_owner = NULL, lease_expires_at = NULL"
                if shape.release
                else "lease_expires_at = %(expires)s::bigint"
            )
            # By primary key only, whatever the generic plan.
            return (
                f"t AS (UPDATE {instances} SET {lease}{status}"
                " WHERE id = %(id)s::text AND lease_owner = %(owner)s::text"
                " RETURNING id, inbox_seq, status)"
            )
        row = f"(SELECT {{}} FROM {instances} WHERE id = %(id)s::text)"
        # The snapshot does not see the update of ``updated``: the status is the plan's.
        now_status = "%(status)s::text" if shape.status else row.format("status")
        target = (
            f"t AS (SELECT %(id)s::text AS id, {row.format('inbox_seq')} AS inbox_seq,"
            f" {now_status} AS status)"
        )
        if not shape.status:
            return target
        return (
            f"updated AS (UPDATE {instances} SET {status.removeprefix(', ')}"
            " WHERE id = %(id)s::text), " + target
        )


def message_of(row: tuple[Any, ...]) -> InboxMessage:
    """An ``InboxMessage`` from the columns ``seq, kind, name, payload, sent_at,
    dedupe_key, consumed``."""
    seq, kind, name, payload, sent_at, dedupe_key, consumed = row
    return InboxMessage(
        int(seq), str(kind), name, json.loads(payload), int(sent_at), dedupe_key, bool(consumed)
    )
