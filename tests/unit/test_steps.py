"""Steps (semantics.md section 3): scope, keys, replay, cancel, values, step_info, failures.

Retries and timeouts are in ``test_retries.py``. Every test drives a real orchestrator
over the in-memory runtime, with a virtual clock moved by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import pytest
from returns.result import Result, Success

import durably
from durably.domain.inbox import CANCEL, Outgoing
from durably.domain.records import JsonValue
from durably.domain.serialization import dumps
from durably.ports import StorageAdapter
from durably.services import WorkflowStateMachine
from durably.status import Cancelled, Completed, Failed, Paused
from durably.types import WorkflowCall
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory

T0 = 1_000
V = TypeVar("V")


@attrs.frozen
class Point:
    """A declared step return type (an attrs class stored as JSON)."""

    x: int
    y: int


def logged(log: list[V], value: V) -> Callable[[], V]:
    """A step function that appends ``value`` to ``log`` (to count calls) and returns it."""

    def fn() -> V:
        log.append(value)
        return value

    return fn


async def failed_error(h: Harness) -> durably.status.WorkflowError:
    status = await h.status()
    assert isinstance(status, Failed), status
    return status.error


# -- scope ----------------------------------------------------------------------------


async def test_step_outside_a_workflow_is_a_workflow_scope_error() -> None:
    with pytest.raises(durably.WorkflowScopeError, match="step"):
        await durably.step("x", lambda: 1)


async def test_nested_step_is_a_step_scope_error_naming_the_outer_key(
    runtimes: RuntimeFactory,
) -> None:
    seen: list[durably.StepScopeError] = []
    inner_calls: list[int] = []

    async def outer() -> int:
        try:
            return await durably.step("inner", logged(inner_calls, 2))
        except durably.StepScopeError as e:
            seen.append(e)
            raise

    @durably.workflow
    async def nesting(_: Any) -> int:
        await durably.step("outer", lambda: 0)
        return await durably.step("outer", outer)  # keyed outer#2

    h = Harness(runtimes("i1", T0), nesting)
    result = await h.start()
    assert not result.completed
    assert len(seen) == 1
    assert (seen[0].operation, seen[0].step_name) == ("step", "outer#2")
    assert inner_calls == []
    error = await failed_error(h)
    assert error.type == "StepScopeError"
    assert error.step_name == "outer#2"


async def test_sleep_inside_a_step_is_a_step_scope_error(runtimes: RuntimeFactory) -> None:
    seen: list[durably.StepScopeError] = []

    async def sleepy() -> int:
        try:
            await durably.sleep("1s")
        except durably.StepScopeError as e:
            seen.append(e)
            raise
        return 1

    @durably.workflow
    async def sleeping_step(_: Any) -> int:
        return await durably.step("s", sleepy)

    h = Harness(runtimes("i1", T0), sleeping_step)
    await h.start()
    assert [(e.operation, e.step_name) for e in seen] == [("sleep", "s")]
    assert (await failed_error(h)).type == "StepScopeError"


# -- keys and replay -------------------------------------------------------------------


async def test_repeated_names_get_their_own_keys_and_results_and_replay_them(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []

    def count() -> int:
        calls.append(1)
        return len(calls) * 10

    @durably.workflow
    async def repeated(_: Any) -> list[int]:
        values = [await durably.step("x", count) for _ in range(3)]
        await durably.sleep("5s")
        return values

    h = Harness(runtimes("i1", T0), repeated)
    first = await h.start()
    assert isinstance(first.status, Paused)
    snapshot = h.snapshot()
    stored = {k: snapshot[f"step:{k}:result"]["value"] for k in ("x", "x#2", "x#3")}
    assert stored == {"x": 10, "x#2": 20, "x#3": 30}
    assert await h.completed_steps() == ("x", "x#2", "x#3")

    assert isinstance(await h.resume(), Completed)
    assert len(calls) == 3  # replay read the stored values; fn was not called again
    assert await h.output() == [10, 20, 30]
    assert await h.completed_steps() == ("x", "x#2", "x#3")


async def test_the_end_of_a_segment_names_every_completed_step_in_order_without_listing_them(
    runtimes: RuntimeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Completed steps are counted as they commit: the end of a segment does not list the
    step records again, and still names the ones of earlier segments, retried ones and
    repeated names in the order they completed."""
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(durably.step_info().attempt)
        if len(attempts) == 1:
            raise ConnectionError("try again")
        return "ok"

    @durably.workflow
    async def segments(_: Any) -> str:
        await durably.step("a", lambda: 1)
        await durably.sleep("1s")
        await durably.step("a", lambda: 2)
        await durably.step("b", flaky, retry=durably.Retry(max_attempts=1, delay="1s"))
        await durably.step("c", lambda: 3)
        return "done"

    listed: list[str] = []
    real = WorkflowStateMachine.completed_steps

    def spied(self: Any) -> Any:
        listed.append("completed_steps")
        return real(self)

    monkeypatch.setattr(WorkflowStateMachine, "completed_steps", spied)
    h = Harness(runtimes("i1", T0), segments)
    await h.start()  # a, then the sleep
    await h.resume()  # a#2, then b fails and waits for its retry
    paused = await h.status()
    assert isinstance(paused, Paused)
    h.handle.set_time(paused.resume_at)
    listed.clear()
    (await h.layer().orchestrator().handle_alarm()).unwrap()  # b (attempt 2) and c
    assert listed == ["completed_steps"]  # the alarm's read of the state; none at the end
    assert isinstance(await h.status(), Completed)
    (completed,) = h.tracker.of_type("workflow.completed")
    assert completed.completed_steps == ("a", "a#2", "b", "c")
    assert await h.completed_steps() == ("a", "a#2", "b", "c")
    assert attempts == [1, 2]


