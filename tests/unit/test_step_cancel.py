"""A cancel and a running step (semantics.md sections 3 and 6): the step stops the workflow.

A cancel sent while a step runs stops the workflow before its next step, with the
user's reason; ``except Exception`` around a step never swallows it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import durably
from durably.domain.inbox import CANCEL, Outgoing
from durably.domain.serialization import dumps
from durably.status import Cancelled
from durably.types import WorkflowCall
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory
from tests.support.steps import logged

T0 = 1_000


def cancel_from_afar(h: Harness, reason: str) -> Callable[[], Awaitable[str]]:
    """A step body that sends a cancel to its own instance's inbox, as another process
    does while the step runs."""

    async def send() -> str:
        message = Outgoing(h.runtime.instance_id, CANCEL, payload=dumps({"reason": reason}))
        (await h.runtime.inbox.append(message)).unwrap()
        return "sent"

    return send


async def test_a_cancel_sent_while_a_step_runs_stops_the_next_step_with_the_users_reason(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[str] = []
    h: Harness

    @durably.workflow
    async def cancellable(_: Any) -> str:
        await durably.step("a", cancel_from_afar(h, "user said stop"))
        await durably.step("b", logged(calls, "b"))
        return "done"

    h = Harness(runtimes("i1", T0), cancellable)
    status = (await h.start()).status
    assert isinstance(status, Cancelled)
    assert status.reason == "user said stop"
    assert calls == []
    snapshot = h.snapshot()
    assert "step:a:result" in snapshot  # the step that was running committed
    assert "step:b:result" not in snapshot
    assert [e.reason for e in h.tracker.of_type("workflow.cancelled")] == ["user said stop"]


async def test_cancel_while_paused_then_a_late_alarm_runs_nothing(runtimes: RuntimeFactory) -> None:
    calls: list[str] = []

    @durably.workflow
    async def paused(_: Any) -> str:
        await durably.sleep("5s")
        return await durably.step("b", logged(calls, "b"))

    h = Harness(runtimes("i1", T0), paused)
    await h.start()
    cancelled = (await h.layer().orchestrator().cancel("no longer needed")).unwrap()
    assert cancelled.cancelled
    h.handle.set_time(T0 + 10_000)
    (await h.layer().orchestrator().handle_alarm()).unwrap()
    status = await h.status()
    assert isinstance(status, Cancelled)
    assert status.reason == "no longer needed"
    assert calls == []


async def test_cancel_of_a_running_workflow_interrupts_it_even_under_except_exception(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[str] = []
    finished: list[bool] = []

    async def cancel_then_wait() -> str:
        (await layer.orchestrator().cancel("stop now")).unwrap()
        calls.append("a")
        await asyncio.sleep(5)  # interrupted: the cancel reaches the running task here
        finished.append(True)
        return "a"

    @durably.workflow
    async def running(_: Any) -> str:
        with contextlib.suppress(Exception):  # must not swallow the cancellation
            await durably.step("a", cancel_then_wait)
        await durably.step("b", logged(calls, "b"))
        return "done"

    h = Harness(runtimes("i1", T0), running)
    layer = h.layer()  # one layer: its executions registry sees the running task
    result = (await layer.orchestrator().start(WorkflowCall("running"))).unwrap()
    assert not result.completed
    status = await h.status()
    assert isinstance(status, Cancelled)
    assert status.reason == "stop now"
    assert calls == ["a"]
    assert finished == []
    assert "step:a:result" not in h.snapshot()


async def test_except_exception_around_a_cancelled_step_does_not_swallow_it(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[str] = []
    h: Harness

    @durably.workflow
    async def swallowing(_: Any) -> str:
        await durably.step("a", cancel_from_afar(h, "bye"))
        try:
            await durably.step("b", logged(calls, "b"))
        except Exception:
            calls.append("swallowed")
        await durably.step("c", logged(calls, "c"))
        return "done"

    h = Harness(runtimes("i1", T0), swallowing)
    status = (await h.start()).status
    assert isinstance(status, Cancelled)
    assert status.reason == "bye"
    assert calls == []
