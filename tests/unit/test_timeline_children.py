"""``Engine.timeline`` of child workflows: a parent's header lists its children and has a
row per child (started, and how it ended once its end reached the parent's inbox), its
``child`` inbox messages name the child that ended and cross-reference its row by
``seq``; a child's header names its parent. Over ``memory://`` with a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

import durably
from durably.domain.inbox import InboxMessage
from durably.domain.records import ParentLink
from durably.domain.status import Paused, WorkflowError
from durably.engine import ChildRow, Engine, MessageRow, StatusRow, StepAttemptRow, Timeline
from durably.engine.timeline import build_timeline
from durably.testing import ManualClock

T0 = 1_714_564_800_000
clock = ManualClock(T0)


@durably.workflow
async def invoice(n: int) -> int:
    if n == 2:
        await durably.sleep("1s", name="nap")
        raise LookupError(f"no customer {n}")
    if n == 3:
        await durably.wait_for_event("go")
    return await durably.step("amount", lambda: n * 10)


@durably.workflow
async def billing(month: str) -> list[str]:
    await durably.step("customers", lambda: [1, 2, 3])
    first = await durably.start_child(invoice, 1)
    second = await durably.start_child(invoice, 2)
    third = await durably.start_child(invoice, 3)
    done = []
    try:
        await second.result()
    except durably.ChildWorkflowError as e:
        done.append(e.status)
    done.append(str(await first.result()))  # it ended long before: its end waited
    done.append(str(await third.result()))
    return done


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    clock.time_ms = T0
    async with Engine([invoice, billing], backend="memory://", clock=clock) as opened:
        yield opened


async def timeline_of(engine: Engine, instance_id: str) -> Timeline:
    timeline: Timeline = (await engine.timeline(instance_id)).unwrap()
    return timeline


def without_traceback(row: Any) -> Any:
    """``row`` with its error's traceback left out (it names files of this machine)."""
    error = getattr(row, "error", None)
    if error is None:
        return row
    return attrs.evolve(row, error=attrs.evolve(error, traceback=None))


async def billing_with_its_first_child_ended(engine: Engine) -> None:
    """Child 1 completes at T0 + 100, while the parent waits for child 2."""
    started = (await engine.start(billing, "2026-11", id="b")).unwrap()
    assert started.status == Paused("child", None, "invoice#2", ("child:b/invoice#2",))
    clock.time_ms = T0 + 100
    await engine.run_until_idle()  # the children start; the first one ends


async def billing_waiting_for_its_third_child(engine: Engine) -> None:
    """Child 1 completes at T0 + 100, child 2 fails at T0 + 2 000, child 3 waits."""
    await billing_with_its_first_child_ended(engine)
    clock.time_ms = T0 + 2_000
    await engine.run_until_idle()  # the second one fails after its nap


async def test_a_parent_with_a_completed_a_failed_and_a_running_child(engine: Engine) -> None:
    await billing_waiting_for_its_third_child(engine)
    timeline = await timeline_of(engine, "b")
    header = timeline.header
    assert header.status == Paused("child", None, "invoice#3", ("child:b/invoice#3",))
    assert header.children == ("b/invoice", "b/invoice#2", "b/invoice#3")
    assert header.parent is None
    completed, failed, running = (r for r in timeline.rows if isinstance(r, ChildRow))
    assert [without_traceback(row) for row in timeline.rows] == [
        StatusRow("Created", T0),
        StepAttemptRow("customers", 1, T0, T0, 0, "ok"),
        ChildRow("invoice", "b/invoice", "invoice", T0, "Completed", T0 + 100, 10, seq=1),
        ChildRow(
            "invoice#2",
            "b/invoice#2",
            "invoice",
            T0,
            "Failed",
            T0 + 2_000,
            error=WorkflowError("no customer 2", type="LookupError"),
            seq=2,
        ),
        ChildRow("invoice#3", "b/invoice#3", "invoice", T0),
        MessageRow(1, "child", "b/invoice", T0 + 100, True, {"status": "Completed", "output": 10}),
        without_traceback(timeline.rows[6]),
    ]
    assert (completed.outcome, failed.outcome, running.outcome) == ("Completed", "Failed", None)
    assert failed.error is not None
    assert "LookupError: no customer 2" in str(failed.error.traceback)
    end = timeline.rows[6]
    assert isinstance(end, MessageRow)
    assert (end.seq, end.type, end.name, end.sent_at, end.consumed) == (
        2,
        "child",
        "b/invoice#2",
        T0 + 2_000,
        True,
    )
    assert isinstance(end.payload, dict)
    assert end.payload["status"] == "Failed"


