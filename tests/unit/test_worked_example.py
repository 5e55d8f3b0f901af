"""semantics.md section 11, step by step: the worked example, and its crash variant."""

from __future__ import annotations

import attrs
import pytest
from dependency_injector import providers

import durably
from durably.containers import WorkflowLayer
from durably.domain.events import StepCompleted, WorkflowRecovered
from durably.domain.status import Completed, Paused, Running
from durably.ports import InstanceRuntime
from durably.services import WorkflowOrchestrator
from durably.trackers import InMemoryTracker
from tests.support.runtimes import RuntimeFactory, RuntimeHandle

pytestmark = pytest.mark.timeout(10)


class Crash(BaseException):
    """The process dies here (not an ``Exception``: no step failure, no workflow failure)."""


@attrs.define
class Order:
    """The example's workflow, with a record of which step functions ran and their keys."""

    crash_b: int = 0
    calls: list[str] = attrs.field(factory=list)
    idempotency_keys: list[str] = attrs.field(factory=list)

    def run(self, name: str) -> str:
        self.calls.append(name)
        self.idempotency_keys.append(durably.step_info().idempotency_key)
        if name == "b" and self.crash_b > 0:
            self.crash_b -= 1
            raise Crash  # b ran, then the process died before its commit
        return name.upper()

    def definition(self) -> durably.WorkflowDefinition[str, str]:
        async def order(x: str) -> str:
            await durably.step("a", lambda: self.run("a"))
            await durably.sleep("5s")
            await durably.step("b", lambda: self.run("b"))
            return "done"

        return durably.make(order)


@attrs.define
class World:
    runtime: InstanceRuntime
    handle: RuntimeHandle
    tracker: InMemoryTracker
    order: Order

    def orchestrator(self) -> WorkflowOrchestrator:
        """A fresh layer over the same runtime each time (a new process would do the same)."""
        layer = WorkflowLayer(
            runtime=self.runtime,
            workflows=[self.order.definition()],
            tracker=providers.Object(self.tracker),
        )
        orchestrator: WorkflowOrchestrator = layer.orchestrator()
        return orchestrator


def world(runtimes: RuntimeFactory, crash_b: int = 0) -> World:
    runtime, handle = runtimes("i1", 1000)
    return World(runtime, handle, InMemoryTracker(), Order(crash_b=crash_b))


async def test_step_1_start_runs_a_and_pauses_at_the_sleep(runtimes: RuntimeFactory) -> None:
    w = world(runtimes)
    before = w.handle.commits
    result = (await w.orchestrator().start(durably.WorkflowCall("order", "x"))).unwrap()
    assert result.id == "i1"
    assert result.completed is False
    assert result.output is None
    assert result.status == Paused("sleep", 6000)
    # Three commits: (name, input, Running) / (a's result, its marker) / (sleep, Paused, alarm).
    assert w.handle.commits - before == 3
    snapshot = w.handle.storage_snapshot()
    assert snapshot["workflow:name"] == "order"
    assert snapshot["workflow:input"] == "x"
    assert snapshot["step:a:result"]["value"] == "A"
    assert snapshot["step:a:result"]["meta"]["index"] == 0  # marked completed, first
    assert "step:b:result" not in snapshot
    assert snapshot["sleep:sleep#1"] == {
        "resume_at": 6000,
        "duration_ms": 5000,
        "completed": False,
        "position": 1,  # after step a (the determinism check's order)
    }
    assert snapshot["workflow:status"] == {
        "tag": "Paused",
        "reason": "sleep",
        "resume_at": 6000,
        "step_name": None,
    }
    assert w.handle.scheduled_time() == 6000
    assert w.order.calls == ["a"]