async def test_replay_of_100_steps_calls_no_fn_and_emits_cached_completions(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []

    @durably.workflow
    async def hundred(_: Any) -> int:
        total = 0
        for i in range(100):
            total += await durably.step(f"s{i}", logged(calls, i))
        await durably.sleep("1 minute")
        return total

    h = Harness(runtimes("i1", T0), hundred)
    await h.start()
    assert len(calls) == 100
    assert not [e for e in h.tracker.of_type("step.completed") if e.cached]
    h.tracker.clear()

    assert isinstance(await h.resume(), Completed)
    assert len(calls) == 100
    cached = h.tracker.of_type("step.completed")
    assert [e.step_name for e in cached] == [f"s{i}" for i in range(100)]
    assert all(e.cached and e.attempt == 1 for e in cached)
    assert h.tracker.of_type("step.started") == []
    assert await h.output() == sum(range(100))


# -- cancel ----------------------------------------------------------------------------


def cancel_from_afar(h: Harness, reason: str) -> Callable[[], Awaitable[str]]:
    """A step body that sends a cancel to its own instance's inbox, as another process
    does while the step runs."""

    async def send() -> str:
        message = Outgoing(h.runtime.instance_id, CANCEL, payload=dumps({"reason": reason}))
        (await h.runtime.inbox.append(message)).unwrap()
        return "sent"

    return send


async def test_a_cancel_sent_while_a_step_runs_stops_the_next_step_with_the_users_reason(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[str] = []
    h: Harness

    @durably.workflow
    async def cancellable(_: Any) -> str:
        await durably.step("a", cancel_from_afar(h, "user said stop"))
        await durably.step("b", logged(calls, "b"))
        return "done"

    h = Harness(runtimes("i1", T0), cancellable)
    status = (await h.start()).status
    assert isinstance(status, Cancelled)
    assert status.reason == "user said stop"
    assert calls == []
    snapshot = h.snapshot()
    assert "step:a:result" in snapshot  # the step that was running committed
    assert "step:b:result" not in snapshot
    assert [e.reason for e in h.tracker.of_type("workflow.cancelled")] == ["user said stop"]


async def test_cancel_while_paused_then_a_late_alarm_runs_nothing(runtimes: RuntimeFactory) -> None:
    calls: list[str] = []

    @durably.workflow
    async def paused(_: Any) -> str:
        await durably.sleep("5s")
        return await durably.step("b", logged(calls, "b"))

    h = Harness(runtimes("i1", T0), paused)
    await h.start()
    cancelled = (await h.layer().orchestrator().cancel("no longer needed")).unwrap()
    assert cancelled.cancelled
    h.handle.set_time(T0 + 10_000)
    (await h.layer().orchestrator().handle_alarm()).unwrap()
    status = await h.status()
    assert isinstance(status, Cancelled)
    assert status.reason == "no longer needed"
    assert calls == []


async def test_cancel_of_a_running_workflow_interrupts_it_even_under_except_exception(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[str] = []
    finished: list[bool] = []

    async def cancel_then_wait() -> str:
        (await layer.orchestrator().cancel("stop now")).unwrap()
        calls.append("a")
        await asyncio.sleep(5)  # interrupted: the cancel reaches the running task here
        finished.append(True)
        return "a"

    @durably.workflow
    async def running(_: Any) -> str:
        with contextlib.suppress(Exception):  # must not swallow the cancellation
            await durably.step("a", cancel_then_wait)
        await durably.step("b", logged(calls, "b"))
        return "done"

    h = Harness(runtimes("i1", T0), running)
    layer = h.layer()  # one layer: its executions registry sees the running task
    result = (await layer.orchestrator().start(WorkflowCall("running"))).unwrap()
    assert not result.completed
    status = await h.status()
    assert isinstance(status, Cancelled)
    assert status.reason == "stop now"
    assert calls == ["a"]
    assert finished == []
    assert "step:a:result" not in h.snapshot()


async def test_except_exception_around_a_cancelled_step_does_not_swallow_it(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[str] = []
    h: Harness

    @durably.workflow
    async def swallowing(_: Any) -> str:
        await durably.step("a", cancel_from_afar(h, "bye"))
        try:
            await durably.step("b", logged(calls, "b"))
        except Exception:
            calls.append("swallowed")
        await durably.step("c", logged(calls, "c"))
        return "done"

    h = Harness(runtimes("i1", T0), swallowing)
    status = (await h.start()).status
    assert isinstance(status, Cancelled)
    assert status.reason == "bye"
    assert calls == []


# -- what fn may return ---------------------------------------------------------------


async def async_value() -> int:
    return 7


async def async_point() -> Point:
    return Point(1, 2)


async def async_success() -> Result[Point, ValueError]:
    return Success(Point(3, 4))


def sync_point() -> Point:
    return Point(5, 6)


@durably.step
async def make_point(x: int) -> Point:
    return Point(x, x * 10)


async def test_values_awaitables_and_results_are_unwrapped_and_stored(
    runtimes: RuntimeFactory,
) -> None:
    @durably.workflow
    async def values(_: Any) -> list[Any]:
        return [
            await durably.step("plain", lambda: 1),
            await durably.step("async", async_value),
            await durably.step("coroutine", lambda: async_value()),
            await durably.step("success", lambda: Success({"a": 1})),
            await durably.step("none", lambda: None),
        ]

    h = Harness(runtimes("i1", T0), values)
    result = await h.start()
    assert result.completed
    assert result.output == [1, 7, 7, {"a": 1}, None]
    snapshot = h.snapshot()
    assert snapshot["step:success:result"]["value"] == {"a": 1}
    assert snapshot["step:coroutine:result"]["value"] == 7
    assert snapshot["step:none:result"]["value"] is None
    assert await h.completed_steps() == ("plain", "async", "coroutine", "success", "none")


async def test_step_values_are_the_same_objects_on_the_first_run_and_on_replay(
    runtimes: RuntimeFactory,
) -> None:
    seen: list[list[Any]] = []

    @durably.workflow
    async def typed(_: Any) -> str:
        values = [
            await durably.step("async_point", async_point),
            await durably.step("result_point", async_success),
            await durably.step("sync_point", sync_point),
            await make_point(7),
            await durably.step("lambda_point", lambda: Point(8, 9)),
        ]
        seen.append(values)
        await durably.sleep("1s")
        return "done"

    h = Harness(runtimes("i1", T0), typed)
    await h.start()
    assert isinstance(await h.resume(), Completed)
    first, replayed = seen
    expected = [Point(1, 2), Point(3, 4), Point(5, 6), Point(7, 70), Point(8, 9)]
    assert first == expected
    assert replayed == expected
    # Declared or not (the lambda's Point is stored tagged with its class), the same type.
    assert all(type(v) is Point for v in first + replayed)


async def test_a_generic_return_annotation_replays_the_stored_json(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[list[int]] = []

    def boxed(value: V) -> Callable[[], list[V]]:
        def fn() -> list[V]:  # a type variable: nothing concrete to convert into
            return [value]

        return fn

    @durably.workflow
    async def generic(_: Any) -> list[Any]:
        calls.append(await durably.step("boxed", boxed(3)))
        await durably.sleep("1s")
        return [await durably.step("counted", logged(calls, [4]))]

    h = Harness(runtimes("i1", T0), generic)
    await h.start()
    assert isinstance(await h.resume(), Completed)
    assert calls == [[3], [3], [4]]
    assert await h.output() == [[4]]


async def test_a_step_declared_to_return_none_replays(runtimes: RuntimeFactory) -> None:
    sent: list[str] = []

    @durably.step
    async def notify(to: str) -> None:
        sent.append(to)

    @durably.workflow
    async def notifying(_: Any) -> str:
        await notify("ann")
        await durably.sleep("1s")
        return "done"

    h = Harness(runtimes("i1", T0), notifying)
    await h.start()
    assert isinstance(await h.resume(), Completed)
    assert sent == ["ann"]


# -- step_info -------------------------------------------------------------------------


async def test_step_info_names_the_workflow_the_key_and_the_attempt(
    runtimes: RuntimeFactory,
) -> None:
    infos: list[durably.StepInfo] = []

    def record() -> int:
        infos.append(durably.step_info())
        return len(infos)

    @durably.workflow
    async def informed(_: Any) -> int:
        await durably.step("x", record)
        return await durably.step("x", record)

    h = Harness(runtimes("wf-42", T0), informed)
    assert (await h.start()).completed
    assert [(i.workflow_id, i.step_name, i.attempt) for i in infos] == [
        ("wf-42", "x", 1),
        ("wf-42", "x#2", 1),
    ]
    assert [i.idempotency_key for i in infos] == ["wf-42/x", "wf-42/x#2"]


async def test_step_info_idempotency_key_is_stable_across_attempts(
    runtimes: RuntimeFactory,
) -> None:
    infos: list[durably.StepInfo] = []

    def flaky() -> str:
        info = durably.step_info()
        infos.append(info)
        if info.attempt == 1:
            raise ConnectionError("try again")
        return "ok"

    @durably.workflow
    async def retried(_: Any) -> str:
        await durably.step("charge", lambda: "first")
        return await durably.step(
            "charge", flaky, retry=durably.Retry(max_attempts=1, delay="1s", jitter=False)
        )

    h = Harness(runtimes("order-1", T0), retried)
    await h.start()
    assert isinstance(await h.resume(), Completed)
    assert [(i.step_name, i.attempt) for i in infos] == [("charge#2", 1), ("charge#2", 2)]
    assert {i.idempotency_key for i in infos} == {"order-1/charge#2"}


async def test_step_info_outside_a_step_is_a_workflow_scope_error(runtimes: RuntimeFactory) -> None:
    with pytest.raises(durably.WorkflowScopeError):
        durably.step_info()
    seen: list[BaseException] = []

    @durably.workflow
    async def body(_: Any) -> str:
        try:
            durably.step_info()
        except durably.WorkflowScopeError as e:
            seen.append(e)
        return "ok"

    h = Harness(runtimes("i1", T0), body)
    assert (await h.start()).completed
    assert len(seen) == 1


# -- the decorator ---------------------------------------------------------------------


async def test_bare_decorator_names_steps_after_the_function_and_keys_repeats(
    runtimes: RuntimeFactory,
) -> None:
    calls: list[int] = []

    @durably.step
    async def fetch(n: int) -> int:
        calls.append(n)
        return n * 2

    @durably.workflow
    async def decorated(_: Any) -> list[int]:
        values = [await fetch(1), await fetch(2), await fetch(3)]
        await durably.sleep("1s")
        return values

    assert fetch.__name__ == "fetch"
    h = Harness(runtimes("i1", T0), decorated)
    await h.start()
    assert await h.completed_steps() == ("fetch", "fetch#2", "fetch#3")
    assert isinstance(await h.resume(), Completed)
    assert calls == [1, 2, 3]
    assert await h.output() == [2, 4, 6]


async def test_decorator_with_name_retry_and_timeout(runtimes: RuntimeFactory) -> None:
    attempts: list[int] = []

    @durably.step(
        name="charge-card",
        retry=durably.Retry(max_attempts=1, delay="2s", jitter=False),
        timeout="5s",
    )
    async def charge(amount: int) -> str:
        attempts.append(durably.step_info().attempt)
        if len(attempts) == 1:
            raise ConnectionError("gateway down")
        return f"charged {amount}"

    @durably.workflow
    async def paying(_: Any) -> str:
        return await charge(30)

    h = Harness(runtimes("i1", T0), paying)
    first = await h.start()
    assert first.status == Paused(reason="retry", resume_at=T0 + 2_000, step_name="charge-card")
    assert isinstance(await h.resume(), Completed)
    assert attempts == [1, 2]
    assert await h.output() == "charged 30"
    assert await h.completed_steps() == ("charge-card",)


def test_decorator_validates_its_options_when_applied() -> None:
    with pytest.raises(durably.InvalidDurationError, match="timeout"):
        durably.step(timeout=0)
    with pytest.raises(TypeError, match="Retry"):
        durably.step(retry=3)  # type: ignore[call-overload]


# -- control flow is never swallowed ---------------------------------------------------


async def test_except_exception_around_a_sleep_does_not_swallow_the_pause(
    runtimes: RuntimeFactory,
) -> None:
    after: list[str] = []

    @durably.workflow
    async def careless(_: Any) -> str:
        try:
            await durably.sleep("1s")
        except Exception:
            after.append("swallowed")
        after.append("after")
        return "done"

    h = Harness(runtimes("i1", T0), careless)
    first = await h.start()
    assert first.status == Paused(reason="sleep", resume_at=T0 + 1_000)
    assert after == []
    assert isinstance(await h.resume(), Completed)
    assert after == ["after"]


# -- durability and scale --------------------------------------------------------------


def steps_workflow(n: int, calls: list[int]) -> durably.WorkflowDefinition[Any, Any]:
    @durably.workflow(name=f"steps{n}")
    async def many(_: Any) -> int:
        for i in range(n):
            await durably.step("s", logged(calls, i))
        return n

    return many


@pytest.mark.parametrize("n", [1, 5, 20])
async def test_each_completed_step_is_exactly_one_commit(runtimes: RuntimeFactory, n: int) -> None:
    h = Harness(runtimes("i1", T0), steps_workflow(n, []))
    assert h.handle.commits == 0
    result = await h.start()
    assert result.completed
    assert h.handle.commits == n + 2  # start, one per step, the final commit


@attrs.define
class CountingStorage:
    """A storage that counts the operations it is asked for."""

    inner: StorageAdapter
    calls: int = 0

    async def get(self, key: str) -> Result[JsonValue | None, durably.StorageError]:
        self.calls += 1
        return await self.inner.get(key)

    async def get_many(
        self, keys: Sequence[str]
    ) -> Result[dict[str, JsonValue], durably.StorageError]:
        self.calls += 1
        return await self.inner.get_many(keys)

    async def put(self, key: str, value: JsonValue) -> Result[None, durably.StorageError]:
        self.calls += 1
        return await self.inner.put(key, value)

    async def put_batch(self, entries: Mapping[str, JsonValue]) -> Result[None, Any]:
        self.calls += 1
        return await self.inner.put_batch(entries)

    async def delete(self, key: str) -> Result[bool, durably.StorageError]:
        self.calls += 1
        return await self.inner.delete(key)

    async def delete_all(self) -> Result[None, durably.StorageError]:
        self.calls += 1
        return await self.inner.delete_all()

    async def list(self, prefix: str) -> Result[dict[str, JsonValue], durably.StorageError]:
        self.calls += 1
        return await self.inner.list(prefix)

    def transaction(self) -> Any:
        return self.inner.transaction()


async def storage_calls(runtimes: RuntimeFactory, n: int) -> int:
    calls: list[int] = []
    rt, handle = runtimes(f"scale-{n}", T0)
    counting = CountingStorage(rt.storage)
    runtime = attrs.evolve(rt, storage=counting)
    h = Harness((runtime, handle), steps_workflow(n, calls))
    result = await h.start()
    assert result.completed
    assert len(calls) == n
    assert len(await h.completed_steps()) == n
    return counting.calls


async def test_a_thousand_steps_complete_with_constant_storage_work_per_step(
    runtimes: RuntimeFactory,
) -> None:
    small, medium, large = [await storage_calls(runtimes, n) for n in (10, 100, 1_000)]
    per_step = (medium - small) / 90
    assert per_step == (large - medium) / 900
    assert per_step <= 6
