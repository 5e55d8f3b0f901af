"""An alarm that fails (a status this version cannot read) is recorded in the instance,
by the worker that holds its lease, with the real next wake-up; the next segment that
ends clears it. An instance of a workflow the worker does not have is not claimed at all
(nothing recorded, nothing moved). Two engines over one database (SQLite file,
PostgreSQL schema), one clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import durably
from durably.adapters.clock import ManualClock
from durably.domain import keys
from durably.domain.results import ok
from durably.domain.status import Completed, Paused
from durably.engine import Engine, Lease, Timeline
from durably.engine.replay import read_histories
from durably.testing import EngineFactory
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database

pytestmark = pytest.mark.timeout(60)

T0 = 1_714_564_800_000
LEASE = Lease(duration="30s", renew_every="10s")
HOUR = 3_600_000


@durably.workflow
async def napper(n: int) -> int:
    await durably.step("before", lambda: n)
    await durably.sleep("1m", name="nap")
    return await durably.step("after", lambda: n + 1)


@durably.workflow
async def other(n: int) -> int:
    return await durably.step("only", lambda: n)


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A backend URL that two engines share."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alarms.db'}"
        return
    dsn = acquire_database()
    schema = f"alarms_{abs(hash(request.node.name)) % 10**10}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


async def timeline_of(engine: Engine, instance_id: str) -> Timeline:
    timeline: Timeline = (await engine.timeline(instance_id)).unwrap()
    return timeline


async def test_a_failed_alarm_shows_its_error_and_the_real_next_wake_up(url: str) -> None:
    clock = ManualClock(T0)
    async with Engine([napper], backend=url, clock=clock, lease=LEASE) as full:
        paused = (await full.start(napper, 1, id="n1")).unwrap().status
        assert isinstance(paused, Paused)
        assert paused.resume_at is not None
        stored = await full.host.read("n1", keys.STATUS)
        assert stored is not None
        # A status written by a newer durably: this one cannot read it.
        unreadable = {**json.loads(stored), "tag": "Hibernating"}
        ok(await full.host.runtime("n1", None).storage.put(keys.STATUS, unreadable))
    first_failure = paused.resume_at + 5
    clock.time_ms = first_failure
    async with Engine([napper], backend=url, clock=clock, lease=LEASE) as full:
        assert await full.run_until_idle() == 1  # claimed, failed, not retried at once
        found = await full.host.read("n1", keys.LAST_ALARM_ERROR)
        assert found is not None
        failure = json.loads(found)
        assert failure["error"]["type"] == "SerializationError"
        assert "Hibernating" in failure["error"]["message"]
        assert (failure["failed_at"], failure["count"]) == (first_failure, 1)
        # The real next wake-up: the alarm, at the failed claim's lease expiry (not the
        # sleep's past resume time).
        [row] = await full.host.list_instances(None, None, 10)
        assert row.due_at == first_failure + LEASE.duration_ms

        clock.time_ms += LEASE.duration_ms
        assert await full.run_until_idle() == 1
        again = json.loads(await full.host.read("n1", keys.LAST_ALARM_ERROR) or "null")
        assert (again["count"], again["first_failed_at"], again["failed_at"]) == (
            2,
            first_failure,
            clock.time_ms,
        )
        # Repaired (the newer durably gone): the next alarm runs it, and clears the error.
        ok(await full.host.runtime("n1", None).storage.put(keys.STATUS, json.loads(stored)))

    clock.time_ms += LEASE.duration_ms
    async with Engine([napper], backend=url, clock=clock, lease=LEASE) as full:
        assert await full.run_until_idle() == 1
        header = (await timeline_of(full, "n1")).header
        assert isinstance(header.status, Completed)
        assert header.last_alarm_error is None  # the segment that ended cleared it
        assert header.output == 2


async def test_a_worker_without_the_workflow_leaves_its_instance_alone(url: str) -> None:
    clock = ManualClock(T0)
    async with Engine([napper], backend=url, clock=clock, lease=LEASE) as full:
        paused = (await full.start(napper, 1, id="n2")).unwrap().status
        assert isinstance(paused, Paused)
        assert paused.resume_at is not None
    clock.time_ms = paused.resume_at + 3_600_000  # an hour late
    async with Engine([], backend=url, clock=clock, lease=LEASE) as bare:
        for _ in range(3):
            assert await bare.run_until_idle() == 0  # not claimed: not its workflow
            clock.time_ms += LEASE.duration_ms
        header = (await timeline_of(bare, "n2")).header
        assert header.status == paused  # not failed
        assert header.last_alarm_error is None
        assert header.recovery_attempts == 0  # not counted as a recovery
        assert header.next_wakeup_at == paused.resume_at  # its alarm not moved
        row = await bare.host.instance("n2")
        assert row is not None
        assert row.lease_owner is None
    async with Engine([napper], backend=url, clock=clock, lease=LEASE) as full:
        assert await full.run_until_idle() == 1
        assert (await full.result("n2")).unwrap() == 2


async def test_an_hour_of_virtual_time_on_a_worker_without_the_workflow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The testing kit's worker runs all along while an hour passes alarm by alarm: the
    instance of a workflow it lacks is never claimed, failed nor counted as a recovery."""
    async with EngineFactory() as engines:
        clock = engines.clock
        async with Engine([napper], backend="memory://", clock=ManualClock(clock.now())) as full:
            paused = (await full.start(napper, 1, id="n3")).unwrap().status
            assert isinstance(paused, Paused)
            assert paused.resume_at is not None
            [history] = await read_histories(full.host)
        bare = await engines([other])
        imported = bare.host.runtime("n3", None)
        ok(await imported.storage.put_batch(history.entries))
        ok(await imported.scheduler.schedule(paused.resume_at))  # due in 1 min
        with caplog.at_level(logging.WARNING, logger="durably.engine"):
            await clock.advance("1h")
        assert clock.now() - paused.resume_at == HOUR - 60_000  # due for 59 minutes
        said = [
            r.getMessage() for r in caplog.records if "does not have workflow" in r.getMessage()
        ]
        assert said == [
            "instance n3 is due but this process does not have workflow 'napper': "
            "left for a worker that has it"
        ]  # logged once
        header = (await timeline_of(bare, "n3")).header
        assert header.status == paused
        assert header.recovery_attempts == 0
        assert header.last_alarm_error is None
        assert header.next_wakeup_at == paused.resume_at
        assert (await bare.start(other, 5, id="o-1")).unwrap().output == 5  # the worker works
