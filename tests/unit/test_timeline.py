"""``Engine.timeline``: the header and the rows of an instance, over ``memory://`` with a
virtual clock (the alarm failures, which need two engines on one store, are in
``tests/integration/test_alarm_failure_sqlite.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from returns.result import Failure

import durably
from durably import Retry
from durably.domain.errors import InstanceNotFoundError
from durably.domain.serialization import dumps
from durably.engine import (
    Engine,
    MessageRow,
    SleepRow,
    StatusRow,
    StepAttemptRow,
    Timeline,
    TimelineRow,
)
from durably.status import Cancelled, Completed, Failed, Paused
from durably.testing import ManualClock

T0 = 1_714_564_800_000
tries: dict[str, int] = {}
clock = ManualClock(T0)
gate: dict[str, asyncio.Event] = {}


def fails(times: int, key: str, took_ms: int = 0) -> Any:
    """A step function that moves the clock by ``took_ms`` and fails ``times`` times."""

    def fn() -> str:
        tries[key] = tries.get(key, 0) + 1
        clock.time_ms += took_ms
        if tries[key] <= times:
            raise ConnectionError(f"{key} failure {tries[key]}")
        return "ok"

    return fn


@durably.workflow
async def journey(n: int) -> dict[str, Any]:
    a = await durably.step("a", lambda: n + 1)
    flaky = await durably.step("flaky", fails(2, "journey", 30), retry=Retry(3, delay="1s"))
    await durably.sleep("1m", name="nap")
    b = await durably.step("b", lambda: a * 2)
    return {"a": a, "flaky": flaky, "b": b}


@durably.workflow
async def doomed(_: int) -> str:
    return await durably.step("x", fails(100, "doomed"), retry=Retry(1, delay="1s", jitter=False))


@durably.workflow
async def waits(_: int) -> str:
    await durably.step("first", lambda: 1)
    await gate["open"].wait()
    await durably.step("second", lambda: 2)
    return "never"


WORKFLOWS: list[durably.WorkflowDefinition[Any, Any]] = [journey, doomed, waits]


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    tries.clear()
    clock.time_ms = T0
    async with Engine(WORKFLOWS, backend="memory://", clock=clock) as opened:
        yield opened


async def timeline_of(engine: Engine, instance_id: str) -> Timeline:
    found = await engine.timeline(instance_id)
    timeline: Timeline = found.unwrap()
    return timeline


async def run_pauses_out(engine: Engine, instance_id: str) -> None:
    """Fire every alarm at its own time until the instance ends."""
    for _ in range(20):
        status = (await engine.status(instance_id)).unwrap().status
        if not isinstance(status, Paused) or status.resume_at is None:
            return
        clock.time_ms = max(clock.time_ms, status.resume_at)
        await engine.run_until_idle()


def shape(rows: tuple[TimelineRow, ...]) -> list[tuple[str, ...]]:
    """Each row as (kind, name or status, attempt, outcome) strings, for comparisons."""
    shaped: list[tuple[str, ...]] = []
    for row in rows:
        match row:
            case StepAttemptRow():
                shaped.append(("step", row.name, str(row.attempt), row.outcome))
            case SleepRow():
                shaped.append(("sleep", row.name, "done" if row.done else "waiting"))
            case MessageRow():
                shaped.append(("message", row.type, "consumed" if row.consumed else "pending"))
            case StatusRow():
                shaped.append(("status", row.status))
    return shaped


async def test_every_attempt_sleep_and_status_in_the_order_they_happened(engine: Engine) -> None:
    (await engine.start(journey, 4, id="j1")).unwrap()
    await run_pauses_out(engine, "j1")
    timeline = await timeline_of(engine, "j1")
    assert shape(timeline.rows) == [
        ("status", "Created"),
        ("step", "a", "1", "ok"),
        ("step", "flaky", "1", "failed"),
        ("step", "flaky", "2", "failed"),
        ("step", "flaky", "3", "ok"),
        ("sleep", "nap", "done"),
        ("step", "b", "1", "ok"),
        ("status", "Completed"),
    ]
    first, second = [r for r in timeline.rows if isinstance(r, StepAttemptRow)][1:3]
    assert first.error is not None
    assert (first.error.type, first.error.message) == ("ConnectionError", "journey failure 1")
    assert (first.started_at, first.ended_at) == (T0, T0 + 30)
    assert second.error is not None
    assert second.error.message == "journey failure 2"
    assert second.started_at is not None
    assert second.started_at > T0 + 30  # after the back-off
    nap = next(r for r in timeline.rows if isinstance(r, SleepRow))
    assert nap.duration_ms == 60_000
    assert nap.resume_at == nap.started_at + 60_000
    header = timeline.header
    assert (header.id, header.workflow, header.input) == ("j1", "journey", 4)
    assert isinstance(header.status, Completed)
    assert header.output == {"a": 5, "flaky": "ok", "b": 10}
    assert header.created_at == T0
    assert header.updated_at is not None
    assert header.updated_at >= header.created_at
    assert header.completed_steps == 3
    assert header.next_wakeup_at is None  # nothing scheduled for a completed instance
    assert header.last_alarm_error is None


async def test_a_step_waiting_for_its_retry_says_when(engine: Engine) -> None:
    started = (await engine.start(journey, 1, id="j2")).unwrap()
    assert isinstance(started.status, Paused)
    timeline = await timeline_of(engine, "j2")
    last = timeline.rows[-1]
    assert isinstance(last, StepAttemptRow)
    assert (last.name, last.attempt, last.outcome) == ("flaky", 1, "retrying")
    assert last.retry_at == started.status.resume_at
    assert timeline.header.next_wakeup_at == started.status.resume_at
    assert timeline.header.output is None


async def test_a_failed_instance_ends_with_its_failed_attempts_never_retrying(
    engine: Engine,
) -> None:
    (await engine.start(doomed, 0, id="d1")).unwrap()
    await run_pauses_out(engine, "d1")
    timeline = await timeline_of(engine, "d1")
    assert isinstance(timeline.header.status, Failed)
    assert shape(timeline.rows) == [
        ("status", "Created"),
        ("step", "x", "1", "failed"),
        ("step", "x", "2", "failed"),
        ("status", "Failed"),
    ]
    last_attempt = timeline.rows[2]
    assert isinstance(last_attempt, StepAttemptRow)
    assert last_attempt.error is not None
    assert last_attempt.error.message == "doomed failure 2"
    failed = timeline.rows[-1]
    assert isinstance(failed, StatusRow)
    assert failed.detail is not None
    assert failed.detail.startswith("RetryExhaustedError: ")


async def test_a_cancel_request_is_a_row_consumed_by_the_cancel(engine: Engine) -> None:
    gate["open"] = asyncio.Event()
    task = asyncio.create_task(engine.start(waits, 0, id="w1"))
    for _ in range(200):
        if engine.server.active:
            break
        await asyncio.sleep(0.005)
    clock.time_ms += 5
    cancelled = (await engine.cancel("w1", reason="changed my mind")).unwrap()
    assert cancelled.cancelled
    result = (await task).unwrap()
    assert isinstance(result.status, Cancelled)
    timeline = await timeline_of(engine, "w1")
    assert shape(timeline.rows) == [
        ("status", "Created"),
        ("step", "first", "1", "ok"),
        ("message", "cancel", "consumed"),
        ("status", "Cancelled"),
    ]
    message = timeline.rows[2]
    assert isinstance(message, MessageRow)
    assert message.payload == {"reason": "changed my mind"}
    assert message.sent_at == T0 + 5
    ended = timeline.rows[-1]
    assert isinstance(ended, StatusRow)
    assert ended.detail == "changed my mind"


async def test_an_attempt_record_stored_before_the_history_shows_its_last_error(
    engine: Engine,
) -> None:
    started = (await engine.start(journey, 1, id="old")).unwrap()
    assert isinstance(started.status, Paused)
    old_record = {
        "attempt": 2,
        "first_started_at": T0,
        "last_error": {
            "message": "from an older durably",
            "type": "ConnectionError",
            "traceback": None,
            "step_name": "flaky",
            "attempt": 1,
        },
        "started_at": None,
    }
    engine.host.data["old"]["step:flaky:attempt"] = dumps(old_record)  # type: ignore[attr-defined]
    timeline = await timeline_of(engine, "old")
    last = timeline.rows[-1]
    assert isinstance(last, StepAttemptRow)
    assert (last.name, last.attempt, last.outcome, last.started_at) == ("flaky", 1, "retrying", T0)
    assert last.error is not None
    assert last.error.message == "from an older durably"
    await run_pauses_out(engine, "old")  # the older record drives the retry as before
    assert (await engine.result("old")).unwrap()["flaky"] == "ok"


async def test_steps_keeps_one_record_per_step(engine: Engine) -> None:
    (await engine.start(journey, 4, id="j3")).unwrap()
    await run_pauses_out(engine, "j3")
    records = (await engine.steps("j3")).unwrap()
    assert [(r.name, r.attempt, r.error) for r in records] == [
        ("a", 1, None),
        ("flaky", 3, None),
        ("b", 1, None),
    ]
    (await engine.start(doomed, 0, id="d2")).unwrap()
    await run_pauses_out(engine, "d2")
    [failed] = (await engine.steps("d2")).unwrap()
    assert (failed.name, failed.attempt, failed.completed_at) == ("x", 2, None)
    assert failed.error == "ConnectionError: doomed failure 2"


async def test_an_unknown_instance_is_not_found(engine: Engine) -> None:
    found = await engine.timeline("nobody")
    assert isinstance(found, Failure)
    assert isinstance(found.failure(), InstanceNotFoundError)
