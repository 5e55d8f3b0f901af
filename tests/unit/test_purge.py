"""Purge (semantics.md section 8): delete a finished instance's keys later, keep a tombstone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import durably
from durably.domain.events import WorkflowPurged
from durably.domain.status import Cancelled, Completed, Failed
from durably.services import PurgeConfig, PurgeManager
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory

pytestmark = pytest.mark.timeout(10)

Body = Callable[[Any], Awaitable[Any]]
TOMBSTONE_KEYS = {"workflow:status", "workflow:name", "workflow:tombstone"}


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


def harness(
    runtimes: RuntimeFactory,
    body: Body = finishes,
    *,
    enabled: bool = True,
    delay_ms: int = 60_000,
    runs: list[int] | None = None,
) -> Harness:
    """Instance ``p1`` of workflow ``wf`` running ``body``; ``runs`` counts its runs."""
    counter = runs if runs is not None else []

    async def counted(x: Any) -> Any:
        counter.append(1)
        return await body(x)

    config = PurgeConfig(enabled=enabled, delay_ms=delay_ms)
    return Harness(runtimes("p1", 1000), durably.make(counted, name="wf"), purge=config)


def test_config_defaults() -> None:
    config = PurgeConfig()
    assert (config.enabled, config.delay_ms) == (False, 60_000)
    assert durably.PurgeConfig is PurgeConfig


@pytest.mark.parametrize("delay", [-1, 1.5, True])
def test_config_rejects_a_bad_delay(delay: Any) -> None:
    with pytest.raises(ValueError, match="delay_ms"):
        PurgeConfig(enabled=True, delay_ms=delay)


async def test_a_terminal_status_stores_the_purge_time_and_sets_the_alarm(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    await h.start("x")
    snapshot = h.handle.storage_snapshot()
    assert snapshot["workflow:purgeAt"] == 61_000
    assert h.handle.scheduled_time() == 61_000
    manager: PurgeManager = h.layer().purge_manager()
    assert (await manager.get_purge_at()).unwrap() == 61_000


async def test_an_early_purge_alarm_is_re_armed_and_deletes_nothing(
    runtimes: RuntimeFactory,
) -> None:
    h = harness(runtimes)
    await h.start("x")
    before = h.handle.storage_snapshot()
    await h.fire_alarm(30_000)
    assert h.handle.scheduled_time() == 61_000
    assert h.handle.storage_snapshot() == before
    assert h.tracker.of_type(WorkflowPurged) == []


async def test_a_due_purge_keeps_only_the_tombstone(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    await h.start("x")
    assert len(h.handle.storage_snapshot()) > len(TOMBSTONE_KEYS)
    await h.fire_alarm(61_000)
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


async def test_a_second_purge_alarm_does_nothing(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes)
    await h.start("x")
    await h.fire_alarm(61_000)
    before, commits = h.handle.storage_snapshot(), h.handle.commits
    await h.fire_alarm(200_000)
    assert h.handle.storage_snapshot() == before
    assert h.handle.commits == commits
    assert len(h.tracker.of_type(WorkflowPurged)) == 1


async def test_a_start_after_the_purge_returns_the_old_status_without_running(
    runtimes: RuntimeFactory,
) -> None:
    runs: list[int] = []
    h = harness(runtimes, runs=runs)
    await h.start("x")
    await h.fire_alarm(61_000)
    assert runs == [1]
    again = await h.start("y")
    assert again.completed is True
    assert again.status == Completed(1000)
    assert runs == [1]  # fix: the workflow did not run a second time
    assert set(h.handle.storage_snapshot()) == TOMBSTONE_KEYS
    status = (await h.orchestrator().get_status()).unwrap()
    assert (status.exists, status.status) == (True, Completed(1000))


async def test_disabled_purge_sets_no_alarm(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes, enabled=False)
    await h.start("x")
    assert h.handle.scheduled_time() is None
    assert "workflow:purgeAt" not in h.handle.storage_snapshot()
    before = h.handle.storage_snapshot()
    await h.fire_alarm(10_000_000)
    assert h.handle.storage_snapshot() == before


async def test_a_cancelled_instance_is_purged(runtimes: RuntimeFactory) -> None:
    runs: list[int] = []
    h = harness(runtimes, sleeps, delay_ms=1000, runs=runs)
    await h.start("x")
    h.handle.set_time(2000)
    (await h.orchestrator().cancel(reason="stop")).unwrap()
    assert h.handle.storage_snapshot()["workflow:purgeAt"] == 3000
    assert h.handle.scheduled_time() == 3000
    await h.fire_alarm(3000)
    snapshot = h.handle.storage_snapshot()
    assert set(snapshot) == TOMBSTONE_KEYS
    assert snapshot["workflow:tombstone"]["status"] == {
        "tag": "Cancelled",
        "cancelled_at": 2000,
        "reason": "stop",
    }
    again = await h.start("x")
    assert (again.completed, again.status) == (False, Cancelled(2000, "stop"))
    assert runs == [1]


async def test_a_failed_instance_is_purged(runtimes: RuntimeFactory) -> None:
    runs: list[int] = []
    h = harness(runtimes, fails, delay_ms=0, runs=runs)
    result = await h.start("x")
    assert isinstance(result.status, Failed)
    assert h.handle.scheduled_time() == 1000
    await h.fire_alarm(1000)
    snapshot = h.handle.storage_snapshot()
    assert set(snapshot) == TOMBSTONE_KEYS
    assert snapshot["workflow:status"]["tag"] == "Failed"
    assert snapshot["workflow:status"]["error"]["message"] == "broken"
    again = await h.start("x")
    assert again.completed is False
    assert isinstance(again.status, Failed)
    assert runs == [1]


async def test_a_paused_instance_is_not_purged(runtimes: RuntimeFactory) -> None:
    h = harness(runtimes, sleeps, delay_ms=0)
    await h.start("x")
    assert "workflow:purgeAt" not in h.handle.storage_snapshot()
    assert h.handle.scheduled_time() == 6000  # the sleep's alarm, not a purge
    await h.fire_alarm(6000)
    assert h.handle.scheduled_time() == 6000  # completed at 6000, purge due at once
    await h.fire_alarm(6000)
    assert set(h.handle.storage_snapshot()) == TOMBSTONE_KEYS
