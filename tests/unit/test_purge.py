"""Purge (semantics.md section 8): delete a finished instance's keys later, keep a tombstone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
from dependency_injector import providers

import durably
from durably.containers import WorkflowLayer
from durably.domain.events import WorkflowPurged
from durably.domain.status import Cancelled, Completed, Failed
from durably.ports import InstanceRuntime
from durably.services import PurgeConfig, PurgeManager, WorkflowOrchestrator
from durably.services.types import StartResult
from durably.testing import TestRuntimeHandle, create_in_memory_runtime
from durably.trackers import InMemoryTracker

pytestmark = pytest.mark.timeout(10)

Body = Callable[[Any], Awaitable[Any]]
TOMBSTONE_KEYS = {"workflow:status", "workflow:name", "workflow:tombstone"}


@attrs.define
class Harness:
    runtime: InstanceRuntime
    handle: TestRuntimeHandle
    tracker: InMemoryTracker
    body: Body
    purge: PurgeConfig
    runs: list[int] = attrs.field(factory=list)

    def layer(self) -> Any:
        runs = self.runs
        body = self.body

        async def counted(x: Any) -> Any:
            runs.append(1)
            return await body(x)

        return WorkflowLayer(
            runtime=self.runtime,
            workflows={"wf": durably.make(counted, name="wf")},
            tracker=providers.Object(self.tracker),
            purge=providers.Object(self.purge),
        )

    def orchestrator(self) -> WorkflowOrchestrator:
        orchestrator: WorkflowOrchestrator = self.layer().orchestrator()
        return orchestrator

    async def start(self, input: Any = "x") -> StartResult:
        return (await self.orchestrator().start(durably.WorkflowCall("wf", input))).unwrap()

    async def alarm_at(self, at: int) -> None:
        self.handle.set_time(at)
        self.handle.clear_alarm()
        (await self.orchestrator().handle_alarm()).unwrap()


async def finishes(x: Any) -> str:
    await durably.step("a", lambda: {"big": "data"})
    return "done"


async def sleeps(x: Any) -> str:
    await durably.step("a", lambda: "A")
    await durably.sleep("5s")
    return "done"


async def fails(x: Any) -> None:
    await durably.step("a", lambda: "A")
    raise ValueError("broken")


def harness(body: Body = finishes, *, enabled: bool = True, delay_ms: int = 60_000) -> Harness:
    runtime, handle = create_in_memory_runtime("p1", 1000)
    config = PurgeConfig(enabled=enabled, delay_ms=delay_ms)
    return Harness(runtime, handle, InMemoryTracker(), body, config)


def test_config_defaults() -> None:
    config = PurgeConfig()
    assert (config.enabled, config.delay_ms) == (False, 60_000)
    assert durably.PurgeConfig is PurgeConfig


@pytest.mark.parametrize("delay", [-1, 1.5, True])
def test_config_rejects_a_bad_delay(delay: Any) -> None:
    with pytest.raises(ValueError, match="delay_ms"):
        PurgeConfig(enabled=True, delay_ms=delay)


async def test_a_terminal_status_stores_the_purge_time_and_sets_the_alarm() -> None:
    h = harness()
    await h.start()
    snapshot = h.handle.storage_snapshot()
    assert snapshot["workflow:purgeAt"] == 61_000
    assert h.handle.scheduled_time() == 61_000
    manager: PurgeManager = h.layer().purge_manager()
    assert (await manager.get_purge_at()).unwrap() == 61_000


async def test_an_early_purge_alarm_is_re_armed_and_deletes_nothing() -> None:
    h = harness()
    await h.start()
    before = h.handle.storage_snapshot()
    await h.alarm_at(30_000)
    assert h.handle.scheduled_time() == 61_000
    assert h.handle.storage_snapshot() == before
    assert h.tracker.of_type(WorkflowPurged) == []


async def test_a_due_purge_keeps_only_the_tombstone() -> None:
    h = harness()
    await h.start()
    assert len(h.handle.storage_snapshot()) > len(TOMBSTONE_KEYS)
    await h.alarm_at(61_000)
    snapshot = h.handle.storage_snapshot()
    assert set(snapshot) == TOMBSTONE_KEYS
    assert snapshot["workflow:status"] == {"tag": "Completed", "completed_at": 1000}
    assert snapshot["workflow:name"] == "wf"
    assert snapshot["workflow:tombstone"]["purged_at"] == 61_000
    assert snapshot["workflow:tombstone"]["workflow_name"] == "wf"
    assert snapshot["workflow:tombstone"]["status"]["tag"] == "Completed"
    assert h.handle.scheduled_time() is None
    (event,) = h.tracker.of_type(WorkflowPurged)
    assert (event.workflow_id, event.workflow_name, event.timestamp) == ("p1", "wf", 61_000)
    manager: PurgeManager = h.layer().purge_manager()
    tombstone = (await manager.get_tombstone()).unwrap()
    assert tombstone is not None
    assert tombstone.status == Completed(1000)


async def test_a_second_purge_alarm_does_nothing() -> None:
    h = harness()
    await h.start()
    await h.alarm_at(61_000)
    before, commits = h.handle.storage_snapshot(), h.handle.commits
    await h.alarm_at(200_000)
    assert h.handle.storage_snapshot() == before
    assert h.handle.commits == commits
    assert len(h.tracker.of_type(WorkflowPurged)) == 1


async def test_a_start_after_the_purge_returns_the_old_status_without_running() -> None:
    h = harness()
    await h.start()
    await h.alarm_at(61_000)
    assert h.runs == [1]
    again = await h.start("y")
    assert again.completed is True
    assert again.status == Completed(1000)
    assert h.runs == [1]  # fix: the workflow did not run a second time
    assert set(h.handle.storage_snapshot()) == TOMBSTONE_KEYS
    status = (await h.orchestrator().get_status()).unwrap()
    assert (status.exists, status.status) == (True, Completed(1000))


async def test_disabled_purge_sets_no_alarm() -> None:
    h = harness(enabled=False)
    await h.start()
    assert h.handle.scheduled_time() is None
    assert "workflow:purgeAt" not in h.handle.storage_snapshot()
    before = h.handle.storage_snapshot()
    await h.alarm_at(10_000_000)
    assert h.handle.storage_snapshot() == before


async def test_a_cancelled_instance_is_purged() -> None:
    h = harness(sleeps, delay_ms=1000)
    await h.start()
    h.handle.set_time(2000)
    (await h.orchestrator().cancel(reason="stop")).unwrap()
    assert h.handle.storage_snapshot()["workflow:purgeAt"] == 3000
    assert h.handle.scheduled_time() == 3000
    await h.alarm_at(3000)
    snapshot = h.handle.storage_snapshot()
    assert set(snapshot) == TOMBSTONE_KEYS
    assert snapshot["workflow:tombstone"]["status"] == {
        "tag": "Cancelled",
        "cancelled_at": 2000,
        "reason": "stop",
    }
    again = await h.start()
    assert (again.completed, again.status) == (False, Cancelled(2000, "stop"))
    assert h.runs == [1]


async def test_a_failed_instance_is_purged() -> None:
    h = harness(fails, delay_ms=0)
    result = await h.start()
    assert isinstance(result.status, Failed)
    assert h.handle.scheduled_time() == 1000
    await h.alarm_at(1000)
    snapshot = h.handle.storage_snapshot()
    assert set(snapshot) == TOMBSTONE_KEYS
    assert snapshot["workflow:status"]["tag"] == "Failed"
    assert snapshot["workflow:status"]["error"]["message"] == "broken"
    again = await h.start()
    assert again.completed is False
    assert isinstance(again.status, Failed)
    assert h.runs == [1]


async def test_a_paused_instance_is_not_purged() -> None:
    h = harness(sleeps, delay_ms=0)
    await h.start()
    assert "workflow:purgeAt" not in h.handle.storage_snapshot()
    assert h.handle.scheduled_time() == 6000  # the sleep's alarm, not a purge
    await h.alarm_at(6000)
    assert h.handle.scheduled_time() == 6000  # completed at 6000, purge due at once
    await h.alarm_at(6000)
    assert set(h.handle.storage_snapshot()) == TOMBSTONE_KEYS
