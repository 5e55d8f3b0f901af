"""Durable sleeps: a resume time fixed once, never moved by early or repeated alarms.

``sleep.completed`` is emitted as soon as the sleep is known to be over, before anything
after it runs (events in causal order): a sleep is over when the clock has passed its
stored resume time, and that was committed by the ``Resume`` (or ``Recover``) that let
the execution run again; a sleep whose time had already passed when it was reached never
waited at all. The record's ``completed`` flag only spares later replays the event; it
rides with the next commit, so a crash before that commit repeats the event, as it
repeats ``step.started`` (``docs/decisions.md``).
"""

from __future__ import annotations

import attrs

from durably.domain import keys
from durably.domain.errors import StepScopeError
from durably.domain.events import SleepCompleted, SleepStarted
from durably.domain.records import SleepRecord
from durably.domain.serialization import decode, encode
from durably.services.context import STEP, ExecutionScope, PauseSignal
from durably.services.steps import read_or_fail

__all__ = ["run_sleep"]


async def run_sleep(
    scope: ExecutionScope, *, duration_ms: int | None, until_ms: int | None, name: str | None
) -> None:
    """Sleep ``duration_ms`` from the first arrival, or until ``until_ms`` (section 4)."""
    step = STEP.get()
    if step is not None:
        raise StepScopeError("sleep", step.step_name)
    key = scope.next_sleep_key(name)
    if not scope.durable:
        return
    position = scope.take_position()
    await scope.before_durable_point(key, position, f"{keys.SLEEP_PREFIX}{key}")
    record_key = keys.check_key(keys.sleep(key), f"sleep {key!r}")
    now = scope.runtime.now()
    stored = scope.pending.get(record_key)
    if stored is None:
        stored = await read_or_fail(scope, record_key)
    if stored is None:
        resume_at = until_ms if until_ms is not None else now + (duration_ms or 0)
        duration = duration_ms if duration_ms is not None else max(0, resume_at - now)
        if resume_at <= now:
            # Not in the future: done at once, but recorded, so replays agree on it.
            done = SleepRecord(resume_at, duration, completed=True, position=position)
            scope.pending[record_key] = encode(done, key=record_key)
            scope.events.emit(SleepCompleted, duration_ms=duration)
            return
        record = SleepRecord(resume_at=resume_at, duration_ms=duration, position=position)
        raise PauseSignal(
            "sleep",
            resume_at,
            writes={record_key: encode(record, key=record_key)},
            events=[(SleepStarted, {"duration_ms": duration, "resume_at": resume_at})],
        )
    existing: SleepRecord = decode(stored, SleepRecord, key=record_key)
    if existing.completed:
        return
    if now >= existing.resume_at:
        done = attrs.evolve(existing, completed=True)
        scope.pending[record_key] = encode(done, key=record_key)
        scope.events.emit(SleepCompleted, duration_ms=existing.duration_ms)
        return
    # Fix: an early or repeated alarm pauses again until the same resume time.
    raise PauseSignal("sleep", existing.resume_at)
