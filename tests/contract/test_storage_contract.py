"""The ``StorageAdapter`` contract, run against every backend."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from returns.result import Failure, Success

from durably.domain.errors import StorageError
from durably.domain.records import JsonValue
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


async def contents(storage: StorageAdapter) -> dict[str, JsonValue]:
    """Every key and value of an instance."""
    return (await storage.list("")).unwrap()


def same_json(got: Any, expected: Any) -> bool:
    """Equal, and of the same JSON kind all the way down (``True`` is not ``1``)."""
    if type(got) is not type(expected):
        return False
    if isinstance(expected, dict):
        return got.keys() == expected.keys() and all(
            same_json(got[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return len(got) == len(expected) and all(
            same_json(g, e) for g, e in zip(got, expected, strict=True)
        )
    return bool(got == expected)


JSON_VALUES: dict[str, JsonValue] = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "negative-int": -42,
    "big-int": 2**53 + 1,
    "float": 1.5,
    "negative-float": -0.25,
    "empty-string": "",
    "string": "plain text",
    "unicode": 'héllo ✓ 日本語 🎉 "quoted" \\ \n\t',
    "empty-list": [],
    "empty-dict": {},
    "list": [1, "two", 3.5, None, True, [4, [5]], {"six": 6}],
    "nested-dict": {
        "name": "ünïcødé",
        "items": [{"id": 1, "tags": ["a", "b"]}, {"id": 2, "tags": []}],
        "meta": {"ok": False, "none": None, "deep": {"deeper": {"deepest": [0.5]}}},
        "clé 🔑": "value",
    },
}

NOT_JSON: dict[str, Any] = {
    "object": object(),
    "nan": math.nan,
    "infinity": math.inf,
    "nested-object": {"fine": 1, "bad": [object()]},
    "set": {1, 2},
    "bytes": b"raw",
}


async def test_get_of_a_missing_key_is_none(runtime_a: InstanceRuntime) -> None:
    assert await runtime_a.storage.get("missing") == Success(None)


@pytest.mark.parametrize("value", list(JSON_VALUES.values()), ids=list(JSON_VALUES))
async def test_put_then_get_round_trips_every_json_kind(
    runtime_a: InstanceRuntime, value: JsonValue
) -> None:
    storage = runtime_a.storage
    assert await storage.put("key", value) == Success(None)
    got = (await storage.get("key")).unwrap()
    assert same_json(got, value), (got, value)


async def test_every_json_kind_round_trips_through_list(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    for name, value in JSON_VALUES.items():
        assert await storage.put(f"value:{name}", value) == Success(None)
    listed = (await storage.list("value:")).unwrap()
    assert same_json(listed, {f"value:{n}": v for n, v in JSON_VALUES.items()})


async def test_unicode_keys_round_trip(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put("schlüssel:日本:🎉", 1)
    assert await storage.get("schlüssel:日本:🎉") == Success(1)
    assert await storage.list("schlüssel:") == Success({"schlüssel:日本:🎉": 1})


async def test_a_stored_none_reads_back_as_none_but_the_key_exists(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    await storage.put("nothing", None)
    assert await storage.get("nothing") == Success(None)
    assert await storage.list("") == Success({"nothing": None})
    assert await storage.delete("nothing") == Success(True)
    assert await storage.list("") == Success({})


async def test_put_overwrites(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put("key", {"version": 1})
    await storage.put("key", [2])
    assert await storage.get("key") == Success([2])
    assert await contents(storage) == {"key": [2]}


async def test_put_stores_a_copy(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    value: dict[str, Any] = {"list": [1, 2], "inner": {"a": 1}}
    await storage.put("key", value)
    value["list"].append(3)
    value["inner"]["a"] = 99
    value["added"] = True
    assert await storage.get("key") == Success({"list": [1, 2], "inner": {"a": 1}})


async def test_put_batch_stores_copies(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    value: dict[str, Any] = {"list": [1]}
    await storage.put_batch({"key": value})
    value["list"].append(2)
    assert await storage.get("key") == Success({"list": [1]})


async def test_mutating_what_get_returns_does_not_change_the_stored_value(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    await storage.put("key", {"list": [1, 2], "inner": {"a": 1}})
    first = (await storage.get("key")).unwrap()
    assert isinstance(first, dict)
    first["list"].append(3)
    first["inner"]["a"] = 99
    assert await storage.get("key") == Success({"list": [1, 2], "inner": {"a": 1}})


async def test_mutating_what_list_returns_does_not_change_the_stored_value(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    await storage.put("key", {"list": [1]})
    listed = (await storage.list("")).unwrap()
    assert isinstance(listed["key"], dict)
    listed["key"]["list"].append(2)
    listed["other"] = 1
    assert await contents(storage) == {"key": {"list": [1]}}


@pytest.mark.parametrize("value", list(NOT_JSON.values()), ids=list(NOT_JSON))
async def test_put_of_a_non_json_value_fails_naming_the_key_and_stores_nothing(
    runtime_a: InstanceRuntime, value: Any
) -> None:
    storage = runtime_a.storage
    await storage.put("existing", "kept")
    result = await storage.put("bad-key", value)
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, StorageError)
    assert error.key == "bad-key"
    assert "bad-key" in str(error)
    assert await contents(storage) == {"existing": "kept"}


async def test_a_failed_put_leaves_the_previous_value(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put("key", "before")
    assert isinstance(await storage.put("key", math.nan), Failure)
    assert await storage.get("key") == Success("before")


async def test_put_batch_stores_every_entry(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put("b", "old")
    assert await storage.put_batch({"a": 1, "b": [2], "c": {"three": 3}}) == Success(None)
    assert await contents(storage) == {"a": 1, "b": [2], "c": {"three": 3}}


async def test_put_batch_of_nothing_changes_nothing(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put("a", 1)
    assert await storage.put_batch({}) == Success(None)
    assert await contents(storage) == {"a": 1}


@pytest.mark.parametrize("value", list(NOT_JSON.values()), ids=list(NOT_JSON))
async def test_put_batch_with_one_bad_value_stores_nothing(
    runtime_a: InstanceRuntime, value: Any
) -> None:
    storage = runtime_a.storage
    await storage.put("a", "old")
    result = await storage.put_batch({"a": "new", "b": 2, "bad": value, "z": 26})
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, StorageError)
    assert error.key == "bad"
    assert "bad" in str(error)
    assert await contents(storage) == {"a": "old"}


async def test_delete_reports_whether_the_key_existed(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put("key", 1)
    await storage.put("other", 2)
    assert await storage.delete("key") == Success(True)
    assert await storage.get("key") == Success(None)
    assert await storage.delete("key") == Success(False)
    assert await storage.delete("never") == Success(False)
    assert await contents(storage) == {"other": 2}


async def test_delete_all_removes_every_key(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    await storage.put_batch({"a": 1, "b:c": 2, "d": None})
    assert await storage.delete_all() == Success(None)
    assert await contents(storage) == {}
    assert await storage.get("a") == Success(None)
    await storage.put("after", 1)
    assert await contents(storage) == {"after": 1}


async def test_delete_all_of_an_empty_instance_is_fine(runtime_a: InstanceRuntime) -> None:
    assert await runtime_a.storage.delete_all() == Success(None)
    assert await contents(runtime_a.storage) == {}


async def test_list_returns_only_matching_keys_in_key_order(runtime_a: InstanceRuntime) -> None:
    storage = runtime_a.storage
    for key in ["step:b", "sleep:1", "step:a", "stepx", "a", "step:c:1", "step"]:
        await storage.put(key, key.upper())
    listed = (await storage.list("step:")).unwrap()
    assert list(listed.items()) == [
        ("step:a", "STEP:A"),
        ("step:b", "STEP:B"),
        ("step:c:1", "STEP:C:1"),
    ]
    assert await storage.list("nothing:") == Success({})


async def test_list_with_an_empty_prefix_lists_every_key_in_order(
    runtime_a: InstanceRuntime,
) -> None:
    storage = runtime_a.storage
    keys = ["z", "b", "a:2", "a:10", "a", "B"]
    for key in keys:
        await storage.put(key, 0)
    assert list((await storage.list("")).unwrap()) == sorted(keys)


async def test_two_instances_are_isolated_in_every_operation(
    runtime_a: InstanceRuntime, runtime_b: InstanceRuntime
) -> None:
    a, b = runtime_a.storage, runtime_b.storage
    await a.put("shared", "a")
    await a.put_batch({"p:1": "a1", "p:2": "a2"})
    assert await b.get("shared") == Success(None)
    assert await b.list("") == Success({})

    await b.put("shared", "b")
    await b.put_batch({"p:1": "b1"})
    assert await a.get("shared") == Success("a")
    assert await b.get("shared") == Success("b")
    assert await a.list("p:") == Success({"p:1": "a1", "p:2": "a2"})
    assert await b.list("p:") == Success({"p:1": "b1"})

    assert await b.delete("p:2") == Success(False)
    assert await a.get("p:2") == Success("a2")
    assert await b.delete("shared") == Success(True)
    assert await a.get("shared") == Success("a")

    await a.delete_all()
    assert await contents(a) == {}
    assert await contents(b) == {"p:1": "b1"}


async def test_runtimes_of_the_same_instance_share_its_keys(
    runtime_a: InstanceRuntime, make_runtime: Callable[[str], InstanceRuntime]
) -> None:
    await runtime_a.storage.put("key", {"v": 1})
    again = make_runtime(runtime_a.instance_id)
    assert await again.storage.get("key") == Success({"v": 1})


# Transactions


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


async def test_get_many_returns_the_existing_keys_only(
    runtime_a: InstanceRuntime, runtime_b: InstanceRuntime
) -> None:
    storage = runtime_a.storage
    assert (await storage.put_batch({"a": 1, "b": {"x": [1]}, "c": None})).unwrap() is None
    assert (await runtime_b.storage.put("d", "other instance")).unwrap() is None
    found = (await storage.get_many(["a", "b", "missing", "d"])).unwrap()
    assert found == {"a": 1, "b": {"x": [1]}}
    assert (await storage.get_many([])).unwrap() == {}


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
