"""``Engine.timeline`` of events: a row per wait (waiting, received, timed out), per
published key (its latest value) and per event in the inbox (with its event id), at the
times the records tell, over ``memory://`` with a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import durably
from durably.domain.inbox import InboxMessage
from durably.domain.status import Paused
from durably.engine import (
    Engine,
    MessageRow,
    PublishedRow,
    StatusRow,
    Timeline,
    WaitRow,
)
from durably.engine.timeline import build_timeline
from durably.testing import ManualClock

T0 = 1_714_564_800_000
clock = ManualClock(T0)


@durably.workflow
async def expense(claim: str) -> str:
    await durably.set_event("stage", "waiting")
    decision = await durably.wait_for_event("approval", timeout="1h")
    await durably.set_event("stage", {"decided": decision})
    try:
        await durably.wait_for_event("approval", timeout="10s")
    except durably.EventTimeoutError:
        return "one decision only"
    return "two decisions"


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    clock.time_ms = T0
    async with Engine([expense], backend="memory://", clock=clock) as opened:
        yield opened


async def timeline_of(engine: Engine, instance_id: str) -> Timeline:
    timeline: Timeline = (await engine.timeline(instance_id)).unwrap()
    return timeline


def kinds(timeline: Timeline) -> list[tuple[str, str]]:
    names = []
    for row in timeline.rows:
        match row:
            case WaitRow():
                names.append(("wait", f"{row.name}:{row.outcome}"))
            case PublishedRow():
                names.append(("published", f"{row.key}:{row.version}"))
            case MessageRow():
                names.append(("message", f"{row.type}:{row.name}"))
            case StatusRow():
                names.append(("status", row.status))
    return names


async def test_a_waiting_wait_and_a_published_value(engine: Engine) -> None:
    started = (await engine.start(expense, "c-1", id="e1")).unwrap()
    assert isinstance(started.status, Paused)
    timeline = await timeline_of(engine, "e1")
    assert kinds(timeline) == [
        ("status", "Created"),
        ("published", "stage:1"),
        ("wait", "approval:waiting"),
    ]
    published, wait = timeline.rows[1:]
    assert published == PublishedRow("stage", "waiting", 1, T0)
    assert wait == WaitRow("approval", "approval", T0, T0 + 3_600_000, 3_600_000, "waiting")


async def test_a_received_event_and_a_timed_out_wait(engine: Engine) -> None:
    (await engine.start(expense, "c-2", id="e2")).unwrap()
    clock.time_ms = T0 + 1_000
    sent = await engine.send_event("e2", "approval", {"ok": True}, event_id="mail-1")
    assert sent.unwrap().delivered
    clock.time_ms = T0 + 2_000
    assert await engine.run_until_idle() == 1  # receives it, then waits for a second one
    clock.time_ms = T0 + 20_000
    assert await engine.run_until_idle() == 1  # the second wait times out
    timeline = await timeline_of(engine, "e2")
    assert kinds(timeline) == [
        ("status", "Created"),
        ("wait", "approval:received"),
        ("message", "event:approval"),
        ("published", "stage:2"),
        ("wait", "approval#2:timed_out"),
        ("status", "Completed"),
    ]
    received, message, published, timed_out = timeline.rows[1:5]
    assert received == WaitRow(
        "approval",
        "approval",
        T0,
        T0 + 3_600_000,
        3_600_000,
        "received",
        ended_at=T0 + 2_000,
        seq=1,
        event_id="mail-1",
        sent_at=T0 + 1_000,
        payload={"ok": True},
    )
    assert message == MessageRow(1, "event", "approval", T0 + 1_000, True, {"ok": True}, "mail-1")
    assert published == PublishedRow("stage", {"decided": {"ok": True}}, 2, T0 + 2_000)
    assert timed_out == WaitRow(
        "approval#2",
        "approval",
        T0 + 2_000,
        T0 + 12_000,
        10_000,
        "timed_out",
        ended_at=T0 + 20_000,
    )


def test_only_an_event_sent_with_an_id_has_one() -> None:
    entries: dict[str, Any] = {
        "workflow:status": {"tag": "Cancelled", "cancelled_at": T0 + 9, "reason": "no"},
        "workflow:name": "expense",
        "workflow:startedAt": T0,
    }
    messages = [
        InboxMessage(1, "event", "approval", None, T0 + 1, "event:e:1"),
        InboxMessage(2, "event", "approval", {"n": 2}, T0 + 2),
        InboxMessage(3, "cancel", None, {"reason": "no"}, T0 + 3, None, consumed=True),
    ]
    timeline = build_timeline("x", entries, None, messages, None)
    assert timeline is not None
    found = [(r.seq, r.type, r.event_id) for r in timeline.rows if isinstance(r, MessageRow)]
    assert found == [(1, "event", "e:1"), (2, "event", None), (3, "cancel", None)]
