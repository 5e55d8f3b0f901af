"""Reading an instance's history out of its stored keys (pure: no IO here).

``build_timeline`` turns what the engine read (every key of the instance, its row, its
inbox and its alarm) into a ``Timeline`` (steps, sleeps, waits for events, published
events, children, inbox messages and statuses); ``step_records`` gives ``Engine.steps``.

Rows are in time order (``_in_order``): each at the time it started (a step attempt, a
sleep, a wait, a child), was set (a published value) or was sent (a message); rows of
the same millisecond keep the order of the kinds in ``build_timeline``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from durably.domain import keys
from durably.domain.inbox import CHILD, EVENT, InboxMessage, event_dedupe_key
from durably.domain.records import (
    AlarmFailure,
    ChildRecord,
    JsonValue,
    ParentLink,
    PublishedEvent,
    Reopening,
    SleepRecord,
    StepAttempt,
    StepResult,
    Tombstone,
    WaitRecord,
)
from durably.domain.serialization import decode
from durably.domain.status import (
    Cancelled,
    Completed,
    Failed,
    Paused,
    Queued,
    Running,
    WorkflowError,
    WorkflowStatus,
)
from durably.engine.records import (
    ChildRow,
    MessageRow,
    PublishedRow,
    SleepRow,
    StatusRow,
    StepAttemptRow,
    StepRecord,
    Timeline,
    TimelineHeader,
    TimelineRow,
    WaitRow,
)
from durably.ports.host import InstanceRow

__all__ = ["build_timeline", "step_records", "error_line"]


def error_line(error: WorkflowError) -> str:
    """``Type: message``, on one line.

    >>> error_line(WorkflowError("no\\nway", type="ValueError"))
    'ValueError: no way'
    """
    text = " ".join(error.message.split())
    return f"{error.type}: {text}" if error.type else text


@attrs.frozen
class _Step:
    """What is stored for one step key: its result and its attempt record."""

    name: str
    result: StepResult | None = None
    attempts: StepAttempt | None = None
    place: int | None = None
    """Its place in the completion order."""


def _steps(entries: Mapping[str, JsonValue]) -> list[_Step]:
    """Every step with a record: completed ones in completion order, then the others in
    the order they first started."""
    markers: dict[str, int] = {}
    found: dict[str, dict[str, Any]] = {}
    for key, value in entries.items():
        if key.startswith(keys.COMPLETED_PREFIX):
            markers[keys.unescape(key[len(keys.COMPLETED_PREFIX) :])] = int(value)
        elif key.startswith(keys.STEP_PREFIX):
            escaped, _, kind = key[len(keys.STEP_PREFIX) :].rpartition(":")
            if kind == "result":
                found.setdefault(keys.unescape(escaped), {})["result"] = decode(
                    value, StepResult, key=key
                )
            elif kind == "attempt":
                found.setdefault(keys.unescape(escaped), {})["attempts"] = decode(
                    value, StepAttempt, key=key
                )
    steps = []
    for name, parts in found.items():
        result: StepResult | None = parts.get("result")
        place = None
        if result is not None:
            place = result.meta.index if result.meta.index is not None else markers.get(name)
        steps.append(_Step(name, result, parts.get("attempts"), place))
    done = sorted((s for s in steps if s.result is not None), key=lambda s: _place(s, entries))
    waiting = sorted(
        (s for s in steps if s.result is None),
        key=lambda s: s.attempts.first_started_at if s.attempts is not None else 0,
    )
    return done + waiting


def _place(step: _Step, entries: Mapping[str, JsonValue]) -> int:
    return step.place if step.place is not None else len(entries)


def _retry_at(status: WorkflowStatus, name: str) -> int | None:
    """When step ``name`` runs again, if the instance waits for that retry."""
    if isinstance(status, Paused) and status.reason == "retry" and status.step_name == name:
        return status.resume_at
    return None


def _failed_rows(step: _Step, retry_at: int | None) -> list[StepAttemptRow]:
    """The failed attempts of a step; the last one ``retrying`` when ``retry_at`` is set
    and the step did not fail for good (never a stale "retrying" on a failed instance)."""
    record = step.attempts
    if record is None:
        return []
    rows = [
        StepAttemptRow(
            step.name, f.attempt, f.started_at, f.ended_at, f.duration_ms, "failed", f.error
        )
        for f in record.failures
    ]
    if not rows and record.last_error is not None:
        # Stored before the history was kept: only the last failure is known.
        number = record.attempt - 1
        started = record.first_started_at if number == 1 else None
        rows.append(
            StepAttemptRow(step.name, number, started, None, None, "failed", record.last_error)
        )
    if rows and retry_at is not None and step.result is None and not record.failed_for_good:
        rows[-1] = attrs.evolve(rows[-1], outcome="retrying", retry_at=retry_at)
    return rows


def _step_rows(steps: Iterable[_Step], status: WorkflowStatus) -> list[TimelineRow]:
    rows: list[TimelineRow] = []
    for step in steps:
        rows.extend(_failed_rows(step, _retry_at(status, step.name)))
        if step.result is not None:
            meta = step.result.meta
            rows.append(
                StepAttemptRow(
                    step.name,
                    meta.attempt,
                    meta.started_at,
                    meta.completed_at,
                    meta.duration_ms,
                    "ok",
                )
            )
    return rows


def _sleep_rows(entries: Mapping[str, JsonValue]) -> list[TimelineRow]:
    rows: list[TimelineRow] = []
    for key, value in entries.items():
        if key.startswith(keys.SLEEP_PREFIX):
            record: SleepRecord = decode(value, SleepRecord, key=key)
            name = keys.unescape(key[len(keys.SLEEP_PREFIX) :])
            started = record.resume_at - record.duration_ms
            rows.append(
                SleepRow(name, started, record.duration_ms, record.resume_at, record.completed)
            )
    return rows


def _wait_rows(entries: Mapping[str, JsonValue]) -> list[TimelineRow]:
    rows: list[TimelineRow] = []
    for key, value in entries.items():
        if key.startswith(keys.WAIT_PREFIX):
            record: WaitRecord = decode(value, WaitRecord, key=key)
            rows.append(
                WaitRow(
                    name=keys.unescape(key[len(keys.WAIT_PREFIX) :]),
                    event_name=record.event_name,
                    started_at=record.started_at,
                    deadline_at=record.deadline,
                    timeout_ms=record.timeout_ms,
                    outcome=record.outcome,
                    ended_at=record.ended_at,
                    seq=record.seq,
                    event_id=record.event_id,
                    sent_at=record.sent_at,
                    payload=record.payload,
                )
            )
    return rows


def _published_rows(entries: Mapping[str, JsonValue]) -> list[TimelineRow]:
    rows: list[TimelineRow] = []
    for key, value in entries.items():
        if key.startswith(keys.PUBLISHED_PREFIX):
            record: PublishedEvent = decode(value, PublishedEvent, key=key)
            name = keys.unescape(key[len(keys.PUBLISHED_PREFIX) :])
            rows.append(PublishedRow(name, record.value, record.version, record.set_at))
    return rows


def _key_order(key: str) -> tuple[str, int]:
    """``invoice#2`` sorts as ``("invoice", 2)``: after ``invoice``, before ``invoice#10``."""
    base, mark, number = key.rpartition("#")
    if mark and number.isdigit():
        return base, int(number)
    return key, 1


