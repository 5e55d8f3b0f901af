"""The ``StorageAdapter`` contract, run against every backend: reads, writes, lists, isolation.

Transactions are in ``test_storage_transaction_contract.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from returns.result import Failure, Success

from durably.domain.errors import StorageError
from durably.domain.records import JsonValue
from durably.ports import InstanceRuntime
from tests.support.storage import contents


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


async def test_get_many_returns_the_existing_keys_only(
    runtime_a: InstanceRuntime, runtime_b: InstanceRuntime
) -> None:
    storage = runtime_a.storage
    assert (await storage.put_batch({"a": 1, "b": {"x": [1]}, "c": None})).unwrap() is None
    assert (await runtime_b.storage.put("d", "other instance")).unwrap() is None
    found = (await storage.get_many(["a", "b", "missing", "d"])).unwrap()
    assert found == {"a": 1, "b": {"x": [1]}}
    assert (await storage.get_many([])).unwrap() == {}
