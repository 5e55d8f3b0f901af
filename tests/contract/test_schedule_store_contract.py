"""The schedules table of ``InstanceHost``, run against every backend (memory, SQLite,
PostgreSQL): a stored schedule reads back the same, an insert never replaces, an update
is a compare-and-set on the version (and on ``seen_at`` when given), and the heartbeat
moves ``seen_at`` forward only, without bumping the version."""

from __future__ import annotations

import attrs

from durably.domain.schedules import StoredSchedule, Timing
from durably.ports import InstanceHost

ROW = StoredSchedule(
    id="nightly",
    workflow="report",
    timing=Timing(cron="0 3 * * *", timezone="Europe/Paris"),
    catch_up="all",
    queue="reports",
    next_at=1_767_582_000_000,
    pending=(1_767_495_600_000, 1_767_500_000_123),
    last_at=1_767_400_000_000,
    seen_at=1_767_000_000_000,
    paused=True,
    version=3,
    created_at=1_766_000_000_000,
)
EVERY = StoredSchedule(
    id="a-second", workflow="ping", timing=Timing(every_ms=1000), catch_up="latest",
    queue="default", next_at=2000,
)  # fmt: skip


async def test_a_stored_schedule_reads_back_the_same(host: InstanceHost) -> None:
    assert await host.read_schedules() == []
    assert await host.write_schedule(ROW, None)
    assert await host.write_schedule(EVERY, None)
    assert await host.read_schedules() == [EVERY, ROW]  # by id


async def test_an_insert_never_replaces(host: InstanceHost) -> None:
    assert await host.write_schedule(ROW, None)
    assert not await host.write_schedule(attrs.evolve(ROW, workflow="other"), None)
    assert await host.read_schedules() == [ROW]


async def test_an_update_is_a_compare_and_set_on_the_version(host: InstanceHost) -> None:
    assert await host.write_schedule(ROW, None)
    moved = attrs.evolve(ROW, next_at=ROW.next_at + 86_400_000, pending=(), version=4)
    assert not await host.write_schedule(moved, 2)  # a stale writer
    assert await host.write_schedule(moved, 3)
    assert not await host.write_schedule(attrs.evolve(moved, paused=False, version=5), 3)
    assert await host.read_schedules() == [moved]
    assert not await host.write_schedule(attrs.evolve(EVERY, version=1), 0)  # unknown id
    assert [r.id for r in await host.read_schedules()] == ["nightly"]


async def test_an_update_may_also_compare_the_heartbeat(host: InstanceHost) -> None:
    assert await host.write_schedule(ROW, None)
    reopened = attrs.evolve(ROW, seen_at=ROW.seen_at + 5, version=4)
    assert not await host.write_schedule(reopened, 3, ROW.seen_at - 1)
    assert await host.write_schedule(reopened, 3, ROW.seen_at)
    assert await host.read_schedules() == [reopened]


async def test_the_heartbeat_moves_seen_at_forward_only(host: InstanceHost) -> None:
    assert await host.write_schedule(ROW, None)
    assert await host.write_schedule(EVERY, None)
    await host.touch_schedules(["nightly", "unknown"], ROW.seen_at + 10)
    await host.touch_schedules(["nightly"], ROW.seen_at + 5)  # older: ignored
    nightly = next(r for r in await host.read_schedules() if r.id == "nightly")
    assert nightly == attrs.evolve(ROW, seen_at=ROW.seen_at + 10)  # same version
    assert next(r for r in await host.read_schedules() if r.id == "a-second") == EVERY


async def test_an_update_never_moves_the_heartbeat_back(host: InstanceHost) -> None:
    assert await host.write_schedule(ROW, None)
    await host.touch_schedules(["nightly"], ROW.seen_at + 10)
    fired = attrs.evolve(ROW, last_at=ROW.next_at, version=4)  # read before the touch
    assert await host.write_schedule(fired, 3)
    assert await host.read_schedules() == [attrs.evolve(fired, seen_at=ROW.seen_at + 10)]