def _child_rows(
    entries: Mapping[str, JsonValue], messages: Iterable[InboxMessage]
) -> list[ChildRow]:
    """One row per child, in the order they were started (the key's number for children
    started in the same millisecond). A child's outcome is its record's once the parent
    received its end, else the end message's while it waits in the inbox."""
    ends = {m.name: m for m in messages if m.kind == CHILD and m.name is not None}
    rows = []
    for key, value in entries.items():
        if not key.startswith(keys.CHILD_PREFIX):
            continue
        record: ChildRecord = decode(value, ChildRecord, key=key)
        end = ends.get(record.child_id)
        row = ChildRow(
            key=keys.unescape(key[len(keys.CHILD_PREFIX) :]),
            child_id=record.child_id,
            workflow=record.workflow,
            started_at=record.started_at,
            outcome=record.outcome,
            ended_at=record.ended_at,
            output=record.output,
            error=record.error,
            reason=record.reason,
            seq=end.seq if end is not None else None,
        )
        if record.outcome is None and end is not None:
            row = _ended(row, end, key)
        rows.append(row)
    return sorted(rows, key=lambda r: (r.started_at, *_key_order(r.key)))


def _ended(row: ChildRow, end: InboxMessage, key: str) -> ChildRow:
    """``row`` with the outcome its end message carries (not received by the parent yet)."""
    told = end.payload if isinstance(end.payload, dict) else {}
    status, error, reason = told.get("status"), told.get("error"), told.get("reason")
    return attrs.evolve(
        row,
        outcome=status if isinstance(status, str) else "?",
        ended_at=end.sent_at,
        output=told.get("output"),
        error=None if error is None else decode(error, WorkflowError, key=key),
        reason=reason if isinstance(reason, str) else None,
    )


