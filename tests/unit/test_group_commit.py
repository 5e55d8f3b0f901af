"""``GroupCommit``: plans that wait together are committed together, and none is stranded."""

from __future__ import annotations

import asyncio

import pytest

from durably.adapters.plan import CommitOutcome, CommitPlan, Unfenced
from durably.adapters.store import GroupCommit
from durably.adapters.unit_of_work import KEEP_ALARM
from durably.domain.errors import StorageError

pytestmark = pytest.mark.timeout(10)


def plan(iid: str) -> CommitPlan:
    return CommitPlan(iid, Unfenced(), None, False, (("k", "1"),), (), KEEP_ALARM, (), 0)


class Writer:
    """Records the batches; commits at once unless told the database is locked."""

    def __init__(self, locked: bool = False) -> None:
        self.immediate: list[list[str]] = []
        self.waited: list[list[str]] = []
        self.locked = locked
        self.release = asyncio.Event()

    def at_once(self, batch: list[CommitPlan]) -> list[CommitOutcome | StorageError] | None:
        if self.locked:
            return None
        self.immediate.append([p.instance_id for p in batch])
        return [CommitOutcome(0) for _ in batch]

    async def waiting(self, batch: list[CommitPlan]) -> list[CommitOutcome | StorageError]:
        self.waited.append([p.instance_id for p in batch])
        await self.release.wait()
        return [
            StorageError("commit", None, "refused") if p.instance_id == "bad" else CommitOutcome(1)
            for p in batch
        ]


async def test_plans_of_tasks_that_are_ready_together_form_one_batch() -> None:
    writer = Writer()
    group = GroupCommit(writer.waiting, writer.at_once)
    outcomes = await asyncio.gather(*(group.commit(plan(f"i{n}")) for n in range(5)))
    assert writer.immediate == [[f"i{n}" for n in range(5)]]
    assert outcomes == [CommitOutcome(0)] * 5
    assert await group.commit(plan("alone")) == CommitOutcome(0)
    assert writer.immediate[1:] == [["alone"]]


async def test_a_batch_that_would_wait_goes_to_the_writer_and_late_plans_form_the_next() -> None:
    writer = Writer(locked=True)
    group = GroupCommit(writer.waiting, writer.at_once)
    first = [asyncio.create_task(group.commit(plan(i))) for i in ("a", "bad")]
    await asyncio.sleep(0.01)
    late = [asyncio.create_task(group.commit(plan(i))) for i in ("c", "d")]
    await asyncio.sleep(0.01)
    assert writer.waited == [["a", "bad"]]  # the late ones wait for the batch in flight
    writer.release.set()
    done = await asyncio.gather(*first, *late, return_exceptions=True)
    assert writer.waited == [["a", "bad"], ["c", "d"]]
    assert done[0] == CommitOutcome(1)
    assert isinstance(done[1], StorageError)  # refused alone
    assert done[2:] == [CommitOutcome(1), CommitOutcome(1)]
    assert writer.immediate == []


async def test_a_cancelled_leader_still_commits_the_batch_it_formed() -> None:
    writer = Writer()
    group = GroupCommit(writer.waiting, writer.at_once)
    leader = asyncio.create_task(group.commit(plan("leader")))
    follower = asyncio.create_task(group.commit(plan("follower")))
    await asyncio.sleep(0)  # the leader is in its turn of the loop; the follower joined
    leader.cancel()
    assert await follower == CommitOutcome(0)
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert writer.immediate == [["leader", "follower"]]


async def test_a_cancelled_waiter_does_not_strand_the_writers_batch() -> None:
    writer = Writer(locked=True)
    group = GroupCommit(writer.waiting, writer.at_once)
    tasks = [asyncio.create_task(group.commit(plan(i))) for i in ("x", "y")]
    await asyncio.sleep(0.01)
    tasks[0].cancel()
    writer.release.set()
    assert await tasks[1] == CommitOutcome(1)
    await group.drain()
    assert writer.waited == [["x", "y"]]


async def test_without_an_immediate_path_every_batch_goes_to_the_writer() -> None:
    writer = Writer()
    writer.release.set()
    group = GroupCommit(writer.waiting)
    outcomes = await asyncio.gather(*(group.commit(plan(f"i{n}")) for n in range(3)))
    assert outcomes == [CommitOutcome(1)] * 3
    assert writer.waited == [["i0", "i1", "i2"]]
