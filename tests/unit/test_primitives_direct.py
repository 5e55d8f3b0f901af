"""``await definition.execute(input)``: the body run directly, with no durability."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from returns.result import Failure, Success

import durably


async def test_steps_run_once_each_and_sleeps_return_at_once() -> None:
    calls: list[str] = []

    @durably.workflow
    async def direct(name: str) -> list[str]:
        def greet(word: str) -> str:
            calls.append(word)
            return f"{word} {name}"

        first = await durably.step("greet", lambda: greet("hi"))
        second = await durably.step("greet", lambda: greet("bye"))
        await durably.sleep("1 day")
        await durably.sleep_until(2**40)
        return [first, second]

    # Bounded: a sleep that really waited would hit the wait_for timeout.
    result = await asyncio.wait_for(direct.execute("ann"), timeout=5)
    assert result == ["hi ann", "bye ann"]
    assert calls == ["hi", "bye"]
    assert await direct.execute("bob") == ["hi bob", "bye bob"]
    assert len(calls) == 4  # nothing is stored between direct runs


async def test_context_works_in_a_direct_run() -> None:
    seen: list[tuple[str, str, Any, str | None]] = []

    @durably.workflow(name="ctx-direct")
    async def direct(value: int) -> Any:
        ctx = durably.context()
        seen.append((ctx.workflow_id, ctx.workflow_name, ctx.input, ctx.execution_id))
        await ctx.set_meta("k", {"v": value})
        assert ctx.now() > 0
        return await ctx.get_meta("k")

    assert await direct.execute(3) == {"v": 3}
    [(workflow_id, name, input, execution_id)] = seen
    assert workflow_id.startswith("direct-")
    assert (name, input, execution_id) == ("ctx-direct", 3, None)


async def test_step_info_works_in_a_direct_run() -> None:
    infos: list[durably.StepInfo] = []
    ids: list[str] = []

    @durably.workflow
    async def direct(_: Any) -> None:
        ids.append(durably.context().workflow_id)
        await durably.step("x", lambda: infos.append(durably.step_info()))
        await durably.step("x", lambda: infos.append(durably.step_info()))

    await direct.execute(None)
    [workflow_id] = ids
    assert [(i.workflow_id, i.step_name, i.attempt) for i in infos] == [
        (workflow_id, "x", 1),
        (workflow_id, "x#2", 1),
    ]
    assert [i.idempotency_key for i in infos] == [f"{workflow_id}/x", f"{workflow_id}/x#2"]


async def test_decorated_steps_and_results_in_a_direct_run() -> None:
    @durably.step
    async def double(n: int) -> int:
        return n * 2

    @durably.workflow
    async def direct(n: int) -> list[Any]:
        return [
            await double(n),
            await durably.step("ok", lambda: Success(n + 1)),
        ]

    assert await direct.execute(5) == [10, 6]


async def test_scope_rules_hold_in_a_direct_run() -> None:
    @durably.workflow
    async def nested(_: Any) -> int:
        async def outer() -> int:
            return await durably.step("inner", lambda: 1)

        return await durably.step("outer", outer)

    with pytest.raises(durably.StepScopeError) as info:
        await nested.execute(None)
    assert (info.value.operation, info.value.step_name) == ("step", "outer")


async def test_a_failing_step_raises_in_a_direct_run() -> None:
    @durably.workflow
    async def direct(_: Any) -> int:
        return await durably.step("boom", lambda: 1 // 0)

    with pytest.raises(ZeroDivisionError):
        await direct.execute(None)

    @durably.workflow
    async def returns_failure(_: Any) -> int:
        return await durably.step("f", lambda: Failure(KeyError("missing")))

    with pytest.raises(KeyError, match="missing"):
        await returns_failure.execute(None)


async def test_the_direct_scope_does_not_leak_out() -> None:
    @durably.workflow
    async def direct(_: Any) -> str:
        return "ok"

    assert await direct.execute(None) == "ok"
    with pytest.raises(durably.WorkflowScopeError):
        durably.context()
