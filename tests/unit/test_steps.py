"""Steps (semantics.md section 3): scope, keys, replay, step_info, the decorator.

Cancels are in ``test_step_cancel.py``, what a step may return in ``test_step_values.py``,
its commits in ``test_step_commits.py``, retries and timeouts in ``test_retries.py``. Every
test drives a real orchestrator over each backend's runtime, with a virtual clock moved
by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

import durably
from durably.services import WorkflowStateMachine
from durably.status import Completed, Failed, Paused
from tests.support.harness import Harness
from tests.support.runtimes import RuntimeFactory
from tests.support.steps import logged

T0 = 1_000


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
    assert paused.resume_at is not None
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
