"""What a lease holder reads, and what its fenced commits refuse, on SQLite and PostgreSQL.

A storage that holds the instance's lease reads the instance once per segment and then
answers from what it read and committed (the hot path reads nothing per step). The
keys that a cancel from another process may write (status, cancel flag and reason) are
read again once what was seen of them is ``FRESH_S`` old, or brought back by the next
fenced commit. A commit of an owner whose lease is gone writes nothing, also when it
is grouped with commits that succeed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.integration.pg_support import postgres_host

import durably
from durably.adapters.buffered import FRESH_S, BufferedStorage
from durably.adapters.sqlite import SqliteHost
from durably.domain import keys
from durably.domain.results import ok
from durably.domain.status import Cancelled, Paused
from durably.engine import Engine, Lease
from durably.engine import engine as engine_module
from durably.ports import InstanceHost

pytestmark = pytest.mark.timeout(60)

RUNNING = {"tag": "Running", "running_at": 1}
OWNER, OTHER = "host:1:owner", "host:2:other"
LEASE_MS = 30_000


class Reads:
    """Counts the backend reads of one storage."""

    def __init__(self, storage: Any) -> None:
        assert isinstance(storage, BufferedStorage)
        self.calls: list[str] = []
        for name in ("_load", "_load_many", "_load_prefix"):
            self._spy(storage, name)

    def _spy(self, storage: BufferedStorage, name: str) -> None:
        real = getattr(storage, name)

        async def counted(arg: Any) -> Any:
            self.calls.append(f"{name}({arg!r})")
            return await real(arg)

        setattr(storage, name, counted)


@pytest.fixture(params=["sqlite", "postgres"])
async def host(request: pytest.FixtureRequest) -> AsyncIterator[InstanceHost]:
    if request.param == "sqlite":
        folder = tempfile.mkdtemp(prefix="durably-reads-")
        sqlite = SqliteHost(str(Path(folder) / "reads.db"))
        await sqlite.open()
        try:
            yield sqlite
        finally:
            await sqlite.close()
            shutil.rmtree(folder, ignore_errors=True)
        return
    async with postgres_host(f"reads_{id(request)}") as postgres:
        yield postgres


async def _create(host: InstanceHost, instance_id: str, owner: str = OWNER) -> Any:
    """Create a Running instance leased by ``owner``; returns that owner's storage."""
    storage = host.runtime(instance_id, owner, LEASE_MS).storage
    ok(await storage.put_batch({keys.NAME: "wf", keys.STATUS: RUNNING, "step:a:result": 1}))
    return storage


async def test_the_creator_reads_nothing_back(host: InstanceHost) -> None:
    storage = await _create(host, "i1")
    reads = Reads(storage)
    ok(await storage.put_batch({"step:b:result": 2, keys.COMPLETED_COUNT: 2}))
    assert ok(await storage.get("step:a:result")) == 1
    assert ok(await storage.get("step:zz:result")) is None
    assert ok(await storage.get_many(("step:a:result", "step:b:result"))) == {
        "step:a:result": 1,
        "step:b:result": 2,
    }
    assert ok(await storage.list("step:")) == {"step:a:result": 1, "step:b:result": 2}
    assert ok(await storage.get(keys.STATUS)) == RUNNING  # fresh from its own commit
    assert reads.calls == []


async def test_a_new_segment_reads_the_instance_once(host: InstanceHost) -> None:
    await _create(host, "i2")
    storage = host.runtime("i2", OWNER, LEASE_MS).storage
    reads = Reads(storage)
    for _ in range(3):
        assert ok(await storage.get("step:a:result")) == 1
        assert ok(await storage.get("step:b:result")) is None
    assert reads.calls == ["_load_prefix('')"]


async def test_a_reader_without_the_lease_always_reads_the_backend(host: InstanceHost) -> None:
    await _create(host, "i3")
    storage = host.runtime("i3", None, LEASE_MS).storage
    reads = Reads(storage)
    ok(await storage.get("step:a:result"))
    ok(await storage.get("step:a:result"))
    assert len(reads.calls) == 2


async def test_a_cancel_from_elsewhere_is_seen_after_the_next_commit_or_once_stale(
    host: InstanceHost,
) -> None:
    holder = await _create(host, "i4")
    elsewhere = host.runtime("i4", None, LEASE_MS).storage
    ok(await elsewhere.put(keys.CANCELLED, True))
    # Seen by the holder's next commit, which reads it in its own transaction.
    ok(await holder.put("step:b:result", 2))
    reads = Reads(holder)
    assert ok(await holder.get(keys.CANCELLED)) is True
    assert reads.calls == []
    # Cleared elsewhere: once what the holder saw is FRESH_S old, it reads it again.
    ok(await elsewhere.delete(keys.CANCELLED))
    await asyncio.sleep(FRESH_S * 1.5)
    assert ok(await holder.get(keys.CANCELLED)) is None
    assert reads.calls == [f"_load({keys.CANCELLED!r})"]