_EVENT_DEDUPE = event_dedupe_key("")


def _event_id(message: InboxMessage) -> str | None:
    """The ``event_id`` an event was sent with (kept in its dedupe key)."""
    dedupe = message.dedupe_key
    if message.kind != EVENT or dedupe is None or not dedupe.startswith(_EVENT_DEDUPE):
        return None
    return dedupe[len(_EVENT_DEDUPE) :]


def _message_rows(messages: Iterable[InboxMessage]) -> list[TimelineRow]:
    return [
        MessageRow(m.seq, m.kind, m.name, m.sent_at, m.consumed, m.payload, _event_id(m))
        for m in messages
    ]


def _status_rows(status: WorkflowStatus, tombstone: Tombstone | None) -> list[TimelineRow]:
    """The rows of the current status (only the last status is stored, with its time)."""
    rows: list[TimelineRow] = []
    match status:
        case Queued(queued_at=at):
            rows.append(StatusRow("Queued", at))
        case Running(running_at=at):
            rows.append(StatusRow("Running", at))
        case Completed(completed_at=at):
            rows.append(StatusRow("Completed", at))
        case Failed(failed_at=at, error=error):
            rows.append(StatusRow("Failed", at, error_line(error)))
        case Cancelled(cancelled_at=at, reason=reason):
            rows.append(StatusRow("Cancelled", at, reason))
    if tombstone is not None:
        rows.append(StatusRow("Purged", tombstone.purged_at))
    return rows


def _in_order(
    first: list[TimelineRow], middle: list[TimelineRow], last: list[TimelineRow]
) -> tuple[TimelineRow, ...]:
    """``middle`` sorted by time (stable: ties keep the order given, and a row without a
    time goes with the row before it), between ``first`` and ``last``."""
    timed: list[tuple[int, int, TimelineRow]] = []
    previous = 0
    for index, row in enumerate(middle):
        at = _time_of(row)
        previous = at if at is not None else previous
        timed.append((previous, index, row))
    timed.sort(key=lambda item: (item[0], item[1]))
    return (*first, *(row for _, _, row in timed), *last)


def _time_of(row: TimelineRow) -> int | None:
    match row:
        case StepAttemptRow(started_at=at) | SleepRow(started_at=at) | WaitRow(started_at=at):
            return at
        case ChildRow(started_at=at):
            return at
        case PublishedRow(set_at=at):
            return at
        case MessageRow(sent_at=at):
            return at
        case StatusRow(at=at):
            return at
    return None  # pragma: no cover - the union is closed


def _completed_count(entries: Mapping[str, JsonValue], steps: Iterable[_Step]) -> int:
    names = {s.name for s in steps if s.result is not None}
    start = len(keys.COMPLETED_PREFIX)
    names.update(keys.unescape(k[start:]) for k in entries if k.startswith(keys.COMPLETED_PREFIX))
    return len(names)