async def test_the_first_commit_writes_name_input_and_running(runtimes: RuntimeFactory) -> None:
    w = world(runtimes)
    seen: dict[str, object] = {}

    def a() -> str:
        seen.update(w.handle.storage_snapshot())  # what the first commit left behind
        return "A"

    async def order(x: str) -> str:
        await durably.step("a", a)
        return "done"

    layer = WorkflowLayer(runtime=w.runtime, workflows=[durably.make(order)])
    (await layer.orchestrator().start(durably.WorkflowCall("order", "x"))).unwrap()
    assert seen["workflow:name"] == "order"
    assert seen["workflow:input"] == "x"
    assert seen["workflow:status"] == {"tag": "Running", "running_at": 1000}
    assert not any(k.startswith(("step:", "completed:", "sleep:")) for k in seen)


async def test_step_2_an_early_alarm_re_arms_and_changes_nothing_else(
    runtimes: RuntimeFactory,
) -> None:
    w = world(runtimes)
    (await w.orchestrator().start(durably.WorkflowCall("order", "x"))).unwrap()
    w.handle.set_time(3000)
    w.handle.clear_alarm()  # the host clears the alarm it fires
    before = w.handle.storage_snapshot()
    events = len(w.tracker.events)
    assert (await w.orchestrator().handle_alarm()).unwrap() is None
    assert w.handle.scheduled_time() == 6000
    assert w.handle.storage_snapshot() == before
    assert len(w.tracker.events) == events
    assert w.order.calls == ["a"]
    status = (await w.orchestrator().get_status()).unwrap()
    assert status.status == Paused("sleep", 6000)