async def test_a_commit_after_the_lease_moved_writes_nothing_and_forgets_the_cache(
    host: InstanceHost,
) -> None:
    holder = await _create(host, "i5")
    # The lease expires and another owner takes the instance over.
    assert await host.acquire("i5", OTHER, host.now() + LEASE_MS + 1, LEASE_MS)
    refused = await holder.put("step:b:result", 2)
    assert refused.failure().operation == "commit"
    reads = Reads(holder)
    assert ok(await holder.get("step:b:result")) is None  # from the backend again
    assert reads.calls == ["_load_prefix('')"]
    other = host.runtime("i5", OTHER, LEASE_MS).storage
    assert ok(await other.get("step:b:result")) is None


async def test_a_grouped_commit_refuses_only_the_unit_whose_lease_moved(
    host: InstanceHost,
) -> None:
    kept = [await _create(host, f"g{i}") for i in range(3)]
    lost = await _create(host, "g-lost")
    assert await host.acquire("g-lost", OTHER, host.now() + LEASE_MS + 1, LEASE_MS)
    results = await asyncio.gather(
        *(s.put_batch({"step:b:result": 2, keys.COMPLETED_COUNT: 2}) for s in [*kept, lost])
    )
    assert [r.failure().operation for r in results[3:]] == ["commit"]
    for storage, result in zip(kept, results[:3], strict=True):
        ok(result)
        fresh = host.runtime(storage.instance_id, None, LEASE_MS).storage
        assert ok(await fresh.get("step:b:result")) == 2
    assert ok(await host.runtime("g-lost", None, LEASE_MS).storage.get("step:b:result")) is None