def build_timeline(
    instance_id: str,
    entries: Mapping[str, JsonValue],
    row: InstanceRow | None,
    messages: Iterable[InboxMessage],
    alarm_at: int | None,
) -> Timeline | None:
    """The timeline of an instance from every stored key (decoded JSON), its row of the
    instances table, its inbox and its alarm; ``None`` when it has no status."""
    stored_status = entries.get(keys.STATUS)
    if stored_status is None:
        return None
    status: WorkflowStatus = decode(stored_status, WorkflowStatus, key=keys.STATUS)
    tombstone: Tombstone | None = None
    if keys.TOMBSTONE in entries:
        tombstone = decode(entries[keys.TOMBSTONE], Tombstone, key=keys.TOMBSTONE)
    alarm_error: AlarmFailure | None = None
    if keys.LAST_ALARM_ERROR in entries:
        alarm_error = decode(
            entries[keys.LAST_ALARM_ERROR], AlarmFailure, key=keys.LAST_ALARM_ERROR
        )
    name = entries.get(keys.NAME)
    if not isinstance(name, str):
        name = tombstone.workflow_name if tombstone else row.workflow if row else "unknown"
    created = entries.get(keys.STARTED_AT)
    created_at = int(created) if created is not None else row.created_at if row else None
    steps = _steps(entries)
    messages = list(messages)
    children = _child_rows(entries, messages)
    parent = entries.get(keys.PARENT)
    header = TimelineHeader(
        id=instance_id,
        workflow=name,
        status=status,
        input=entries.get(keys.INPUT),
        output=entries.get(keys.OUTPUT) if isinstance(status, Completed) else None,
        created_at=created_at,
        updated_at=row.updated_at if row is not None else None,
        execution_id=entries.get(keys.EXECUTION_ID),
        completed_steps=_completed_count(entries, steps),
        next_wakeup_at=alarm_at,
        last_alarm_error=alarm_error,
        recovery_attempts=int(entries.get(keys.RECOVERY_ATTEMPTS) or 0),
        purged_at=tombstone.purged_at if tombstone is not None else None,
        parent=None if parent is None else decode(parent, ParentLink, key=keys.PARENT),
        children=tuple(child.child_id for child in children),
    )
    first: list[TimelineRow] = [] if created_at is None else [StatusRow("Created", created_at)]
    middle = [
        *_step_rows(steps, status),
        *_sleep_rows(entries),
        *_published_rows(entries),  # before a wait of the same millisecond: the usual order
        *_wait_rows(entries),
        *children,  # after a step or a wait of the same millisecond, before its end
        *_message_rows(messages),
    ]
    recovered = entries.get(keys.LAST_RECOVERY_AT)
    if recovered is not None:
        middle.append(StatusRow("Recovered", int(recovered)))
    reopenings: list[Reopening] = decode(
        entries.get(keys.REOPENS) or [], list[Reopening], key=keys.REOPENS
    )
    for reopening in reopenings:
        detail = f"was {reopening.previous}" + (f": {reopening.reason}" if reopening.reason else "")
        middle.append(StatusRow("Reopened", reopening.at, detail))
    current = _status_rows(status, tombstone)
    if isinstance(status, Queued | Running):
        middle.extend(current)
        current = []
    return Timeline(header, _in_order(first, middle, current))


def step_records(entries: Mapping[str, JsonValue]) -> list[StepRecord]:
    """One record per step (``Engine.steps``): the completed steps in completion order,
    then the steps without a result, each with its last failed attempt."""
    records = []
    for step in _steps(entries):
        if step.result is not None:
            meta = step.result.meta
            records.append(
                StepRecord(
                    step.name, meta.attempt, meta.started_at, meta.completed_at, meta.duration_ms
                )
            )
            continue
        failed = _failed_rows(step, None)
        if failed:
            last = failed[-1]
            text = error_line(last.error) if last.error is not None else None
            records.append(
                StepRecord(step.name, last.attempt, last.started_at, None, last.duration_ms, text)
            )
    return records
