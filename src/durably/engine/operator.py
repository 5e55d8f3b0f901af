"""Operator actions over stored instances: ``Engine.fork`` and ``Engine.cancel_many``.

``fork`` copies the history of an instance before a step into a new instance, which
then runs from that step: only what had ended is copied (completed steps and sleeps,
waits that received or timed out, children that ended, published values, patch
markers), so the new instance never waits for something that belongs to the old one.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

from returns.result import Failure, Result

from durably.domain import keys
from durably.domain.errors import DurablyError, OrchestratorError
from durably.domain.queues import Placement
from durably.domain.records import JsonValue
from durably.domain.serialization import decode
from durably.domain.status import TERMINAL_TAGS
from durably.services.types import InstanceSummary, StartResult, WorkflowCall

if TYPE_CHECKING:
    from durably.engine.engine import Engine

__all__ = ["fork_instance", "cancel_candidates", "cancel_matching"]


def _ended(key: str, record: JsonValue) -> bool:
    """Whether a point's record says the point is over (what a fork may copy)."""
    if not isinstance(record, dict):
        return False
    if key.startswith(keys.STEP_PREFIX):
        return key.endswith(":result")
    if key.startswith(keys.SLEEP_PREFIX):
        return bool(record.get("completed"))
    if key.startswith(keys.WAIT_PREFIX):
        return record.get("outcome") in ("received", "timed_out")
    if key.startswith(keys.CHILD_PREFIX):
        return record.get("outcome") is not None
    return True  # a published value, a patch marker


def _position(record: JsonValue) -> int | None:
    if not isinstance(record, dict):
        return None
    found = record.get("position")
    if found is None and isinstance(record.get("meta"), dict):
        found = record["meta"].get("position")
    return found if isinstance(found, int) else None


def history_before(entries: dict[str, JsonValue], from_step: str) -> dict[str, JsonValue]:
    """The records of the points that ended before step ``from_step`` (by position)."""
    target = entries.get(keys.step(from_step, "result")) or entries.get(
        keys.step(from_step, "attempt")
    )
    if target is None:
        steps = sorted(
            keys.point_of(k) or k
            for k in entries
            if k.startswith(keys.STEP_PREFIX) and k.endswith((":result", ":attempt"))
        )
        known = ", ".join(dict.fromkeys(steps)) or "none"
        raise ValueError(f"no step {from_step!r} in this instance (its steps: {known})")
    limit = _position(target)
    if limit is None:
        raise ValueError(
            f"step {from_step!r} was recorded before durably kept the order of points: "
            "this instance cannot be forked"
        )
    copied: dict[str, JsonValue] = {}
    for key, record in entries.items():
        position = _position(record)
        if keys.point_of(key) is None or position is None or position >= limit:
            continue
        if _ended(key, record):
            copied[key] = record
    return copied


async def fork_instance(
    engine: Engine, instance_id: str, from_step: str, new_id: str | None
) -> Result[StartResult, OrchestratorError]:
    """``Engine.fork``: a new instance with the input of ``instance_id`` and its history
    before ``from_step``; queued, so a worker runs it from that step."""
    try:
        texts = await engine.host.read_prefix(instance_id, "")
        entries = {key: json.loads(text) for key, text in texts.items()}
        name = entries.get(keys.NAME)
        if not isinstance(name, str):
            return Failure(OrchestratorError("fork", f"no workflow instance {instance_id!r}"))
        copied = history_before(entries, from_step)
        placement = None
        if keys.QUEUE in entries:
            stored: Placement = decode(entries[keys.QUEUE], Placement, key=keys.QUEUE)
            placement = Placement(stored.queue, stored.priority, stored.partition_key, None)
    except ValueError as e:
        return Failure(OrchestratorError("fork", e))
    except DurablyError as e:
        return Failure(OrchestratorError("fork", e))
    target = new_id if new_id is not None else f"{instance_id}-fork-{uuid.uuid4().hex[:8]}"
    call = WorkflowCall(
        name, entries.get(keys.INPUT), entries.get(keys.EXECUTION_ID), placement=placement
    )
    async with engine.server.serve(target) as orchestrator:
        return await orchestrator.fork(call, copied)


async def cancel_candidates(
    engine: Engine, workflow: str | None, status: str | None, cutoff: int | None
) -> list[InstanceSummary]:
    """The instances, not final, of ``workflow`` and ``status`` (if given), last
    updated at or before ``cutoff`` (if given), most recently updated first."""
    unfinished = ["Pending", "Queued", "Running", "Paused"]
    if status is not None and status in TERMINAL_TAGS:
        raise ValueError(f"status {status!r} is final: there is nothing to cancel")
    if status is not None and status not in unfinished:
        raise ValueError(f"unknown status {status!r} (one of {', '.join(unfinished)})")
    statuses = [status] if status is not None else unfinished
    found: list[InstanceSummary] = []
    for tag in statuses:
        for row in await engine.host.list_instances(tag, workflow, 1_000_000):
            if cutoff is not None and row.updated_at > cutoff:
                continue
            found.append(
                InstanceSummary(row.id, row.workflow, row.status, row.created_at, row.updated_at)
            )
    found.sort(key=lambda summary: (-summary.updated_at, summary.id))
    return found


async def cancel_matching(
    engine: Engine, candidates: list[InstanceSummary], reason: str | None
) -> list[InstanceSummary]:
    """Cancel each of ``candidates``; those whose cancel was recorded."""
    cancelled: list[InstanceSummary] = []
    for summary in candidates:
        answer = await engine.cancel(summary.id, reason=reason)
        if isinstance(answer, Failure):
            raise answer.failure()
        if answer.unwrap().cancelled:
            cancelled.append(summary)
    return cancelled