async def test_a_cancel_from_another_engine_stops_the_workflow_after_the_step_in_flight(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cancel.db'}"
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

    lease = Lease(duration="30s", renew_every="10s")
    async with (
        Engine([three], backend=url, lease=lease) as runner,
        Engine([three], backend=url, lease=lease) as canceller,
    ):
        started = asyncio.create_task(runner.start(three, None, id="c1"))
        await entered.wait()
        cancel = ok(await canceller.cancel("c1", reason="stop"))
        assert cancel.cancelled
        release.set()
        result = ok(await started)
    assert isinstance(result.status, Cancelled)
    assert result.status.reason == "stop"
    assert ran == ["one"]  # the step in flight finished; none started after it


async def test_a_status_change_after_the_lease_moved_writes_nothing(host: InstanceHost) -> None:
    holder = await _create(host, "i6")
    assert await host.acquire("i6", OTHER, host.now() + LEASE_MS + 1, LEASE_MS)
    paused = {"tag": "Paused", "reason": "sleep", "resume_at": 5, "step_name": None}
    refused = await holder.put_batch({keys.STATUS: paused, "sleep:s": {"resume_at": 5}})
    assert refused.failure().operation == "commit"
    fresh = host.runtime("i6", None, LEASE_MS).storage
    assert ok(await fresh.get(keys.STATUS)) == RUNNING
    assert ok(await fresh.get("sleep:s")) is None
    row = await host.instance("i6")
    assert row is not None
    assert row.status == "Running"
    assert row.lease_owner == OTHER


async def test_a_second_creation_of_one_id_writes_nothing(host: InstanceHost) -> None:
    await _create(host, "i7")
    second = host.runtime("i7", OTHER, LEASE_MS).storage
    refused = await second.put_batch({keys.NAME: "other", keys.STATUS: RUNNING, "x": 1})
    assert refused.failure().operation == "commit"
    fresh = host.runtime("i7", None, LEASE_MS).storage
    assert ok(await fresh.get(keys.NAME)) == "wf"
    assert ok(await fresh.get("x")) is None
    row = await host.instance("i7")
    assert row is not None
    assert row.lease_owner == OWNER


async def test_a_commit_that_gives_the_lease_back_is_remembered_once(host: InstanceHost) -> None:
    storage = await _create(host, "g1")
    assert not host.released_by_commit("g1", OWNER)  # Running: the lease is held
    ok(await storage.put(keys.STATUS, {"tag": "Sleeping", "until": 5}))
    row = await host.instance("g1")
    assert row is not None
    assert row.lease_owner is None  # the commit released it...
    assert host.released_by_commit("g1", OWNER)  # ...and the host knows without a read
    assert not host.released_by_commit("g1", OWNER)  # answered once
    assert not host.released_by_commit("g1", OTHER)


async def test_taking_the_lease_again_forgets_that_a_commit_gave_it_back(
    host: InstanceHost,
) -> None:
    storage = await _create(host, "g2")
    ok(await storage.put(keys.STATUS, {"tag": "Sleeping", "until": 5}))
    assert await host.acquire("g2", OWNER, host.now(), LEASE_MS)
    assert not host.released_by_commit("g2", OWNER)  # held again: the engine must release
    row = await host.instance("g2")
    assert row is not None
    assert row.lease_owner == OWNER


async def test_a_claim_forgets_that_a_commit_gave_the_lease_back(host: InstanceHost) -> None:
    storage = await _create(host, "g3")
    ok(await storage.put(keys.STATUS, {"tag": "Queued", "at": 1}))
    await host.runtime("g3", None, LEASE_MS).scheduler.schedule(host.now())
    assert await host.claim_due(OWNER, host.now() + 1, LEASE_MS, 10) == ["g3"]
    assert not host.released_by_commit("g3", OWNER)


async def test_the_engine_releases_a_lease_still_held_and_skips_the_read_otherwise(
    tmp_path: Path,
) -> None:
    @durably.workflow
    async def two_steps(n: int) -> int:
        return await durably.step("a", lambda: n) + await durably.step("b", lambda: 1)

    async with Engine([two_steps], backend=f"sqlite:///{tmp_path / 'e.db'}") as engine:
        host = engine._host
        rows: list[str] = []
        real = host.instance

        async def spied(instance_id: str) -> Any:
            rows.append(instance_id)
            return await real(instance_id)

        host.instance = spied  # type: ignore[method-assign]
        done = ok(await engine.start(two_steps, 1, id="done"))
        assert done.output == 2
        assert rows == []  # its end commit released the lease: nothing to read
        # An instance whose lease is still held when the engine is done with it.
        async with engine._serving("done"):
            assert await host.acquire("done", engine.owner, host.now(), 60_000)
        assert rows == ["done"]
        row = await real("done")
        assert row is not None
        assert row.lease_owner is None


@durably.workflow
async def napper(_: None) -> str:
    await durably.step("before", lambda: "x")
    await durably.sleep("1h")
    return "woke"


@asynccontextmanager
async def _paused_and_leased(tmp_path: Path, iid: str) -> AsyncIterator[tuple[Engine, Engine]]:
    """Two engines on one file; ``iid`` sleeps, and the first engine holds its lease."""
    url = f"sqlite:///{tmp_path / 'cancel.db'}"
    async with (
        Engine([napper], backend=url) as holder,
        Engine([napper], backend=url) as canceller,
    ):
        ok(await holder.start(napper, None, id=iid))
        assert await holder.host.acquire(iid, holder.owner, holder.now(), LEASE_MS)
        yield holder, canceller


async def test_a_cancel_waits_for_the_lease_of_a_waiting_instance_then_records_it(
    tmp_path: Path,
) -> None:
    """Another engine holds the lease of a paused instance (it is resuming or re-arming
    it): the cancel only raises the flag meanwhile, and records Cancelled once it can."""
    async with _paused_and_leased(tmp_path, "n1") as (holder, canceller):
        cancel = asyncio.create_task(canceller.cancel("n1", reason="stop"))
        await asyncio.sleep(0.2)
        assert not cancel.done()
        row = await holder.host.instance("n1")
        assert row is not None
        assert (row.status, row.lease_owner) == ("Paused", holder.owner)  # not written over
        assert isinstance(ok(await canceller.status("n1")).status, Paused)
        await holder.host.release("n1", holder.owner)
        result = ok(await asyncio.wait_for(cancel, 5))
        assert (result.cancelled, result.previous_status) == (True, "Paused")
        status = ok(await canceller.status("n1")).status
        assert isinstance(status, Cancelled)
        assert status.reason == "stop"
        row = await canceller.host.instance("n1")
        assert row is not None
        assert (row.status, row.lease_owner) == ("Cancelled", None)


async def test_a_cancel_gives_up_waiting_with_the_flag_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "CANCEL_WAIT_S", 0.1)
    async with _paused_and_leased(tmp_path, "n2") as (holder, canceller):
        result = ok(await asyncio.wait_for(canceller.cancel("n2", reason="stop"), 5))
        assert (result.cancelled, result.previous_status) == (True, "Paused")
        assert isinstance(ok(await canceller.status("n2")).status, Paused)
        flag = holder.host.runtime("n2", None, LEASE_MS).storage
        assert ok(await flag.get(keys.CANCELLED)) is True
        assert ok(await flag.get(keys.CANCEL_REASON)) == "stop"
