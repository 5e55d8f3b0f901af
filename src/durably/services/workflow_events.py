"""Events: ``wait_for_event`` and ``set_event`` inside a workflow (coordination.md section 1).

A wait is a durability point keyed like a step (``approval``, ``approval#2``). Its
record (``WaitRecord``) is written ``waiting`` with the pause, so its deadline is fixed
at the first arrival; when an event is there (or the deadline has passed), the record
is rewritten ``received`` (with the payload) or ``timed_out``, and rides with the next
commit, which also consumes the event: a crash before that commit leaves the event in
the inbox, and the replay takes the same one. So each event is consumed exactly once,
and a replay returns the same payload, or raises the same ``EventTimeoutError``.

``set_event`` publishes a value under a key, committed before the workflow goes on; the
record counts the calls of its key (``PublishedEvent.version``), so a replay never
writes an older value back.
"""

from __future__ import annotations

import attrs

from durably.domain import keys
from durably.domain.errors import (
    DurablyError,
    EventTimeoutError,
    SerializationError,
    StepScopeError,
    StorageError,
    WorkflowScopeError,
)
from durably.domain.events import EventReceived, EventTimedOut
from durably.domain.inbox import EVENT, event_dedupe_key, wait_key
from durably.domain.records import JsonValue, PublishedEvent, WaitRecord
from durably.domain.serialization import decode, encode, type_name
from durably.services.context import STEP, ExecutionScope, InfrastructureFailure, PauseSignal
from durably.services.steps import read_or_fail

__all__ = ["run_wait", "run_set_event"]

_DEDUPE_PREFIX = event_dedupe_key("")


async def run_wait(scope: ExecutionScope, name: str, timeout_ms: int | None) -> JsonValue:
    """Wait for event ``name``: its payload, or ``EventTimeoutError`` after ``timeout_ms``."""
    step = STEP.get()
    if step is not None:
        raise StepScopeError("wait_for_event", step.step_name)
    key = scope.next_wait_key(name)
    if not scope.durable:
        raise WorkflowScopeError(
            "wait_for_event",
            "a workflow called directly has no inbox to wait on; run it with an Engine",
        )
    record_key = keys.check_key(keys.wait(key), f"wait {key!r}")
    position = scope.take_position()
    await scope.before_durable_point(key, position, f"{keys.WAIT_PREFIX}{key}")
    stored = scope.pending.get(record_key)
    if stored is None:
        stored = await read_or_fail(scope, record_key)
    now = scope.runtime.now()
    if stored is None:
        deadline = None if timeout_ms is None else now + timeout_ms
        record = WaitRecord(name, now, deadline, timeout_ms, position=position)
    else:
        record = decode(stored, WaitRecord, key=record_key)
        if record.outcome == "received":
            return record.payload
        if record.outcome == "timed_out":
            raise EventTimeoutError(name, record.timeout_ms or 0)

    message = await scope.take_event(name, sent_by=record.deadline)
    if message is not None:
        dedupe = message.dedupe_key
        received = attrs.evolve(
            record,
            outcome="received",
            payload=message.payload,
            seq=message.seq,
            event_id=dedupe.removeprefix(_DEDUPE_PREFIX) if dedupe is not None else None,
            sent_at=message.sent_at,
            ended_at=now,
        )
        scope.pending[record_key] = encode(received, key=record_key)
        scope.events.emit(
            EventReceived,
            event_name=name,
            wait=key,
            seq=message.seq,
            waited_ms=max(0, now - record.started_at),
        )
        return message.payload
    if record.deadline is not None and now >= record.deadline:
        timed_out = attrs.evolve(record, outcome="timed_out", ended_at=now)
        scope.pending[record_key] = encode(timed_out, key=record_key)
        timeout = record.timeout_ms or 0
        scope.events.emit(EventTimedOut, event_name=name, wait=key, timeout_ms=timeout)
        raise EventTimeoutError(name, timeout)
    raise PauseSignal(
        "event",
        record.deadline,
        step_name=key,
        writes={record_key: encode(record, key=record_key)} if stored is None else {},
        waits=(wait_key(EVENT, name),),
    )


async def run_set_event(scope: ExecutionScope, key: str, value: object) -> None:
    """Publish ``value`` under ``key`` for readers outside (the latest value wins)."""
    step = STEP.get()
    if step is not None:
        raise StepScopeError("set_event", step.step_name)
    version = scope.published.get(key, 0) + 1
    scope.published[key] = version
    if not scope.durable:
        return
    record_key = keys.check_key(keys.published(key), f"event {key!r}")
    call = key if version == 1 else f"{key}#{version}"
    position = scope.take_position()
    stored = scope.pending.get(record_key)
    if stored is None:
        stored = await read_or_fail(scope, record_key)
    latest = None if stored is None else decode(stored, PublishedEvent, key=record_key)
    # Only the latest call's position is kept: an earlier call has nothing to check.
    checked = latest is not None and latest.version == version
    await scope.before_durable_point(
        call, position if checked else None, f"{keys.PUBLISHED_PREFIX}{key}"
    )
    if latest is not None and latest.version >= version:
        return  # a replay: this call (or a later one) was committed already
    data = encode(value, key=record_key)
    record = PublishedEvent(data, version, scope.runtime.now(), position)
    try:
        await scope.commit({record_key: encode(record, key=record_key)})
    except StorageError as e:
        if e.permanent:  # the database refuses the value itself (too large...)
            reason = f"the storage refused the value ({e.cause})"
            raise SerializationError(reason, key=record_key, type_name=type_name(value)) from e
        raise InfrastructureFailure(e) from e
    except DurablyError as e:
        raise InfrastructureFailure(e) from e
