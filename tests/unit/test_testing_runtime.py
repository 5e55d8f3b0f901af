"""The in-memory test runtime: its defaults, its handle, and fault injection."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from returns.result import Failure, Success

from durably.adapters.memory import MemoryBackend
from durably.domain.errors import StorageError
from durably.ports import InstanceRuntime, StorageAdapter
from durably.testing import FailingStorage, TestRuntimeHandle, create_in_memory_runtime


class Boom(Exception):
    """The error a test raises to roll a transaction back."""


@asynccontextmanager
async def rolled_back(storage: StorageAdapter) -> AsyncIterator[None]:
    """A transaction whose block is ended by ``Boom`` (caught here), so it must roll back."""
    with pytest.raises(Boom):  # noqa: PT012 - the raise ends the caller's block
        async with storage.transaction():
            yield
            raise Boom


@asynccontextmanager
async def commit_fails(failing: FailingStorage) -> AsyncIterator[None]:
    """A transaction of ``failing`` whose commit must raise ``StorageError("commit")``."""
    with pytest.raises(StorageError) as raised:
        async with failing.transaction():
            yield
    assert raised.value.operation == "commit"


@pytest.fixture
def pair() -> tuple[InstanceRuntime, TestRuntimeHandle]:
    """A runtime at t=1000 and its handle."""
    return create_in_memory_runtime("inst", 1_000)


# create_in_memory_runtime


def test_defaults_are_a_new_uuid_and_time_zero() -> None:
    runtime, handle = create_in_memory_runtime()
    assert str(uuid.UUID(runtime.instance_id)) == runtime.instance_id
    assert handle.instance_id == runtime.instance_id
    assert runtime.now() == 0
    assert handle.now() == 0
    other, _ = create_in_memory_runtime()
    assert other.instance_id != runtime.instance_id


def test_instance_id_and_initial_time_are_used() -> None:
    runtime, handle = create_in_memory_runtime(instance_id="orch-test-123", initial_time=1000)
    assert runtime.instance_id == "orch-test-123"
    assert handle.instance_id == "orch-test-123"
    assert runtime.now() == 1000
    assert handle.now() == 1000


def test_initial_time_zero_is_kept() -> None:
    runtime, _ = create_in_memory_runtime("x", 0)
    assert runtime.now() == 0


async def test_runtimes_without_a_shared_backend_are_separate() -> None:
    first, _ = create_in_memory_runtime("same")
    second, _ = create_in_memory_runtime("same")
    await first.storage.put("k", 1)
    assert await second.storage.get("k") == Success(None)


async def test_runtimes_on_a_shared_backend_see_one_state() -> None:
    backend = MemoryBackend()
    first, _ = create_in_memory_runtime("same", backend=backend)
    second, handle = create_in_memory_runtime("same", backend=backend)
    other, _ = create_in_memory_runtime("other", backend=backend)
    await first.storage.put("k", 1)
    await first.scheduler.schedule(500)
    assert await second.storage.get("k") == Success(1)
    assert handle.scheduled_time() == 500
    assert await other.storage.get("k") == Success(None)


# TestRuntimeHandle: the clock


def test_advance_time_moves_the_runtimes_clock(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    assert handle.advance_time(500) == 1_500
    assert runtime.now() == 1_500
    assert handle.now() == 1_500
    assert handle.advance_time(0) == 1_500
    assert runtime.now() == 1_500


def test_advance_time_refuses_a_negative_step(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    with pytest.raises(ValueError, match="-1"):
        handle.advance_time(-1)
    assert runtime.now() == 1_000


def test_set_time_sets_the_runtimes_clock(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    handle.set_time(50_000)
    assert runtime.now() == 50_000
    assert handle.now() == 50_000
    handle.set_time(10)
    assert runtime.now() == 10


# TestRuntimeHandle: the alarm


async def test_scheduled_time_reads_the_alarm(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    assert handle.scheduled_time() is None
    await runtime.scheduler.schedule(5_000)
    assert handle.scheduled_time() == 5_000
    await runtime.scheduler.cancel()
    assert handle.scheduled_time() is None


async def test_scheduled_time_ignores_an_uncommitted_alarm(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    async with runtime.storage.transaction():
        await runtime.scheduler.schedule(5_000)
        assert handle.scheduled_time() is None
    assert handle.scheduled_time() == 5_000


async def test_should_alarm_fire_only_when_set_and_due(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    assert handle.should_alarm_fire() is False
    handle.set_time(10_000)
    assert handle.should_alarm_fire() is False  # no alarm, however late it is
    handle.set_time(1_000)
    await runtime.scheduler.schedule(3_000)
    assert handle.should_alarm_fire() is False
    handle.advance_time(1_999)
    assert handle.should_alarm_fire() is False
    handle.advance_time(1)
    assert handle.should_alarm_fire() is True
    handle.advance_time(10_000)
    assert handle.should_alarm_fire() is True


async def test_clear_alarm_clears_it(pair: tuple[InstanceRuntime, TestRuntimeHandle]) -> None:
    runtime, handle = pair
    await runtime.scheduler.schedule(500)
    assert handle.should_alarm_fire() is True
    handle.clear_alarm()
    assert handle.scheduled_time() is None
    assert handle.should_alarm_fire() is False
    assert await runtime.scheduler.get_scheduled() == Success(None)
    handle.clear_alarm()  # clearing nothing is fine
    assert handle.scheduled_time() is None


async def test_clear_alarm_leaves_other_instances_alone() -> None:
    backend = MemoryBackend()
    first, first_handle = create_in_memory_runtime("a", backend=backend)
    second, _ = create_in_memory_runtime("b", backend=backend)
    await first.scheduler.schedule(1)
    await second.scheduler.schedule(2)
    first_handle.clear_alarm()
    assert await second.scheduler.get_scheduled() == Success(2)


# TestRuntimeHandle: the stored keys


async def test_storage_snapshot_is_decoded_and_sorted(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    assert handle.storage_snapshot() == {}
    await runtime.storage.put("z", {"n": [1, 2]})
    await runtime.storage.put("a", "text")
    await runtime.storage.put("m", None)
    snapshot = handle.storage_snapshot()
    assert snapshot == {"a": "text", "m": None, "z": {"n": [1, 2]}}
    assert list(snapshot) == ["a", "m", "z"]


async def test_storage_snapshot_is_a_copy(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    await runtime.storage.put("k", {"list": [1]})
    snapshot = handle.storage_snapshot()
    snapshot["k"]["list"].append(2)
    snapshot["new"] = 1
    assert await runtime.storage.get("k") == Success({"list": [1]})
    assert handle.storage_snapshot() == {"k": {"list": [1]}}


async def test_storage_snapshot_shows_only_committed_keys_of_its_instance() -> None:
    backend = MemoryBackend()
    runtime, handle = create_in_memory_runtime("a", backend=backend)
    other, _ = create_in_memory_runtime("b", backend=backend)
    await other.storage.put("theirs", 1)
    async with runtime.storage.transaction():
        await runtime.storage.put("mine", 2)
        assert handle.storage_snapshot() == {}
    assert handle.storage_snapshot() == {"mine": 2}


# TestRuntimeHandle: commits


async def test_commits_count_durability_points(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    storage = runtime.storage
    assert handle.commits == 0
    await storage.put("a", 1)
    assert handle.commits == 1
    await storage.put_batch({"b": 2, "c": 3})
    assert handle.commits == 2
    async with storage.transaction():
        await storage.put("d", 4)
        await storage.put("e", 5)
        await storage.delete("a")
        await runtime.scheduler.schedule(9_000)
        assert handle.commits == 2
    assert handle.commits == 3
    await runtime.scheduler.cancel()
    assert handle.commits == 4


async def test_commits_ignore_what_is_not_committed(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    storage = runtime.storage
    async with storage.transaction():
        await storage.get("x")
    async with rolled_back(storage):
        await storage.put("x", 1)
    assert isinstance(await storage.put("x", object()), Failure)
    assert isinstance(await storage.put_batch({"x": float("nan")}), Failure)
    assert await storage.delete("missing") == Success(False)
    assert handle.commits == 0


# FailingStorage

OPERATIONS = ["get", "put", "put_batch", "delete", "delete_all", "list"]


async def call(storage: FailingStorage, operation: str) -> object:
    """Run one storage operation and return its result."""
    match operation:
        case "get":
            return await storage.get("k")
        case "put":
            return await storage.put("k", "new")
        case "put_batch":
            return await storage.put_batch({"k": "new", "k2": 2})
        case "delete":
            return await storage.delete("k")
        case "delete_all":
            return await storage.delete_all()
        case "list":
            return await storage.list("")
    raise AssertionError(operation)


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_failing_storage_fails_the_chosen_operation(
    pair: tuple[InstanceRuntime, TestRuntimeHandle], operation: str
) -> None:
    runtime, handle = pair
    await runtime.storage.put("k", "old")
    failing = FailingStorage(runtime.storage, fail_on={operation})
    result = await call(failing, operation)
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, StorageError)
    assert error.operation == operation
    assert failing.failures == 1
    assert handle.storage_snapshot() == {"k": "old"}

    await call(failing, operation)
    assert failing.failures == 2


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_failing_storage_passes_other_operations_through(
    pair: tuple[InstanceRuntime, TestRuntimeHandle], operation: str
) -> None:
    runtime, _ = pair
    others = set(OPERATIONS) - {operation}
    failing = FailingStorage(runtime.storage, fail_on=others)
    await runtime.storage.put("k", "old")
    result = await call(failing, operation)
    assert isinstance(result, Success)
    assert failing.failures == 0
    expected_after = {
        "get": {"k": "old"},
        "put": {"k": "new"},
        "put_batch": {"k": "new", "k2": 2},
        "delete": {},
        "delete_all": {},
        "list": {"k": "old"},
    }[operation]
    assert await runtime.storage.list("") == Success(expected_after)


async def test_failing_storage_passes_everything_through_by_default(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    failing = FailingStorage(runtime.storage)
    assert await failing.put("a", [1]) == Success(None)
    assert await failing.put_batch({"b": 2, "c": 3}) == Success(None)
    assert await failing.get("a") == Success([1])
    assert await failing.delete("c") == Success(True)
    assert await failing.list("") == Success({"a": [1], "b": 2})
    async with failing.transaction():
        await failing.put("d", 4)
    assert handle.storage_snapshot() == {"a": [1], "b": 2, "d": 4}
    assert await failing.delete_all() == Success(None)
    assert handle.storage_snapshot() == {}
    assert failing.failures == 0


async def test_failing_storage_heals_when_the_operation_is_removed(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, _ = pair
    failing = FailingStorage(runtime.storage, fail_on={"put"})
    assert isinstance(await failing.put("k", 1), Failure)
    failing.fail_on.discard("put")
    assert await failing.put("k", 1) == Success(None)
    assert await runtime.storage.get("k") == Success(1)
    assert failing.failures == 1
    failing.fail_on.add("put")
    assert isinstance(await failing.put("k", 2), Failure)
    assert await runtime.storage.get("k") == Success(1)


async def test_a_failing_commit_raises_and_discards_the_whole_block(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    await runtime.storage.put_batch({"keep": 1, "doomed": 2})
    await runtime.scheduler.schedule(5_000)
    commits = handle.commits
    failing = FailingStorage(runtime.storage, fail_on={"commit"})
    async with commit_fails(failing):
        await failing.put("new", 1)
        await failing.put("keep", 100)
        await failing.delete("doomed")
        await runtime.scheduler.schedule(9_000)
        assert await failing.get("new") == Success(1)
    assert failing.failures == 1
    assert handle.storage_snapshot() == {"doomed": 2, "keep": 1}
    assert handle.scheduled_time() == 5_000
    assert handle.commits == commits


async def test_a_failing_commit_discards_a_delete_all_and_a_cancel(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    await runtime.storage.put("keep", 1)
    await runtime.scheduler.schedule(5_000)
    failing = FailingStorage(runtime.storage, fail_on={"commit"})
    async with commit_fails(failing):
        await failing.delete_all()
        await runtime.scheduler.cancel()
    assert handle.storage_snapshot() == {"keep": 1}
    assert handle.scheduled_time() == 5_000


async def test_a_commit_heals_when_commit_is_removed_from_fail_on(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    failing = FailingStorage(runtime.storage, fail_on={"commit"})
    async with commit_fails(failing):
        await failing.put("k", 1)
    failing.fail_on.discard("commit")
    async with failing.transaction():
        await failing.put("k", 2)
        await runtime.scheduler.schedule(7_000)
    assert handle.storage_snapshot() == {"k": 2}
    assert handle.scheduled_time() == 7_000
    assert failing.failures == 1


async def test_a_block_that_raises_is_not_a_failed_commit(
    pair: tuple[InstanceRuntime, TestRuntimeHandle],
) -> None:
    runtime, handle = pair
    failing = FailingStorage(runtime.storage, fail_on={"commit"})
    async with rolled_back(failing):
        await failing.put("k", 1)
    assert failing.failures == 0
    assert handle.storage_snapshot() == {}


async def test_a_failing_commit_leaves_other_instances_alone() -> None:
    backend = MemoryBackend()
    runtime, handle = create_in_memory_runtime("a", backend=backend)
    other, other_handle = create_in_memory_runtime("b", backend=backend)
    failing = FailingStorage(runtime.storage, fail_on={"commit"})
    async with commit_fails(failing):
        await failing.put("k", 1)
        await other.storage.put("theirs", 2)
    assert handle.storage_snapshot() == {}
    assert other_handle.storage_snapshot() == {"theirs": 2}


@pytest.mark.parametrize("operation", ["put", "put_batch", "delete", "delete_all"])
async def test_a_write_outside_a_transaction_is_a_commit_that_can_fail(
    pair: tuple[InstanceRuntime, TestRuntimeHandle], operation: str
) -> None:
    runtime, handle = pair
    await runtime.storage.put("k", "old")
    failing = FailingStorage(runtime.storage, fail_on={"commit"})
    result = await call(failing, operation)
    assert isinstance(result, Failure)
    assert result.failure().operation == "commit"
    assert handle.storage_snapshot() == {"k": "old"}
    async with failing.transaction():  # inside a transaction only the commit itself fails
        assert isinstance(await failing.get("k"), Success)
        assert isinstance(await failing.put("k2", 1), Success)
        failing.fail_on = set()
    assert handle.storage_snapshot() == {"k": "old", "k2": 1}
