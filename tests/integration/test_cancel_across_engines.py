"""A cancel from an engine that does not hold the lease: through the inbox, answered at once.

Two engines over one database (SQLite file, PostgreSQL schema) in one process: one
runs or holds an instance, the other cancels it. The cancel never waits for the lease;
the holder acts on it at its next step or sleep, or whoever handles the instance's next
alarm does. The same with separate processes is in ``test_cancel_processes.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import durably
from durably.domain.results import ok
from durably.domain.status import Cancelled, Paused
from durably.engine import Engine, Lease
from tests.integration.pg_support import acquire_database, drop_schema, engine_url, release_database

pytestmark = pytest.mark.timeout(60)

LEASE = Lease(duration="30s", renew_every="10s")


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A backend URL that two engines share."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cancel.db'}"
        return
    dsn = acquire_database()
    schema = f"cancel_{abs(hash(request.node.name)) % 10**10}"
    try:
        yield engine_url(dsn, schema)
    finally:
        await asyncio.to_thread(drop_schema, dsn, schema)
        release_database()


async def test_a_cancel_from_another_engine_stops_the_workflow_after_the_step_in_flight(
    url: str,
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    async def record(name: str, wait: bool = False) -> str:
        ran.append(name)
        if wait:
            entered.set()
            await release.wait()
        return name

    @durably.workflow
    async def three(_: None) -> list[str]:
        return [
            await durably.step("one", lambda: record("one", wait=True)),
            await durably.step("two", lambda: record("two")),
            await durably.step("three", lambda: record("three")),
        ]

    async with (
        Engine([three], backend=url, lease=LEASE) as runner,
        Engine([three], backend=url, lease=LEASE) as canceller,
    ):
        started = asyncio.create_task(runner.start(three, None, id="c1"))
        await entered.wait()
        asked = time.monotonic()
        cancel = ok(await canceller.cancel("c1", reason="stop"))
        answered = time.monotonic() - asked
        assert (cancel.cancelled, cancel.previous_status) == (True, "Running")
        assert answered < 2.0  # at once: it never waits for the runner's lease (30 s)
        release.set()
        result = ok(await started)
    assert isinstance(result.status, Cancelled)
    assert result.status.reason == "stop"
    assert ran == ["one"]  # the step in flight finished; none started after it


@durably.workflow
async def napper(_: None) -> str:
    await durably.step("before", lambda: "x")
    await durably.sleep("1h")
    return "woke"


@asynccontextmanager
async def paused_and_leased(url: str, iid: str) -> AsyncIterator[tuple[Engine, Engine]]:
    """Two engines; ``iid`` sleeps, and the first engine holds its lease (it is resuming
    or re-arming it, say)."""
    async with (
        Engine([napper], backend=url, lease=LEASE) as holder,
        Engine([napper], backend=url, lease=LEASE) as canceller,
    ):
        ok(await holder.start(napper, None, id=iid))
        assert await holder.host.acquire(iid, holder.owner, holder.now(), 60_000)
        yield holder, canceller


async def test_a_cancel_of_an_instance_leased_elsewhere_answers_at_once_and_waits_in_the_inbox(
    url: str,
) -> None:
    async with paused_and_leased(url, "n1") as (holder, canceller):
        asked = time.monotonic()
        result = ok(await canceller.cancel("n1", reason="stop"))
        assert time.monotonic() - asked < 2.0
        assert (result.cancelled, result.previous_status) == (True, "Paused")
        row = await holder.host.instance("n1")
        assert row is not None
        assert (row.status, row.lease_owner) == ("Paused", holder.owner)  # not written over
        assert isinstance(ok(await canceller.status("n1")).status, Paused)
        (message,) = await canceller.host.read_inbox("n1")
        assert (message.kind, message.payload, message.consumed) == (
            "cancel",
            {"reason": "stop"},
            False,
        )
        # The holder lets go; the cancel made the instance due, so the next alarm is now.
        await holder.host.release("n1", holder.owner)
        assert await canceller.run_until_idle() == 1
        status = ok(await canceller.status("n1")).status
        assert isinstance(status, Cancelled)
        assert status.reason == "stop"
        (message,) = await canceller.host.read_inbox("n1")
        assert message.consumed
        row = await canceller.host.instance("n1")
        assert row is not None
        assert (row.status, row.lease_owner) == ("Cancelled", None)


async def test_a_cancel_of_a_waiting_instance_nobody_holds_is_recorded_at_once(url: str) -> None:
    async with Engine([napper], backend=url, lease=LEASE) as engine:
        ok(await engine.start(napper, None, id="n2"))
        result = ok(await engine.cancel("n2", reason="now"))
        assert (result.cancelled, result.previous_status) == (True, "Paused")
        status = ok(await engine.status("n2")).status
        assert isinstance(status, Cancelled)
        assert status.reason == "now"
        assert ok(await engine.cancel("n2")).reason == "already_terminal"
        assert ok(await engine.cancel("nobody")).reason == "not_found"


async def test_the_engine_gives_back_a_lease_only_while_it_holds_it(url: str) -> None:
    @durably.workflow
    async def two_steps(n: int) -> int:
        return await durably.step("a", lambda: n) + await durably.step("b", lambda: 1)

    async with Engine([two_steps], backend=url, lease=LEASE) as engine:
        host = engine.host
        released: list[str] = []
        real = host.release

        async def spied(instance_id: str, owner: str, wake_at: int | None = None) -> None:
            released.append(instance_id)
            await real(instance_id, owner, wake_at)

        host.release = spied  # type: ignore[method-assign]
        done = ok(await engine.start(two_steps, 1, id="done"))
        assert done.output == 2
        assert released == []  # its end commit gave the lease back: nothing to release
        # An instance whose lease is still held when the engine is done with it.
        started = time.monotonic()
        assert await host.acquire("done", engine.owner, host.now(), 60_000)
        async with engine.server.serve("done", engine.server.new_hold(taken_at=started)):
            pass
        assert released == ["done"]
        row = await host.instance("done")
        assert row is not None
        assert row.lease_owner is None
