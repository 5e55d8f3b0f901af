"""Reading an instance's step timeline out of its stored keys."""

from __future__ import annotations

from typing import Any

import attrs

from durably.domain import keys
from durably.domain.records import StepAttempt, StepResult
from durably.domain.serialization import decode

__all__ = ["StepRecord", "step_records"]


@attrs.frozen
class StepRecord:
    """One step of an instance: completed, or failed and waiting for its next attempt."""

    name: str
    attempt: int
    started_at: int | None
    completed_at: int | None
    duration_ms: int | None
    error: str | None = None


def step_records(entries: dict[str, Any]) -> list[StepRecord]:
    """The step timeline from an instance's ``step:`` (and older ``completed:``) entries."""
    order: dict[str, int] = {}
    for key, index in entries.items():
        if key.startswith(keys.COMPLETED_PREFIX):
            order[keys.unescape(key[len(keys.COMPLETED_PREFIX) :])] = int(index)
    done: list[tuple[int, StepRecord]] = []
    waiting: list[StepRecord] = []
    for key, value in entries.items():
        if not key.startswith(keys.STEP_PREFIX):
            continue
        escaped, _, kind = key[len(keys.STEP_PREFIX) :].rpartition(":")
        name = keys.unescape(escaped)
        if kind == "result":
            result: StepResult = decode(value, StepResult, key=key)
            meta = result.meta
            record = StepRecord(
                name, meta.attempt, meta.started_at, meta.completed_at, meta.duration_ms
            )
            place = meta.index if meta.index is not None else order.get(name, len(entries))
            done.append((place, record))
        elif kind == "attempt":
            attempt: StepAttempt = decode(value, StepAttempt, key=key)
            error = attempt.last_error
            text = f"{error.type}: {error.message}" if error is not None else None
            waiting.append(
                StepRecord(name, attempt.attempt - 1, attempt.first_started_at, None, None, text)
            )
    done.sort(key=lambda item: item[0])
    return [record for _, record in done] + waiting
