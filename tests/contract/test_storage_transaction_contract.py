"""The ``StorageAdapter`` contract, run against every backend: transactions.

A transaction commits when its block exits and rolls back when it raises, with the
scheduler's changes; reads inside it see its writes; nested ones join the outer one;
another instance's writes are never part of it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from returns.result import Failure, Success

from durably.ports import InstanceRuntime, StorageAdapter
from tests.support.storage import contents


class Boom(Exception):
    """The error a test raises to roll a transaction back."""


@asynccontextmanager
async def rolled_back(storage: StorageAdapter) -> AsyncIterator[None]:
    """A transaction whose block is ended by ``Boom`` (caught here), so it must roll back."""
    with pytest.raises(Boom):  # noqa: PT012 - the raise ends the caller's block
        async with storage.transaction():
            yield
            raise Boom


async def test_transaction_commits_when_the_block_exits_normally(
    runtime_a: InstanceRuntime, make_runtime: Callable[[str], InstanceRuntime]
) -> None:
    storage = runtime_a.storage
    await storage.put_batch({"keep": 1, "gone": 2, "change": 3})
    async with storage.transaction():
        await storage.put("new", "n")
        await storage.put("change", 30)
        await storage.put_batch({"b1": 1, "b2": 2})
        assert await storage.delete("gone") == Success(True)
    expected = {"b1": 1, "b2": 2, "change": 30, "keep": 1, "new": "n"}
    assert await contents(storage) == expected
    assert await contents(make_runtime(runtime_a.instance_id).storage) == expected


async def test_transaction_rolls_back_when_the_block_raises(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    await storage.put_batch({"keep": 1, "gone": 2})
    error = Boom("roll back")
    caught: BaseException | None = None
    try:
        async with storage.transaction():
            await storage.put("new", "n")
            await storage.put("keep", 100)
            await storage.put_batch({"b1": 1})
            await storage.delete("gone")
            raise error
    except Boom as e:
        caught = e
    assert caught is error  # the block's own exception comes out, unchanged
    assert await contents(storage) == {"gone": 2, "keep": 1}


async def test_delete_all_in_a_transaction_rolls_back(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put_batch({"a": 1, "b": 2})
    async with rolled_back(storage):
        await storage.delete_all()
        await storage.put("c", 3)
    assert await contents(storage) == {"a": 1, "b": 2}


async def test_delete_all_in_a_transaction_commits(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put_batch({"a": 1, "b": 2})
    async with storage.transaction():
        await storage.put("before", 0)
        await storage.delete_all()
        await storage.put("c", 3)
    assert await contents(storage) == {"c": 3}


async def test_scheduler_changes_in_a_transaction_roll_back_with_it(
    runtime_a: InstanceRuntime,
) -> None:
    storage, scheduler = runtime_a.storage, runtime_a.scheduler
    await scheduler.schedule(5_000)
    async with rolled_back(storage):
        await storage.put("k", 1)
        await scheduler.schedule(9_000)
    assert await scheduler.get_scheduled() == Success(5_000)
    async with rolled_back(storage):
        await scheduler.cancel()
    assert await scheduler.get_scheduled() == Success(5_000)
    assert await contents(storage) == {}


async def test_scheduler_changes_in_a_transaction_commit_with_it(
    runtime_a: InstanceRuntime, make_runtime: Callable[[str], InstanceRuntime]
) -> None:
    storage, scheduler = runtime_a.storage, runtime_a.scheduler
    async with storage.transaction():
        await storage.put("k", 1)
        await scheduler.schedule(7_000)
    again = make_runtime(runtime_a.instance_id)
    assert await again.scheduler.get_scheduled() == Success(7_000)
    assert await again.storage.get("k") == Success(1)


async def test_reads_inside_a_transaction_see_its_writes_and_deletes(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    await storage.put_batch({"old": "o", "doomed": "d"})
    async with storage.transaction():
        await storage.put("new", {"n": 1})
        await storage.put("old", "changed")
        await storage.put_batch({"batch": [1]})
        assert await storage.get("new") == Success({"n": 1})
        assert await storage.get("old") == Success("changed")
        assert await storage.get("batch") == Success([1])

        assert await storage.delete("doomed") == Success(True)
        assert await storage.get("doomed") == Success(None)
        assert await storage.delete("doomed") == Success(False)

        assert await storage.delete("new") == Success(True)
        assert await storage.get("new") == Success(None)
        await storage.put("new", "again")
        assert await storage.get("new") == Success("again")
    assert await contents(storage) == {"batch": [1], "new": "again", "old": "changed"}


async def test_reads_inside_a_transaction_see_its_delete_all(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    await storage.put_batch({"a": 1, "b": 2})
    async with storage.transaction():
        await storage.put("c", 3)
        await storage.delete_all()
        assert await storage.get("a") == Success(None)
        assert await storage.get("c") == Success(None)
        assert await storage.list("") == Success({})
        assert await storage.delete("b") == Success(False)
        await storage.put("d", 4)
        assert await storage.get("d") == Success(4)
        assert await storage.list("") == Success({"d": 4})
    assert await contents(storage) == {"d": 4}


async def test_list_inside_a_transaction_merges_its_writes_in_key_order(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    await storage.put_batch({"p:a": 1, "p:b": 2, "p:c": 3, "q:x": 9})
    async with storage.transaction():
        await storage.put("p:b", 20)
        await storage.put("p:0", 0)
        await storage.put("q:y", 10)
        await storage.delete("p:c")
        listed = (await storage.list("p:")).unwrap()
        assert list(listed.items()) == [("p:0", 0), ("p:a", 1), ("p:b", 20)]
        everything = (await storage.list("")).unwrap()
        assert list(everything) == ["p:0", "p:a", "p:b", "q:x", "q:y"]


async def test_a_failed_put_inside_a_transaction_does_not_spoil_it(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    async with storage.transaction():
        await storage.put("good", 1)
        assert isinstance(await storage.put("bad", object()), Failure)
        assert isinstance(await storage.put_batch({"also": 2, "bad": math.inf}), Failure)
        assert await storage.get("bad") == Success(None)
        assert await storage.get("also") == Success(None)
    assert await contents(storage) == {"good": 1}


async def test_nested_transactions_join_the_outer_one_and_commit_with_it(
    runtime_a: InstanceRuntime,
) -> None:
    storage, scheduler = runtime_a.storage, runtime_a.scheduler
    async with storage.transaction():
        await storage.put("outer", 1)
        async with storage.transaction():
            await storage.put("inner", 2)
            await scheduler.schedule(3_000)
            assert await storage.get("outer") == Success(1)
        assert await storage.get("inner") == Success(2)
        await storage.put("after", 3)
    assert await contents(storage) == {"after": 3, "inner": 2, "outer": 1}
    assert await scheduler.get_scheduled() == Success(3_000)


async def test_inner_writes_are_discarded_when_the_outer_transaction_raises(
    runtime_a: InstanceRuntime,
) -> None:
    storage, scheduler = runtime_a.storage, runtime_a.scheduler
    await storage.put("existing", 0)
    async with rolled_back(storage):
        await storage.put("outer", 1)
        async with storage.transaction():
            await storage.put("inner", 2)
            await storage.delete("existing")
            await scheduler.schedule(3_000)
    assert await contents(storage) == {"existing": 0}
    assert await scheduler.get_scheduled() == Success(None)


async def test_another_instances_writes_are_not_part_of_the_transaction(
    runtime_a: InstanceRuntime, runtime_b: InstanceRuntime
) -> None:
    a, b = runtime_a.storage, runtime_b.storage
    async with rolled_back(a):
        await a.put("a", 1)
        await b.put("b", 2)
        await runtime_b.scheduler.schedule(4_000)
        assert await b.get("a") == Success(None)
        assert await a.get("b") == Success(None)
    assert await contents(a) == {}
    assert await contents(b) == {"b": 2}
    assert await runtime_b.scheduler.get_scheduled() == Success(4_000)


async def test_another_instances_delete_all_inside_a_transaction_is_its_own(
    runtime_a: InstanceRuntime, runtime_b: InstanceRuntime
) -> None:
    a, b = runtime_a.storage, runtime_b.storage
    await a.put("a", 1)
    await b.put("b", 2)
    async with a.transaction():
        await b.delete_all()
        await a.put("a2", 2)
    assert await contents(a) == {"a": 1, "a2": 2}
    assert await contents(b) == {}


async def test_transactions_of_two_instances_commit_and_roll_back_independently(
    runtime_a: InstanceRuntime, runtime_b: InstanceRuntime
) -> None:
    a, b = runtime_a.storage, runtime_b.storage
    async with b.transaction():
        await b.put("b", 1)
        async with rolled_back(a):
            await a.put("a", 1)
            await b.put("b2", 2)
    assert await contents(a) == {}
    assert await contents(b) == {"b": 1, "b2": 2}


async def test_a_transaction_without_writes_is_fine(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put("a", 1)
    await runtime_a.scheduler.schedule(1_000)
    async with storage.transaction():
        pass
    async with storage.transaction():
        assert await storage.get("a") == Success(1)
        assert await storage.list("") == Success({"a": 1})
        assert await storage.delete("missing") == Success(False)
    assert await contents(storage) == {"a": 1}
    assert await runtime_a.scheduler.get_scheduled() == Success(1_000)


async def test_storage_works_after_a_rolled_back_transaction(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    async with rolled_back(storage):
        await storage.put("lost", 1)
    await storage.put("direct", 1)
    async with storage.transaction():
        await storage.put("committed", 2)
    assert await contents(storage) == {"committed": 2, "direct": 1}


async def test_a_task_outliving_the_transaction_writes_for_real(
    runtime_a: InstanceRuntime,
) -> None:
    # A task started inside the block inherits its context; its writes after the block
    # has committed must not vanish into the finished unit of work.
    storage = runtime_a.storage
    go = asyncio.Event()

    async def late_writer() -> None:
        await go.wait()
        assert await storage.put("late", 2) == Success(None)

    async with storage.transaction():
        task = asyncio.create_task(late_writer())
        await storage.put("early", 1)
    go.set()
    await task
    assert await contents(storage) == {"early": 1, "late": 2}


async def test_get_many_inside_a_transaction_sees_its_own_writes(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    (await storage.put_batch({"kept": 1, "gone": 2})).unwrap()
    async with storage.transaction():
        (await storage.put("new", 3)).unwrap()
        (await storage.delete("gone")).unwrap()
        found = (await storage.get_many(["kept", "gone", "new"])).unwrap()
        assert found == {"kept": 1, "new": 3}
        (await storage.delete_all()).unwrap()
        assert (await storage.get_many(["kept", "new"])).unwrap() == {}