async def test_a_child_names_its_parent(engine: Engine) -> None:
    await billing_waiting_for_its_third_child(engine)
    timeline = await timeline_of(engine, "b/invoice#3")
    assert timeline.header.parent == ParentLink("b", "invoice#3")
    assert timeline.header.children == ()
    assert timeline.header.workflow == "invoice"
    assert not [row for row in timeline.rows if isinstance(row, ChildRow)]
    top = await timeline_of(engine, "b")
    assert top.header.parent is None


async def test_the_end_of_a_child_the_parent_has_not_received_yet(engine: Engine) -> None:
    await billing_with_its_first_child_ended(engine)
    timeline = await timeline_of(engine, "b")
    assert timeline.header.status == Paused("child", None, "invoice#2", ("child:b/invoice#2",))
    assert timeline.rows[2:] == (
        ChildRow("invoice", "b/invoice", "invoice", T0, "Completed", T0 + 100, 10, seq=1),
        ChildRow("invoice#2", "b/invoice#2", "invoice", T0),
        ChildRow("invoice#3", "b/invoice#3", "invoice", T0),
        MessageRow(1, "child", "b/invoice", T0 + 100, False, {"status": "Completed", "output": 10}),
    )


async def test_a_child_that_had_not_ended_when_its_parent_ended(engine: Engine) -> None:
    await billing_waiting_for_its_third_child(engine)
    clock.time_ms = T0 + 3_000
    assert (await engine.cancel("b", reason="month closed")).unwrap()
    await engine.run_until_idle()  # the parent's cancel cancels the third child
    timeline = await timeline_of(engine, "b")
    assert timeline.rows[4] == ChildRow("invoice#3", "b/invoice#3", "invoice", T0)
    assert timeline.rows[-1] == StatusRow("Cancelled", T0 + 3_000, "month closed")
    ends = [r.name for r in timeline.rows if isinstance(r, MessageRow)]
    assert ends == ["b/invoice", "b/invoice#2"]  # an ended parent takes no more messages
    child = await timeline_of(engine, "b/invoice#3")
    assert child.rows[-1] == StatusRow("Cancelled", T0 + 3_000, "parent cancelled")


def test_children_in_start_order_then_in_the_order_of_their_keys() -> None:
    def child(key: str, started_at: int, **ended: Any) -> dict[str, Any]:
        return {"child_id": f"p/{key}", "workflow": "invoice", "started_at": started_at, **ended}

    entries: dict[str, Any] = {
        "workflow:status": {"tag": "Paused", "reason": "child", "resume_at": None},
        "workflow:name": "billing",
        "workflow:startedAt": T0,
        "child:invoice#10": child("invoice#10", T0 + 1),
        "child:invoice#2": child("invoice#2", T0 + 1, outcome="Completed", ended_at=T0 + 5),
        "child:a%3Ab": child("a:b", T0 + 1),
        "child:invoice": child("invoice", T0 + 2),
    }
    messages = [
        InboxMessage(1, "child", "p/invoice#2", {"status": "Completed"}, T0 + 5, consumed=True),
        InboxMessage(2, "child", "p/invoice#10", {"status": "Completed", "output": 7}, T0 + 6),
    ]
    timeline = build_timeline("p", entries, None, messages, None)
    assert timeline is not None
    children = [r for r in timeline.rows if isinstance(r, ChildRow)]
    assert [r.key for r in children] == ["a:b", "invoice#2", "invoice#10", "invoice"]
    assert timeline.header.children == ("p/a:b", "p/invoice#2", "p/invoice#10", "p/invoice")
    # Ended, its end still in the inbox: the row tells the outcome the message carries.
    assert children[2] == ChildRow(
        "invoice#10", "p/invoice#10", "invoice", T0 + 1, "Completed", T0 + 6, 7, seq=2
    )
    assert children[1].seq == 1
    assert (children[0].outcome, children[0].seq) == (None, None)
