"""The ``SchedulerAdapter`` contract, run against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from returns.result import Failure, Success

from durably.domain.errors import SchedulerError
from durably.ports import InstanceRuntime, StorageAdapter


class Boom(Exception):
    """The error a test raises to roll a transaction back."""


@asynccontextmanager
async def rolled_back(storage: StorageAdapter) -> AsyncIterator[None]:
    """A transaction whose block is ended by ``Boom`` (caught here), so it must roll back."""
    with pytest.raises(Boom):  # noqa: PT012 - the raise ends the caller's block
        async with storage.transaction():
            yield
            raise Boom


async def test_no_alarm_is_set_initially(runtime_a: InstanceRuntime) -> None:
    assert await runtime_a.scheduler.get_scheduled() == Success(None)


async def test_schedule_sets_the_alarm(runtime_a: InstanceRuntime) -> None:
    scheduler = runtime_a.scheduler
    assert await scheduler.schedule(1_700_000_005_000) == Success(None)
    assert await scheduler.get_scheduled() == Success(1_700_000_005_000)


async def test_the_alarm_time_is_an_int(runtime_a: InstanceRuntime) -> None:
    await runtime_a.scheduler.schedule(12_345)
    at = (await runtime_a.scheduler.get_scheduled()).unwrap()
    assert type(at) is int


async def test_schedule_replaces_the_one_alarm(runtime_a: InstanceRuntime) -> None:
    scheduler = runtime_a.scheduler
    await scheduler.schedule(5_000)
    await scheduler.schedule(9_000)
    assert await scheduler.get_scheduled() == Success(9_000)
    await scheduler.schedule(2_000)  # earlier times replace too
    assert await scheduler.get_scheduled() == Success(2_000)
    await scheduler.cancel()
    assert await scheduler.get_scheduled() == Success(None)  # no older alarm left behind


async def test_cancel_clears_the_alarm(runtime_a: InstanceRuntime) -> None:
    scheduler = runtime_a.scheduler
    await scheduler.schedule(5_000)
    assert await scheduler.cancel() == Success(None)
    assert await scheduler.get_scheduled() == Success(None)


async def test_cancel_without_an_alarm_is_a_no_op(runtime_a: InstanceRuntime) -> None:
    scheduler = runtime_a.scheduler
    assert await scheduler.cancel() == Success(None)
    assert await scheduler.cancel() == Success(None)
    assert await scheduler.get_scheduled() == Success(None)
    await scheduler.schedule(1_000)
    assert await scheduler.get_scheduled() == Success(1_000)


async def test_schedule_after_cancel_sets_again(runtime_a: InstanceRuntime) -> None:
    scheduler = runtime_a.scheduler
    await scheduler.schedule(1_000)
    await scheduler.cancel()
    await scheduler.schedule(3_000)
    assert await scheduler.get_scheduled() == Success(3_000)


async def test_alarms_are_per_instance(
    runtime_a: InstanceRuntime, runtime_b: InstanceRuntime
) -> None:
    a, b = runtime_a.scheduler, runtime_b.scheduler
    await a.schedule(1_000)
    assert await b.get_scheduled() == Success(None)
    await b.schedule(2_000)
    assert await a.get_scheduled() == Success(1_000)
    assert await b.get_scheduled() == Success(2_000)
    await b.cancel()
    assert await a.get_scheduled() == Success(1_000)
    assert await b.get_scheduled() == Success(None)


async def test_delete_all_of_another_instance_leaves_the_alarm(
    runtime_a: InstanceRuntime, runtime_b: InstanceRuntime
) -> None:
    await runtime_a.scheduler.schedule(1_000)
    await runtime_b.storage.put("k", 1)
    await runtime_b.storage.delete_all()
    assert await runtime_a.scheduler.get_scheduled() == Success(1_000)


async def test_runtimes_of_the_same_instance_share_its_alarm(
    runtime_a: InstanceRuntime, make_runtime: Callable[[str], InstanceRuntime]
) -> None:
    await runtime_a.scheduler.schedule(4_000)
    again = make_runtime(runtime_a.instance_id)
    assert await again.scheduler.get_scheduled() == Success(4_000)
    await again.scheduler.cancel()
    assert await runtime_a.scheduler.get_scheduled() == Success(None)


async def test_an_alarm_set_in_a_transaction_commits_with_it(
    runtime_a: InstanceRuntime,
) -> None:
    storage, scheduler = runtime_a.storage, runtime_a.scheduler
    async with storage.transaction():
        await scheduler.schedule(6_000)
    assert await scheduler.get_scheduled() == Success(6_000)
    async with storage.transaction():
        await scheduler.cancel()
    assert await scheduler.get_scheduled() == Success(None)


async def test_an_alarm_set_in_a_transaction_is_discarded_with_it(
    runtime_a: InstanceRuntime,
) -> None:
    storage, scheduler = runtime_a.storage, runtime_a.scheduler
    async with rolled_back(storage):
        await scheduler.schedule(6_000)
    assert await scheduler.get_scheduled() == Success(None)


async def test_a_cancel_in_a_transaction_is_discarded_with_it(
    runtime_a: InstanceRuntime,
) -> None:
    storage, scheduler = runtime_a.storage, runtime_a.scheduler
    await scheduler.schedule(6_000)
    async with rolled_back(storage):
        await scheduler.cancel()
        await scheduler.schedule(8_000)
    assert await scheduler.get_scheduled() == Success(6_000)


async def test_get_scheduled_inside_a_transaction_sees_its_change(
    runtime_a: InstanceRuntime,
) -> None:
    storage, scheduler = runtime_a.storage, runtime_a.scheduler
    await scheduler.schedule(1_000)
    async with storage.transaction():
        assert await scheduler.get_scheduled() == Success(1_000)
        await scheduler.schedule(2_000)
        assert await scheduler.get_scheduled() == Success(2_000)
        await scheduler.cancel()
        assert await scheduler.get_scheduled() == Success(None)
        await scheduler.schedule(3_000)
        assert await scheduler.get_scheduled() == Success(3_000)
    assert await scheduler.get_scheduled() == Success(3_000)


async def test_the_last_change_in_a_transaction_wins(runtime_a: InstanceRuntime) -> None:
    storage, scheduler = runtime_a.storage, runtime_a.scheduler
    await scheduler.schedule(1_000)
    async with storage.transaction():
        await scheduler.schedule(2_000)
        await scheduler.cancel()
    assert await scheduler.get_scheduled() == Success(None)


async def test_a_transaction_on_one_instance_does_not_hold_anothers_alarm(
    runtime_a: InstanceRuntime, runtime_b: InstanceRuntime
) -> None:
    async with rolled_back(runtime_a.storage):
        await runtime_a.scheduler.schedule(1_000)
        await runtime_b.scheduler.schedule(2_000)
        assert await runtime_b.scheduler.get_scheduled() == Success(2_000)
    assert await runtime_a.scheduler.get_scheduled() == Success(None)
    assert await runtime_b.scheduler.get_scheduled() == Success(2_000)


@pytest.mark.parametrize(
    "at", ["5000", 5000.0, None, True, [5000]], ids=["str", "float", "none", "bool", "list"]
)
async def test_schedule_of_a_non_int_fails_and_changes_nothing(
    runtime_a: InstanceRuntime, at: Any
) -> None:
    scheduler = runtime_a.scheduler
    await scheduler.schedule(1_000)
    result = await scheduler.schedule(at)
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), SchedulerError)
    assert await scheduler.get_scheduled() == Success(1_000)
