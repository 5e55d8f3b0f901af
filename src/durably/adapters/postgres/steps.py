"""Step commits over PostgreSQL: every unit of a group in one statement, one round trip.

A step's commit writes key-value rows of an instance whose lease it holds, and nothing
else. The units of a group that are all like that are committed by one statement in
autocommit (its own transaction): it extends their leases where they are still held
(fencing, and the row lock that orders us against claims), writes the rows of those
units only, and reads back the keys a cancel from another process may have written.
A unit whose lease is gone writes nothing and fails alone.
"""

from __future__ import annotations

from typing import Any

from durably.adapters.commit_group import LeaseLost, Waiting
from durably.adapters.unit_of_work import UNCHANGED
from durably.domain import keys
from durably.domain.errors import StorageError

__all__ = [
    "is_step_unit",
    "split_steps",
    "steps_query",
    "settle_steps",
    "statement",
    "statement_of_one",
    "FENCED_KEYS",
]

FENCED_KEYS = (keys.STATUS, keys.CANCELLED, keys.CANCEL_REASON)
"""The keys read back by a fenced commit (what a cancel from elsewhere may write)."""


def is_step_unit(waiting: Waiting) -> bool:
    """Whether ``waiting`` only writes rows of an instance whose lease it holds."""
    unit = waiting.unit
    return (
        waiting.owner is not None
        and not unit.cleared
        and unit.alarm is UNCHANGED
        and bool(unit.writes)
        and keys.STATUS not in unit.writes
        and keys.NAME not in unit.writes
        and all(text is not None for text in unit.writes.values())
    )


def statement(kv: str, instances: str) -> str:
    """The step commit over tables ``kv`` and ``instances``.

    It is planned once (a generic plan, on a connection of its own), so every lookup
    must be by primary key whatever the parameters: the instances by ``id = ANY``
    (the owner compared with ``IS NOT DISTINCT FROM``, which the index on
    ``lease_owner`` cannot serve: a worker may hold thousands of leases), the keys read
    back by literal keys.
    """
    read_back = ", ".join(
        f"(SELECT value::text FROM {kv} WHERE instance_id = f.id AND key = '{key}')"
        for key in FENCED_KEYS
    )
    return (
        "WITH u AS (SELECT * FROM unnest(%(ids)s::text[], %(owners)s::text[],"
        " %(expires)s::bigint[]) AS u(id, owner, expires)),"
        f" fence AS (UPDATE {instances} AS i SET lease_expires_at = u.expires FROM u"
        " WHERE i.id = ANY(%(ids)s) AND i.id = u.id"
        " AND i.lease_owner IS NOT DISTINCT FROM u.owner RETURNING i.id),"
        f" put AS (INSERT INTO {kv} (instance_id, key, value)"
        " SELECT r.id, r.key, r.value::jsonb FROM unnest(%(row_ids)s::text[],"
        " %(row_keys)s::text[], %(row_values)s::text[]) AS r(id, key, value)"
        " WHERE r.id IN (SELECT id FROM fence)"
        " ON CONFLICT (instance_id, key) DO UPDATE SET value = EXCLUDED.value)"
        f" SELECT f.id, {read_back} FROM fence AS f"
    )


def statement_of_one(kv: str, instances: str) -> str:
    """``statement`` for one unit that writes one row: the same effect, with scalars.

    (Arrays cost a tenth of a millisecond more per call, in psycopg and in the server:
    a step of a workflow run alone is this case.)
    """
    read_back = ", ".join(
        f"(SELECT value::text FROM {kv} WHERE instance_id = f.id AND key = '{key}')"
        for key in FENCED_KEYS
    )
    return (
        f"WITH fence AS (UPDATE {instances} SET lease_expires_at = %(expires)s::bigint"
        " WHERE id = %(id)s::text AND lease_owner IS NOT DISTINCT FROM %(owner)s::text"
        " RETURNING id),"
        f" put AS (INSERT INTO {kv} (instance_id, key, value)"
        " SELECT id, %(key)s::text, %(value)s::jsonb FROM fence"
        " ON CONFLICT (instance_id, key) DO UPDATE SET value = EXCLUDED.value)"
        f" SELECT f.id, {read_back} FROM fence AS f"
    )


def steps_query(
    queries: tuple[str, str], batch: list[Waiting], now: int
) -> tuple[str, dict[str, Any]]:
    """The statement that commits the step units ``batch`` (distinct instances), and its
    parameters: ``queries`` are ``statement`` and ``statement_of_one``, which serves a
    batch of one unit that writes one row."""
    if len(batch) == 1 and len(batch[0].unit.writes) == 1:
        waiting = batch[0]
        ((key, text),) = waiting.unit.writes.items()
        one = {
            "id": waiting.instance_id,
            "owner": waiting.owner,
            "expires": now + waiting.lease_ms,
            "key": key,
            "value": text,
        }
        return queries[1], one
    params: dict[str, Any] = {
        "ids": [w.instance_id for w in batch],
        "owners": [w.owner for w in batch],
        "expires": [now + w.lease_ms for w in batch],
        "row_ids": [],
        "row_keys": [],
        "row_values": [],
    }
    for waiting in batch:
        for key, text in waiting.unit.writes.items():
            params["row_ids"].append(waiting.instance_id)
            params["row_keys"].append(key)
            params["row_values"].append(text)
    return queries[0], params


def settle_steps(
    batch: list[Waiting], rows: list[tuple[Any, ...]], errors: list[BaseException | None]
) -> None:
    """From the rows of ``steps_query``: each unit's ``observed`` keys, or its error in
    ``errors`` when its lease is gone (its instance is not among the rows)."""
    fenced = {str(row[0]): row[1:] for row in rows}
    for i, waiting in enumerate(batch):
        found = fenced.get(waiting.instance_id)
        if found is None:
            lost = LeaseLost(
                f"lease of instance {waiting.instance_id!r} is no longer held by {waiting.owner}"
            )
            errors[i] = StorageError("commit", keys.STATUS, lost)
        else:
            waiting.observed = dict(zip(FENCED_KEYS, found, strict=True))


def split_steps(batch: list[Waiting]) -> tuple[list[Waiting], list[Waiting]]:
    """The step units of ``batch`` (one per instance), and the rest, each in order."""
    units: dict[str, int] = {}
    for waiting in batch:
        units[waiting.instance_id] = units.get(waiting.instance_id, 0) + 1
    steps, others = [], []
    for waiting in batch:
        if units[waiting.instance_id] == 1 and is_step_unit(waiting):
            steps.append(waiting)
        else:
            others.append(waiting)
    return steps, others
