"""WorkflowOrchestrator.cancel (semantics.md section 6), in this process and from afar.

A cancel of an instance that is not running is recorded at once; one sent from a
process without the lease goes to the instance's inbox and is recorded by whoever
handles its next alarm; a running execution stops at once in this process, and at its
next step when the cancel comes from another.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durably
from durably.domain.inbox import CANCEL, AppendOutcome, Outgoing
from durably.domain.serialization import dumps
from durably.domain.status import Cancelled, Queued
from durably.services import WorkflowStateMachine
from durably.services.types import CancelResult
from tests.support.harness import Harness
from tests.support.orchestrator import checkout, harness
from tests.support.runtimes import RuntimeFactory

pytestmark = pytest.mark.timeout(10)


async def test_cancel_of_nothing_is_not_found(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    assert (await h.orchestrator().cancel(reason="x")).unwrap() == CancelResult(
        False, "not_found", None
    )
    assert h.handle.storage_snapshot() == {}


async def test_cancel_of_a_terminal_instance_is_already_terminal(runtimes: RuntimeFactory) -> None:
    async def body(_: Any) -> int:
        return 1

    h = harness(runtimes, body)
    await h.start()
    before = h.handle.storage_snapshot()
    result = (await h.orchestrator().cancel(reason="late")).unwrap()
    assert result == CancelResult(False, "already_terminal", "Completed")
    assert h.handle.storage_snapshot() == before


async def test_cancel_of_a_queued_instance_is_immediate_and_clears_the_alarm(
    runtimes: RuntimeFactory,
) -> None:
    ran: list[int] = []

    async def body(_: Any) -> None:
        await durably.step("a", lambda: ran.append(1))

    h = harness(runtimes, body)
    (await h.orchestrator().queue(durably.WorkflowCall("wf", None))).unwrap()
    h.handle.set_time(1200)
    result = (await h.orchestrator().cancel(reason="user asked")).unwrap()
    assert result == CancelResult(True, None, "Queued")
    assert (await h.get_status()).status == Cancelled(1200, "user asked")
    assert h.handle.scheduled_time() is None
    await h.alarm_at(2000)
    assert ran == []
    (event,) = h.tracker.of_type("workflow.cancelled")
    assert event.reason == "user asked"


async def test_cancel_of_a_paused_instance_is_immediate_and_clears_the_alarm(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    await h.start()
    h.handle.set_time(2000)
    result = (await h.orchestrator().cancel(reason="user asked")).unwrap()
    assert result == CancelResult(True, None, "Paused")
    status = await h.get_status()
    assert status.status == Cancelled(2000, "user asked")
    assert status.completed_steps == ("a",)
    snapshot = h.handle.storage_snapshot()
    assert snapshot["workflow:cancelReason"] == "user asked"
    assert snapshot["workflow:cancelled"] is True
    assert "workflow:pendingResumeAt" not in snapshot
    assert h.handle.scheduled_time() is None
    await h.alarm_at(6000)  # a stale alarm does nothing
    assert (await h.get_status()).status == Cancelled(2000, "user asked")


async def test_cancel_of_a_pending_instance(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    sm: WorkflowStateMachine = h.layer().state_machine()
    (await sm.initialize("wf", None)).unwrap()
    result = (await h.orchestrator().cancel(reason="never mind")).unwrap()
    assert result == CancelResult(True, None, "Pending")
    assert (await h.get_status()).status == Cancelled(1000, "never mind")


# A cancel from a process that cannot take the lease goes to the instance's inbox (what
# Engine.cancel does when another worker holds it): it writes nothing of the instance's
# namespace, and makes a waiting instance due; whoever handles that alarm records Cancelled.


async def send_cancel(h: Harness, reason: str | None) -> AppendOutcome:
    """Append a cancel to the inbox, as a process without the lease does."""
    message = Outgoing(h.runtime.instance_id, CANCEL, payload=dumps({"reason": reason}))
    outcome: AppendOutcome = (await h.runtime.inbox.append(message)).unwrap()
    return outcome


async def test_a_cancel_sent_to_a_paused_instance_only_makes_it_due(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    await h.start()
    before = h.handle.storage_snapshot()
    outcome = await send_cancel(h, "from afar")
    assert outcome == AppendOutcome("Paused", 1, workflow="wf")
    assert h.handle.storage_snapshot() == before  # status and pause untouched
    assert h.handle.scheduled_time() == 1000  # due now, not at the sleep's end (6000)
    assert h.tracker.of_type("workflow.cancelled") == []
    pending = (await h.runtime.inbox.pending()).unwrap()
    assert [(m.kind, m.payload) for m in pending] == [("cancel", {"reason": "from afar"})]


@pytest.mark.parametrize("alarm_at", [3000, 6000], ids=["early", "due"])
async def test_the_next_alarm_of_a_paused_instance_records_a_sent_cancel(
    runtimes: RuntimeFactory, alarm_at: int
) -> None:
    ran: list[str] = []

    async def body(_: Any) -> str:
        await durably.step("a", lambda: ran.append("a"))
        await durably.sleep("5s")
        ran.append("after the sleep")  # no step or sleep left that would see the cancel
        return "done"

    h = harness(runtimes, body)
    await h.start()
    await send_cancel(h, "from afar")
    await h.alarm_at(alarm_at)
    status = await h.get_status()
    assert status.status == Cancelled(alarm_at, "from afar")
    assert status.completed_steps == ("a",)
    assert ran == ["a"]
    assert h.handle.scheduled_time() is None
    snapshot = h.handle.storage_snapshot()
    assert "workflow:pendingResumeAt" not in snapshot
    assert (snapshot["workflow:cancelled"], snapshot["workflow:cancelReason"]) == (
        True,
        "from afar",
    )
    assert (await h.runtime.inbox.pending()).unwrap() == []  # consumed by that commit
    (event,) = h.tracker.of_type("workflow.cancelled")
    assert (event.reason, event.completed_steps) == ("from afar", ("a",))
    assert h.tracker.of_type("workflow.resumed") == []


async def test_the_alarm_of_a_queued_instance_records_a_sent_cancel(
    runtimes: RuntimeFactory,
) -> None:
    ran: list[int] = []

    async def body(_: Any) -> None:
        await durably.step("a", lambda: ran.append(1))

    h = harness(runtimes, body)
    (await h.orchestrator().queue(durably.WorkflowCall("wf", None))).unwrap()
    assert (await send_cancel(h, "from afar")).status == "Queued"
    assert isinstance((await h.get_status()).status, Queued)
    await h.alarm_at(1000)
    assert (await h.get_status()).status == Cancelled(1000, "from afar")
    assert ran == []
    assert h.handle.scheduled_time() is None
    assert h.tracker.of_type("workflow.started") == []


async def test_a_cancel_sent_to_nothing_or_a_finished_instance_writes_nothing(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes, checkout)
    assert await send_cancel(h, None) == AppendOutcome(None)
    await h.start()
    before, commits = h.handle.storage_snapshot(), h.handle.commits
    outcome = await send_cancel(h, "late")
    assert outcome == AppendOutcome("Completed", workflow="wf")
    assert not outcome.delivered
    assert h.handle.storage_snapshot() == before
    assert h.handle.commits == commits
    assert (await h.runtime.inbox.pending()).unwrap() == []


async def test_cancel_interrupts_a_running_execution_in_the_same_process(
    runtimes: RuntimeFactory,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    after: list[int] = []

    async def wait() -> str:
        entered.set()
        await release.wait()
        return "never"

    async def body(_: Any) -> None:
        await durably.step("a", lambda: "A")
        await durably.step("wait", wait)
        await durably.step("b", lambda: after.append(1))

    h = harness(runtimes, body)
    layer = h.layer()  # one layer: one registry of running executions
    task = asyncio.create_task(layer.orchestrator().start(durably.WorkflowCall("wf", None)))
    await asyncio.wait_for(entered.wait(), 5)
    h.handle.set_time(1500)
    cancel = (await layer.orchestrator().cancel(reason="user asked")).unwrap()
    assert cancel == CancelResult(True, None, "Running")
    result = (await asyncio.wait_for(task, 5)).unwrap()
    assert result.completed is False
    assert result.status == Cancelled(1500, "user asked")  # fix: the user's reason, no step name
    assert after == []
    assert not release.is_set()
    snapshot = h.handle.storage_snapshot()
    assert "step:wait:result" not in snapshot
    assert snapshot["workflow:status"]["reason"] == "user asked"
    (event,) = h.tracker.of_type("workflow.cancelled")
    assert (event.reason, event.completed_steps) == ("user asked", ("a",))
    assert h.handle.scheduled_time() is None


async def test_cancel_from_another_process_stops_the_execution_at_its_next_step(
    runtimes: RuntimeFactory,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    after: list[int] = []

    async def wait() -> str:
        entered.set()
        await release.wait()
        return "W"

    async def body(_: Any) -> None:
        await durably.step("wait", wait)
        await durably.step("b", lambda: after.append(1))

    h = harness(runtimes, body)
    task = asyncio.create_task(h.orchestrator().start(durably.WorkflowCall("wf", None)))
    await asyncio.wait_for(entered.wait(), 5)
    elsewhere = h.orchestrator()  # another layer: it cannot reach the running task
    assert (await elsewhere.cancel(reason="from afar")).unwrap() == CancelResult(
        True, None, "Running"
    )
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()  # still in its step
    assert "workflow:cancelled" not in h.handle.storage_snapshot()  # only the holder writes
    release.set()
    result = (await asyncio.wait_for(task, 5)).unwrap()
    assert result.status == Cancelled(1000, "from afar")
    assert after == []
    assert (await h.get_status()).completed_steps == ("wait",)  # the running step still committed


async def test_cancel_without_a_reason_records_none(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    await h.start()
    (await h.orchestrator().cancel()).unwrap()
    assert (await h.get_status()).status == Cancelled(1000, None)
