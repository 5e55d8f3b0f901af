"""The columns of the schedules table, and a stored schedule to and from them (shared by
the SQL backends; ``pending`` is JSON text on SQLite, ``jsonb`` on PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from durably.domain.schedules import StoredSchedule, Timing

__all__ = ["COLUMNS", "values_of", "schedule_of"]

COLUMNS = (
    "id",
    "workflow",
    "cron",
    "every_ms",
    "timezone",
    "catch_up",
    "queue",
    "next_at",
    "pending",
    "last_at",
    "seen_at",
    "paused",
    "version",
    "created_at",
)


def values_of(row: StoredSchedule) -> tuple[Any, ...]:
    """The column values of ``row``, in ``COLUMNS`` order (``pending`` as JSON text)."""
    timing = row.timing
    return (
        row.id,
        row.workflow,
        timing.cron,
        timing.every_ms,
        timing.timezone,
        row.catch_up,
        row.queue,
        row.next_at,
        json.dumps(list(row.pending)),
        row.last_at,
        row.seen_at,
        row.paused,
        row.version,
        row.created_at,
    )


def schedule_of(values: Sequence[Any]) -> StoredSchedule:
    """The stored schedule of one row read in ``COLUMNS`` order."""
    (iid, workflow, cron, every, zone, catch_up, queue, next_at, pending, last, seen) = values[:11]
    paused, version, created = values[11:]
    ticks = json.loads(pending) if isinstance(pending, str | bytes) else pending
    return StoredSchedule(
        id=str(iid),
        workflow=str(workflow),
        timing=Timing(
            None if cron is None else str(cron),
            None if every is None else int(every),
            str(zone),
        ),
        catch_up=str(catch_up),
        queue=str(queue),
        next_at=int(next_at),
        pending=tuple(int(t) for t in ticks),
        last_at=None if last is None else int(last),
        seen_at=int(seen),
        paused=bool(paused),
        version=int(version),
        created_at=int(created),
    )