async def test_step_3_the_alarm_at_6000_resumes_replays_and_completes(
    runtimes: RuntimeFactory,
) -> None:
    w = world(runtimes)
    (await w.orchestrator().start(durably.WorkflowCall("order", "x"))).unwrap()
    w.handle.set_time(3000)
    (await w.orchestrator().handle_alarm()).unwrap()
    w.handle.set_time(6000)
    w.tracker.clear()
    before = w.handle.commits
    (await w.orchestrator().handle_alarm()).unwrap()

    # Three commits: Resume / b's result (with the sleep's done record) / output + Completed.
    assert w.handle.commits - before == 3
    assert w.order.calls == ["a", "b"]  # a came from storage, b ran once
    assert w.tracker.types() == [
        "workflow.resumed",
        "step.completed",
        "sleep.completed",  # the Resume commit ended it: emitted before b starts
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    a_replayed, b_done = w.tracker.of_type(StepCompleted)
    assert (a_replayed.step_name, a_replayed.cached) == ("a", True)
    assert (b_done.step_name, b_done.cached) == ("b", False)
    snapshot = w.handle.storage_snapshot()
    assert snapshot["workflow:output"] == "done"
    assert snapshot["workflow:status"] == {"tag": "Completed", "completed_at": 6000}
    assert snapshot["sleep:sleep#1"]["completed"] is True
    assert snapshot["sleep:sleep#1"]["resume_at"] == 6000
    assert snapshot["step:b:result"]["value"] == "B"
    assert "workflow:pendingResumeAt" not in snapshot
    assert w.handle.scheduled_time() is None
    status = (await w.orchestrator().get_status()).unwrap()
    assert status.status == Completed(6000)
    assert status.completed_steps == ("a", "b")
    assert status.exists is True


async def test_step_3_resume_goes_through_running_at_6000(runtimes: RuntimeFactory) -> None:
    w = world(runtimes)
    seen: list[object] = []

    async def order(x: str) -> str:
        await durably.step("a", lambda: "A")
        await durably.sleep("5s")
        await durably.step("b", lambda: seen.append(w.handle.storage_snapshot()["workflow:status"]))
        return "done"

    layer = WorkflowLayer(runtime=w.runtime, workflows=[durably.make(order)])
    (await layer.orchestrator().start(durably.WorkflowCall("order", "x"))).unwrap()
    w.handle.set_time(6000)
    (await layer.orchestrator().handle_alarm()).unwrap()
    assert seen == [{"tag": "Running", "running_at": 6000}]


async def test_step_3_with_purge_enabled_schedules_the_purge(runtimes: RuntimeFactory) -> None:
    w = world(runtimes)
    layer = WorkflowLayer(
        runtime=w.runtime,
        workflows=[w.order.definition()],
        purge=providers.Object(durably.PurgeConfig(enabled=True, delay_ms=60_000)),
    )
    (await layer.orchestrator().start(durably.WorkflowCall("order", "x"))).unwrap()
    w.handle.set_time(6000)
    (await layer.orchestrator().handle_alarm()).unwrap()
    assert w.handle.storage_snapshot()["workflow:purgeAt"] == 66_000
    assert w.handle.scheduled_time() == 66_000


async def test_step_4_a_later_start_with_other_input_returns_the_stored_output(
    runtimes: RuntimeFactory,
) -> None:
    w = world(runtimes)
    (await w.orchestrator().start(durably.WorkflowCall("order", "x"))).unwrap()
    w.handle.set_time(6000)
    (await w.orchestrator().handle_alarm()).unwrap()
    w.handle.set_time(10_000)
    before = w.handle.storage_snapshot()
    commits = w.handle.commits
    again = (await w.orchestrator().start(durably.WorkflowCall("order", "y"))).unwrap()
    assert again.id == "i1"
    assert again.completed is True
    assert again.output == "done"
    assert again.status == Completed(6000)
    assert w.order.calls == ["a", "b"]  # nothing ran again
    assert w.handle.commits == commits
    assert w.handle.storage_snapshot() == before  # the input "y" was ignored


async def test_crash_after_b_ran_recovers_and_completes(runtimes: RuntimeFactory) -> None:
    w = world(runtimes, crash_b=1)
    (await w.orchestrator().start(durably.WorkflowCall("order", "x"))).unwrap()
    w.handle.set_time(6000)
    with pytest.raises(Crash):
        await w.orchestrator().handle_alarm()
    # The process died: b ran but did not commit; the instance stays Running.
    assert w.order.calls == ["a", "b"]
    snapshot = w.handle.storage_snapshot()
    assert snapshot["workflow:status"] == {"tag": "Running", "running_at": 6000}
    assert "step:b:result" not in snapshot
    status = (await w.orchestrator().get_status()).unwrap()
    assert status.status == Running(6000)
    assert status.completed_steps == ("a",)

    w.handle.set_time(7000)
    w.tracker.clear()
    (await w.orchestrator().handle_alarm()).unwrap()  # the next owner: Recover and replay

    assert w.order.calls == ["a", "b", "b"]  # a not re-run, b run again (at least once)
    assert w.order.idempotency_keys == ["i1/a", "i1/b", "i1/b"]
    (recovered,) = w.tracker.of_type(WorkflowRecovered)
    assert (recovered.attempt, recovered.reason) == (1, "infrastructure_restart")
    cached = [e for e in w.tracker.of_type(StepCompleted) if e.cached]
    assert [e.step_name for e in cached] == ["a"]
    assert w.tracker.types()[0] == "workflow.recovered"
    assert w.tracker.types()[-1] == "workflow.completed"
    final = (await w.orchestrator().get_status()).unwrap()
    assert final.status == Completed(7000)
    assert final.completed_steps == ("a", "b")
    assert w.handle.storage_snapshot()["workflow:output"] == "done"
    assert "workflow:recoveryAttempts" not in w.handle.storage_snapshot()
    again = (await w.orchestrator().start(durably.WorkflowCall("order", "y"))).unwrap()
    assert (again.completed, again.output) == (True, "done")


async def test_crash_during_start_propagates_and_leaves_running(runtimes: RuntimeFactory) -> None:
    w = world(runtimes)

    async def order(x: str) -> str:
        await durably.step("a", lambda: w.order.run("a"))
        raise Crash

    layer = WorkflowLayer(runtime=w.runtime, workflows=[durably.make(order)])
    with pytest.raises(Crash):
        await layer.orchestrator().start(durably.WorkflowCall("order", "x"))
    assert w.handle.storage_snapshot()["workflow:status"] == {"tag": "Running", "running_at": 1000}
